"""Opening an input raster for embedding: georeferencing, band mapping and nodata, checked once.

Rasters without georeferencing are refused (an embedding raster must sit on the map,
and points must be matched to pixels), as are rasters in a geographic CRS and rasters
with non-square pixels: tiles would not be square on the ground, nor of the size the
model was trained at. The message says how to fix each (reproject with
``gdalwarp -t_srs <projected CRS> -tr <size> <size>``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from osgeo import gdal, gdal_array, osr

from ..errors import InputError
from ..gdal_exceptions import gdal_exceptions
from .grid import GeoTransform

SQUARE_TOLERANCE = 0.01  # relative difference of pixel width and height accepted as square


@dataclass(frozen=True)
class RasterSource:
    """What the reader needs about an input raster (no open handle: readers open their own)."""

    path: str
    width: int
    height: int
    band_count: int
    bands: tuple[int, ...]  # 1-based source bands, in the model's band order
    nodata: tuple[Optional[float], ...]  # per mapped band
    mask_bands: tuple[int, ...]  # bands whose mask band marks invalid pixels (one for a per-dataset mask)
    geotransform: GeoTransform
    crs_wkt: str
    block_size: tuple[int, int]
    integer: bool = False  # every mapped band holds integers: no pixel can be NaN or infinite
    alpha_bands: tuple[int, ...] = ()  # alpha bands GDAL takes for no mask (float ones): 0 = transparent

    @property
    def uses_mask_band(self) -> bool:
        """Whether a mask band (per dataset, per band or alpha) marks invalid pixels."""
        return bool(self.mask_bands or self.alpha_bands)

    @property
    def flip_axes(self) -> tuple[int, ...]:
        """Axes of a tile ``(..., rows, cols)`` to flip so that it is north-up and east-right: its rows
        on a south-up raster (positive pixel height), its columns where x grows leftwards. Models are
        trained on north-up tiles; the same ground must give the same tile however it is stored."""
        g = self.geotransform
        return tuple(axis for axis, flipped in ((-2, g[5] > 0), (-1, g[1] < 0)) if flipped)

    @property
    def pixel_size(self) -> float:
        """Pixel width in CRS units (pixels are square)."""
        g = self.geotransform
        return float(np.hypot(g[1], g[4]))


@gdal_exceptions()
def open_dataset(path: str) -> gdal.Dataset:
    """Open a raster with GDAL, turning GDAL's failure into an InputError."""
    try:
        ds = gdal.Open(str(path), gdal.GA_ReadOnly)
    except RuntimeError as exc:
        raise InputError(f"Cannot open raster {path}: {exc}") from exc
    if ds is None or ds.RasterCount == 0:
        raise InputError(f"{path} is not a raster with bands." + _subdataset_hint(ds))
    return ds


def _subdataset_hint(ds: Optional[gdal.Dataset]) -> str:
    """For a container of rasters (NetCDF, HDF): which to open instead, and how to stack single-band
    ones, since a model needs its bands in one raster."""
    items = (ds.GetMetadata("SUBDATASETS") or {}) if ds is not None else {}
    names = [v for k, v in items.items() if k.endswith("_NAME")]
    if not names:
        return ""
    descriptions = [v for k, v in items.items() if k.endswith("_DESC")]
    return (f" It holds {len(names)} subdatasets ({'; '.join(descriptions[:6])}"
            f"{'; ...' if len(descriptions) > 6 else ''}): open one by its name, such as {names[0]}, or "
            "stack single-band ones into one raster first (Raster > Miscellaneous > Build Virtual Raster, "
            "'Place each input file into a separate band').")


def parse_bands(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3] (command lines, dialogs; also '3;2;1', as QGIS writes a list of numbers)."""
    try:
        return [int(part) for part in re.split(r"[,;]", text.replace(" ", "")) if part]
    except ValueError as exc:
        raise InputError(f"Bands must be comma-separated band numbers like 4,3,2; got '{text}'.") from exc


def map_bands(band_count: int, expected: int, bands: Optional[Sequence[int]], path: str) -> tuple[int, ...]:
    """Validate the raster -> model band mapping; ``None`` means 'all bands' if the counts agree."""
    if bands is None:
        if band_count != expected:
            raise InputError(
                f"The model expects {expected} band(s) but {path} has {band_count}. "
                + (f"Choose a raster with at least {expected} bands." if band_count < expected
                   else f"Choose {expected} of its bands, in the model's order.")
            )
        return tuple(range(1, band_count + 1))
    chosen = tuple(int(b) for b in bands)
    if len(chosen) != expected:
        raise InputError(f"The model expects {expected} band(s); {len(chosen)} were chosen ({list(chosen)}).")
    bad = [b for b in chosen if not 1 <= b <= band_count]
    if bad:
        raise InputError(f"Band(s) {bad} do not exist: {path} has bands 1..{band_count}.")
    return chosen


WIDE_DEGREES = 12.0  # wider than two UTM zones: an equal-area projection suits better


def projection_advice(gt: Sequence[float], ds: gdal.Dataset) -> str:
    """A projected CRS that fits a raster in degrees: its UTM zone when it is narrow, else equal-area."""
    west, east = sorted((gt[0], gt[0] + ds.RasterXSize * gt[1]))
    south, north = sorted((gt[3], gt[3] + ds.RasterYSize * gt[5]))
    if east - west > WIDE_DEGREES or north - south > WIDE_DEGREES:
        return ("for a continental or global extent an equal-area projection, e.g. World Cylindrical Equal "
                "Area (gdalwarp -t_srs EPSG:6933) or a Lambert azimuthal equal-area centred on the area "
                "(EPSG:3035 for Europe)")
    lon, lat = (west + east) / 2, (south + north) / 2
    zone = min(60, max(1, int((lon + 180) // 6) + 1))
    epsg = (32600 if lat >= 0 else 32700) + zone
    return f"its UTM zone, {zone}{'N' if lat >= 0 else 'S'} (gdalwarp -t_srs EPSG:{epsg})"


def check_georeferencing(ds: gdal.Dataset, path: str) -> tuple[GeoTransform, str]:
    """The geotransform and CRS of a raster tiles can be cut from: georeferenced, in a projected CRS (or
    none), with square pixels; else an error saying how to make it so (the engines', and training's, so
    that a model is never trained on a raster it cannot embed)."""
    gt = ds.GetGeoTransform(can_return_null=True)
    if gt is None and ds.GetGCPCount():
        raise InputError(
            f"{path} is georeferenced by {ds.GetGCPCount()} ground control points only, which tiles cannot "
            "be cut along: warp it onto a grid first (Raster > Projections > Warp, or gdalwarp -t_srs "
            "<projected CRS>)."
        )
    if gt is None:
        raise InputError(
            f"{path} has no georeferencing, so its embeddings could not be placed on the map. "
            "Georeference it first (QGIS Georeferencer or gdal_translate -a_ullr / -a_srs)."
        )
    if not np.isfinite(gt).all():
        raise InputError(f"{path} has NaN or infinite numbers in its georeferencing; georeference it again.")
    crs_wkt = ds.GetProjection() or ""
    if crs_wkt:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(crs_wkt)
        if srs.IsGeographic():
            raise InputError(
                f"{path} is in a geographic CRS (degrees): tiles would not be square on the ground. "
                f"Reproject it to a projected CRS in metres first: {projection_advice(gt, ds)} "
                "(Raster > Projections > Warp)."
            )
    width = float(np.hypot(gt[1], gt[4]))
    height = float(np.hypot(gt[2], gt[5]))
    if width == 0 or height == 0:
        raise InputError(f"{path} has a zero pixel size in its georeferencing.")
    if abs(width - height) > SQUARE_TOLERANCE * max(width, height):
        size = min(width, height)
        raise InputError(
            f"{path} has non-square pixels ({width:g} x {height:g}): tiles would be stretched. "
            f"Resample it to square pixels first (gdalwarp -tr {size:g} {size:g})."
        )
    return tuple(float(v) for v in gt), crs_wkt


_VRT_NAME = re.compile(r"^(vrt://)([^?]*)(.*)$", re.DOTALL)  # vrt://FILE?options
_ARCHIVE_NAME = re.compile(r"^(/vsi(?:zip|tar|gzip|7z|rar)/)(?!/)(.*)$")  # /vsizip/ARCHIVE/inner
_SUBDATASET_NAME = re.compile(r'^([A-Za-z0-9_]+:")([^"]+)(".*)$', re.DOTALL)  # NETCDF:"FILE":var


def as_workers_reach(path: str) -> str:
    """``path`` as a worker in another folder, or on another machine sharing the disk, reaches it: the
    local file in it absolute, also inside a GDAL name (``vrt://``, ``/vsizip/``, ``DRIVER:"FILE":sub``).
    Relative to the client's folder, a worker resolved it against its own and read another file of
    that name there (another raster's pixels, with this one's grid)."""
    if os.path.exists(path):
        return os.path.abspath(path)
    for pattern in (_VRT_NAME, _SUBDATASET_NAME):
        found = pattern.match(path)
        if found and os.path.exists(found.group(2)):
            return found.group(1) + os.path.abspath(found.group(2)) + found.group(3)
    found = _ARCHIVE_NAME.match(path)
    if found:
        parts = found.group(2).split("/")
        for end in range(len(parts), 0, -1):  # the archive is the longest leading part that is a file
            archive = "/".join(parts[:end])
            if os.path.isfile(archive):
                return found.group(1) + "/".join([os.path.abspath(archive), *parts[end:]])
    return path


def open_source(path: str, expected_bands: int, bands: Optional[Sequence[int]] = None) -> RasterSource:
    """Open ``path``, check its georeferencing and pixels, and map its bands to the model's."""
    ds = open_dataset(path)
    geotransform, crs_wkt = check_georeferencing(ds, str(path))
    mapped = map_bands(ds.RasterCount, expected_bands, bands, str(path))
    return describe_source(ds, str(path), mapped, geotransform, crs_wkt)


def describe_source(ds: gdal.Dataset, path: str, bands: Sequence[int], geotransform: GeoTransform,
                    crs_wkt: str, nodata: Optional[float] = None) -> RasterSource:
    """The :class:`RasterSource` of an open dataset's ``bands``; ``nodata`` is the no-data value of the
    bands that declare none (a fill the file does not declare), as the engines apply a model's own.

    Training rasters are described by this too, so that training and the engines read,
    mask and standardise pixels by the same rules (:mod:`srl_core.raster.reader`). Pixels those rules
    cannot read as measurements are refused (:func:`require_measurements`).
    """
    require_measurements(ds, bands, path)
    first = ds.GetRasterBand(int(bands[0]))
    return RasterSource(
        path=str(path),
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        band_count=ds.RasterCount,
        bands=tuple(int(b) for b in bands),
        nodata=tuple(_declared_or(_holdable_nodata(ds.GetRasterBand(int(b))), nodata) for b in bands),
        mask_bands=mask_bands_of(ds, bands),
        geotransform=geotransform,
        crs_wkt=crs_wkt,
        block_size=tuple(first.GetBlockSize()),
        integer=all(_holds_integers(ds.GetRasterBand(int(b)).DataType) for b in bands),
        alpha_bands=unmasking_alpha_bands(ds, bands),
    )


def stored_nodata(value: Optional[float], dtype: np.dtype) -> Optional[np.ndarray]:
    """The no-data ``value`` as a value of ``dtype`` to compare pixels with, or None when no pixel of
    that type can hold it, as GDAL takes it (-1 or -9999 of an unsigned band, 0.5 of an integer one,
    NaN): cast to the type, -9999 became 55537, and every valid 55537 was left out as no data."""
    if value is None or not np.isfinite(value):
        return None
    kind = np.dtype(dtype)
    if kind.kind in "iu":
        limits = np.iinfo(kind)
        if not (float(value).is_integer() and limits.min <= value <= limits.max):
            return None
    return np.array(value, dtype=kind)


def _holdable_nodata(band: gdal.Band) -> Optional[float]:
    """A band's declared no-data value, or None when no pixel of its type can hold it (-1 of a UInt16
    band): GDAL then masks nothing, and taking it as declared turned the undeclared 0-fill warning off."""
    value = band.GetNoDataValue()
    dtype = np.dtype(gdal_array.GDALTypeCodeToNumericTypeCode(band.DataType))
    if value is not None and np.isfinite(value) and stored_nodata(value, dtype) is None:
        return None
    return value


def _declared_or(declared: Optional[float], nodata: Optional[float]) -> Optional[float]:
    """A band's declared no-data value, else ``nodata``: a training raster's declared fill stays its fill
    whatever value is given for the others, as the engines read it (given 0, a -99999 border was trained
    as data: a band mean of -9381)."""
    return declared if declared is not None else (float(nodata) if nodata is not None else None)


def require_measurements(ds: gdal.Dataset, bands: Sequence[int], path: str) -> None:
    """Refuse bands whose values the reader cannot take as measurements: complex pixels (a radar scene's
    single-look complex: read as float, only the real part was embedded) and signed bytes (GDAL 3.6's
    PIXELTYPE=SIGNEDBYTE: read as unsigned, -1 became 255 and a -128 fill was embedded as data)."""
    for b in bands:
        band = ds.GetRasterBand(int(b))
        if gdal.DataTypeIsComplex(band.DataType):
            raise InputError(
                f"Band {b} of {path} holds complex numbers ({gdal.GetDataTypeName(band.DataType)}): derive "
                "real values first, e.g. its amplitude (a VRT with the pixel function 'mod', or Raster > "
                "Raster Calculator)."
            )
        signed = band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE"
        if band.DataType == gdal.GDT_Byte and signed:
            raise InputError(
                f"Band {b} of {path} holds signed bytes, which SRL would read as unsigned (-1 as 255): "
                "convert it first (gdal_translate -ot Int16)."
            )


def alpha_bands(ds: gdal.Dataset) -> tuple[int, ...]:
    """The raster's bands (1-based) whose colour interpretation is alpha."""
    return tuple(i for i in range(1, ds.RasterCount + 1)
                 if ds.GetRasterBand(i).GetColorInterpretation() == gdal.GCI_AlphaBand)


def unmasking_alpha_bands(ds: gdal.Dataset, bands: Sequence[int]) -> tuple[int, ...]:
    """The raster's alpha bands when GDAL does not take them as the bands' mask: it does so for Byte and
    UInt16 alpha only. A Float32 alpha band (``gdalwarp -dstalpha`` on a float raster) was left out as
    transparency, and the area outside the warp's footprint embedded as ground."""
    if ds.GetRasterBand(int(bands[0])).GetMaskFlags() & gdal.GMF_ALPHA:
        return ()
    return alpha_bands(ds)


def mask_bands_of(ds: gdal.Dataset, bands: Sequence[int]) -> tuple[int, ...]:
    """The bands whose mask band the reader reads: each band with a mask of its own, and the first
    band sharing the dataset's mask (per-dataset or alpha: one read serves all). Bands whose pixels
    are all valid, or whose mask is only their nodata value (compared by the reader itself), need none."""
    chosen: list[int] = []
    shared = False
    for band in (int(b) for b in bands):
        flags = ds.GetRasterBand(band).GetMaskFlags()
        if flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA) or (shared and flags & gdal.GMF_PER_DATASET):
            continue
        shared = shared or bool(flags & gdal.GMF_PER_DATASET)
        chosen.append(band)
    return tuple(chosen)


def _holds_integers(data_type: int) -> bool:
    """Whether a GDAL data type is an integer one (the reader then skips the NaN/inf check per pixel)."""
    return bool(np.issubdtype(gdal_array.GDALTypeCodeToNumericTypeCode(data_type), np.integer))
