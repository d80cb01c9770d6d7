"""Embedding rasters SRL did not make: recognising published products and decoding their values.

Analysts download embeddings as often as they compute them. Every analysis therefore reads,
besides SRL's own embedding rasters (metadata ``SRL_KIND=tile_embedding``):

- **AlphaEarth Foundations Satellite Embedding** (Google): 64 bands ``A00`` .. ``A63``. The
  public Cloud-Optimized GeoTIFFs hold signed 8-bit values, -128 marking a masked pixel in
  every band, de-quantised as ``sign(v) * (|v| / 127.5) ** 2`` to vectors of unit length;
  Earth Engine exports hold the float values themselves. One public mirror's files are
  bottom-up (positive y pixel size): any such raster is read the right way up, so outputs
  are north-up.
- **TESSERA** (geotessera, 128 dimensions): float exports are read as they are; quantised
  files are scaled by the scales they carry (a band described ``scales``, multiplying every
  dimension of its pixel, 0 = no data; or GDAL band scale/offset).
- **Any other multi-band raster**, when the user says its bands are embeddings: band values
  (after GDAL scale/offset, if set) are used as they are.

Recognition looks at what such files really hold (band count, data type, nodata value, band
descriptions, metadata) and can be forced with ``product``. The decoding applied is recorded
in every output's metadata (:meth:`Decoding.metadata`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
from osgeo import gdal

from .embedding_format import KIND_KEY, MODEL_ID_KEY, TILE_KIND, EmbeddingRasterInfo, read_raster_info
from .errors import InputError
from .gdal_exceptions import gdal_exceptions
from .names import (
    ALPHAEARTH_PRODUCT,
    AUTO_PRODUCT,
    DECODING_KEY,
    FLOAT_PRODUCT,
    PRODUCT_CHOICES,
    PRODUCT_KEY,
    SRL_PRODUCT,
    TESSERA_PRODUCT,
)
from .raster.reader import HUGE_NODATA
from .raster.source import mask_bands_of, stored_nodata  # the tile engine's masks, for the same pixels

AUTO = AUTO_PRODUCT
SRL = SRL_PRODUCT
ALPHAEARTH = ALPHAEARTH_PRODUCT
TESSERA = TESSERA_PRODUCT
FLOAT = FLOAT_PRODUCT

ALPHAEARTH_BANDS = 64
ALPHAEARTH_NODATA = -128
ALPHAEARTH_MODEL_ID = "alphaearth-satellite-embedding"
TESSERA_BANDS = 128
TESSERA_MODEL_ID = "tessera"


_ALPHAEARTH_NAMES = [f"A{i:02d}" for i in range(ALPHAEARTH_BANDS)]
_SCALES_NAME = re.compile(r"^scales?$", re.IGNORECASE)


@dataclass(frozen=True)
class EmbeddingRaster:
    """A raster to read as embeddings, with what the user said about it.

    ``product``: one of :data:`PRODUCT_CHOICES` (``auto`` recognises it from the file).
    ``bands_as_embeddings``: accept an unrecognised multi-band raster, values as they are.
    """

    path: str
    product: str = AUTO
    bands_as_embeddings: bool = False

    def __fspath__(self) -> str:  # usable wherever a raster path is (names in labels and reports)
        return self.path

    def __str__(self) -> str:
        return self.path


RasterInput = Union[str, os.PathLike, EmbeddingRaster]


def as_embedding_raster(raster: RasterInput) -> EmbeddingRaster:
    """An :class:`EmbeddingRaster` for a path (SRL's own rasters and recognised products only)."""
    return raster if isinstance(raster, EmbeddingRaster) else EmbeddingRaster(str(raster))


@dataclass(frozen=True)
class Decoding:
    """How the stored values of a raster become embeddings (float32) and a valid mask.

    ``bands``: 1-based bands holding the dimensions; ``scale_band``: a band of per-pixel
    scales read after them; ``flip_y``: the file is bottom-up and is read north-up;
    ``mask_bands``: bands whose GDAL mask band (a per-dataset .msk or internal mask, an alpha
    band, a per-band mask) marks masked pixels with 0, chosen as the tile engine's reader does.
    """

    product: str
    model_id: str
    bands: tuple[int, ...]
    nodata: tuple[Optional[float], ...]
    description: str
    note: str = ""
    signed_byte: bool = False
    dequantise: bool = False
    scales: Optional[tuple[float, ...]] = None
    offsets: Optional[tuple[float, ...]] = None
    scale_band: Optional[int] = None
    flip_y: bool = False
    mask_bands: tuple[int, ...] = ()

    @property
    def size(self) -> int:
        return len(self.bands)

    def metadata(self) -> dict[str, str]:
        """Items recording the decoding in an output's metadata (none for SRL's own rasters)."""
        if self.product == SRL:
            return {}
        return {PRODUCT_KEY: self.product, DECODING_KEY: self.description}

    def source_row(self, yoff: int, rows: int, height: int) -> int:
        """First row in the file of the north-up rows [yoff, yoff + rows)."""
        return height - yoff - rows if self.flip_y else yoff

    def read(
        self, ds: gdal.Dataset, xoff: int, yoff: int, width: int, rows: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings (D, rows, width) float32 and valid mask (rows, width) of a north-up window."""
        band_list = [*self.bands, *([self.scale_band] if self.scale_band else [])]
        src_y = self.source_row(yoff, rows, ds.RasterYSize)
        try:  # a truncated or corrupt file is the input's fault, said as such (not "a bug in SRL")
            raw = np.asarray(ds.ReadAsArray(xoff, src_y, width, rows, band_list=band_list))
            masks = [ds.GetRasterBand(band).GetMaskBand().ReadAsArray(xoff, src_y, width, rows)
                     for band in self.mask_bands]
        except RuntimeError as exc:
            raise InputError(f"Cannot read pixels {width} x {rows} at ({xoff}, {src_y}) of "
                             f"{ds.GetDescription()}: {exc} The file may be truncated or damaged.") from exc
        raw = raw.reshape(len(band_list), rows, width)
        if self.flip_y:
            raw = raw[:, ::-1, :]
        data, valid = self.decode(raw)
        for mask in masks:  # a mask marks pixels without any nodata value to compare
            valid &= (mask[::-1] if self.flip_y else mask) != 0
        return data, valid

    def decode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stored values (bands [+ scales], h, w) to (embeddings, valid mask).

        A pixel is no data where any band holds its no-data value, as QGIS draws it (a raster of bands
        whose no-data borders differ, such as Landsat's, has pixels of some bands only; their vectors
        are incomplete). Where the value is also a value of the embeddings (0 in features that switch
        off), :func:`_partial_nodata_note` says so. AlphaEarth vectors have unit length, so an
        all-zero one is a masked pixel of an export that declares no no-data value; a TESSERA mosaic
        merged by geotessera's older tool holds 0 where no tile covers, with no no-data value either (the
        fill was a class of its own in clusters and a colour in the RGB view, no data in similarity).
        Values beyond +-1e30 are no data too: no embedding holds them, a float raster's undeclared fill
        (-3.4e38) does, and their squares overflow float32 (k-means put every pixel in one class)."""
        if self.signed_byte and raw.dtype == np.uint8:
            raw = raw.view(np.int8)  # GDAL < 3.7 reads signed bytes as Byte
        scale = raw[-1].astype(np.float32) if self.scale_band else None
        values = raw[: self.size]
        valid = np.ones(values.shape[1:], bool)
        for band, nodata in zip(values, self.nodata):
            stored = stored_nodata(nodata, band.dtype)
            if stored is not None:
                valid &= band != stored
        data = values.astype(np.float32, copy=False)  # float rasters: no copy of the window
        if self.dequantise:  # sign(v) * (|v| / 127.5)^2, in place: one window in memory
            magnitude = np.abs(data)
            magnitude /= np.float32(127.5)
            np.square(magnitude, out=magnitude)
            data = np.copysign(magnitude, data, out=magnitude)
        if self.scales is not None:
            data = data * np.asarray(self.scales, np.float32)[:, None, None]
            data += np.asarray(self.offsets, np.float32)[:, None, None]
        if scale is not None:
            data *= scale[None]
            valid &= np.isfinite(scale) & (scale > 0)
        with np.errstate(invalid="ignore"):  # NaN is no data too
            valid &= (np.abs(data) < HUGE_NODATA).all(axis=0)  # and a fill the file does not declare
        if self.product in (ALPHAEARTH, TESSERA):  # never all 0 where there is ground (see above)
            valid &= (data != 0).any(axis=0)
        return data, valid


def _signed_byte(band: gdal.Band) -> bool:
    return (
        band.DataType == gdal.GDT_Byte
        and band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE"
    )


def _is_int8(band: gdal.Band) -> bool:
    return _signed_byte(band) or band.DataType == getattr(gdal, "GDT_Int8", -1)


def _is_alpha(ds: gdal.Dataset, band: int) -> bool:
    """Whether ``band`` is an alpha band: the transparency of the others (their mask), not a dimension."""
    return ds.GetRasterBand(band).GetColorInterpretation() == gdal.GCI_AlphaBand


def _mentions(ds: gdal.Dataset, word: str) -> bool:
    """True when the file name, the metadata (keys or values) or the band descriptions mention ``word``."""
    texts = [Path(ds.GetDescription()).name, *(f"{k}={v}" for k, v in (ds.GetMetadata() or {}).items())]
    texts += [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
    return any(word in t.lower() for t in texts)


def _recognise(ds: gdal.Dataset, descriptions: list[str]) -> Optional[str]:
    """The product a raster's contents show it to be, or None."""
    first = ds.GetRasterBand(1)
    if ds.RasterCount == ALPHAEARTH_BANDS and (
        descriptions == _ALPHAEARTH_NAMES or (_is_int8(first) and first.GetNoDataValue() == ALPHAEARTH_NODATA)
    ):
        return ALPHAEARTH
    if ds.RasterCount in (TESSERA_BANDS, TESSERA_BANDS + 1) and _mentions(ds, "tessera"):
        return TESSERA
    return None


def _gdal_scaling(ds: gdal.Dataset, bands: tuple[int, ...]) -> tuple[Optional[tuple], Optional[tuple], str]:
    """(scales, offsets, words) from GDAL band scale/offset; (None, None, "") when none is set."""
    scales = tuple(ds.GetRasterBand(b).GetScale() or 1.0 for b in bands)
    offsets = tuple(ds.GetRasterBand(b).GetOffset() or 0.0 for b in bands)
    if all(s == 1.0 for s in scales) and all(o == 0.0 for o in offsets):
        return None, None, ""
    return scales, offsets, "GDAL band scale/offset applied"


UNIT_VALUES_LIMIT = 1.01  # an AlphaEarth float export holds unit vectors: no value beyond +-1 (and rounding)
UNIT_CHECK_WINDOWS = 3  # that check reads this many small windows, along the raster's diagonal
UNIT_CHECK_SIDE = 64  # pixels a side of each window


def _require_unit_values(ds: gdal.Dataset, nodata: Sequence[Optional[float]], name: str) -> None:
    """Refuse an AlphaEarth-named raster that is not 8-bit and holds values beyond +-1: its quantised
    values converted (GDAL before 3.7 drops signed bytes' sign when clipping or warping, as QGIS's Clip and
    Warp do; -ot Float32 keeps the numbers), which read as a float export gave similarities 0.64-1.00
    everywhere instead of -0.09-1.00, without a word."""
    values = _diagonal_windows(ds)
    for band, value in enumerate(nodata):
        if value is not None:
            values[band][values[band] == value] = np.nan
    finite = values[np.isfinite(values)]
    largest = float(np.abs(finite).max()) if finite.size else 0.0
    if largest > UNIT_VALUES_LIMIT:
        raise InputError(
            f"{name} is named like AlphaEarth embeddings (bands A00..A63) but holds values up to "
            f"{largest:g}, not the -1..1 of their float export: it looks like their 8-bit values converted "
            "to another type, which reads them wrongly (GDAL before 3.7 drops their sign when clipping or "
            "warping). Use the original 8-bit file, or clip it with GDAL 3.7 or later keeping -ot Int8."
        )


def _diagonal_windows(ds: gdal.Dataset) -> np.ndarray:
    """(bands, pixels) float64 of :data:`UNIT_CHECK_WINDOWS` small windows at 1/6, 1/2 and 5/6 along the
    raster's diagonal: a decimated read of the whole raster decoded every block (5 s per open of a 1 GB
    raster), and windows at block starts read only a striped file's left edge, nodata there."""
    side_x, side_y = min(UNIT_CHECK_SIDE, ds.RasterXSize), min(UNIT_CHECK_SIDE, ds.RasterYSize)
    picks = (np.arange(UNIT_CHECK_WINDOWS) + 0.5) / UNIT_CHECK_WINDOWS
    xs = (picks * (ds.RasterXSize - side_x)).astype(int)
    ys = (picks * (ds.RasterYSize - side_y)).astype(int)
    reads = [ds.ReadAsArray(int(x), int(y), side_x, side_y).reshape(ds.RasterCount, -1)
             for x, y in zip(xs, ys)]
    return np.concatenate(reads, axis=1).astype(np.float64)


def _product_decoding(ds: gdal.Dataset, path: str, product: str) -> Decoding:
    """Decoding of a raster SRL did not make, as ``product`` (alphaearth, tessera or float)."""
    count = ds.RasterCount
    descriptions = [ds.GetRasterBand(i + 1).GetDescription() for i in range(count)]
    flip = ds.GetGeoTransform()[5] > 0
    flip_words = "; bottom-up rows read north-up" if flip else ""
    name = Path(path).name
    if product == ALPHAEARTH:
        if count != ALPHAEARTH_BANDS:
            raise InputError(f"AlphaEarth embeddings have {ALPHAEARTH_BANDS} bands; {name} has {count}.")
        bands = tuple(range(1, count + 1))
        if _is_int8(ds.GetRasterBand(1)):
            nodata = ds.GetRasterBand(1).GetNoDataValue()
            nodata = ALPHAEARTH_NODATA if nodata is None else nodata
            words = f"AlphaEarth 8-bit: sign(v)*(|v|/127.5)^2, nodata {nodata:g}{flip_words}"
            return Decoding(
                ALPHAEARTH, ALPHAEARTH_MODEL_ID, bands, (nodata,) * count, words,
                note=f"{name}: AlphaEarth Satellite Embedding, 8-bit values de-quantised as "
                f"sign(v)·(|v|/127.5)² (unit-length vectors), {nodata:g} = no data{flip_words}.",
                signed_byte=_signed_byte(ds.GetRasterBand(1)), dequantise=True, flip_y=flip,
            )  # fmt: skip
        nodata = tuple(ds.GetRasterBand(b).GetNoDataValue() for b in bands)
        _require_unit_values(ds, nodata, name)
        return Decoding(
            ALPHAEARTH, ALPHAEARTH_MODEL_ID, bands, nodata, f"AlphaEarth float values as stored{flip_words}",
            note=f"{name}: AlphaEarth Satellite Embedding (float export), values as they are{flip_words}.",
            flip_y=flip,
        )  # fmt: skip
    scale_band = None
    if product == TESSERA:
        if count == TESSERA_BANDS + 1 and _SCALES_NAME.match(descriptions[-1].strip()):
            scale_band = count
        elif count != TESSERA_BANDS:
            raise InputError(
                f"TESSERA embeddings have {TESSERA_BANDS} bands (and optionally a last band described "
                f"'scales'); {name} has {count}."
            )
    stored = range(1, count + 1 - (scale_band is not None))
    bands = tuple(b for b in stored if not _is_alpha(ds, b))
    alpha = [b for b in stored if _is_alpha(ds, b)]  # a 4-band Byte GeoTIFF's 4th, by GDAL's default
    alpha_words = (f"; band {', '.join(map(str, alpha))} is an alpha band (transparency), not a dimension: "
                   "pixels where it is 0 are left out as no data") if alpha else ""
    if len(bands) < 2:
        raise InputError(
            f"{name} has a single band (besides any alpha band); embeddings need at least 2 dimensions."
        )
    nodata = tuple(ds.GetRasterBand(b).GetNoDataValue() for b in bands)
    scales, offsets, scaling = _gdal_scaling(ds, bands)
    if scale_band is not None:
        per_pixel = f"multiplied by the per-pixel scales of band {scale_band} (0 = no data)"
        scaling = "; ".join(filter(None, [scaling, per_pixel]))
    if product == TESSERA:
        words = "TESSERA: " + (scaling or "values as stored") + flip_words
        note = f"{name}: TESSERA embeddings, " + (scaling or "values used as they are") + f"{flip_words}."
        return Decoding(
            TESSERA, TESSERA_MODEL_ID, bands, nodata, words, note,
            scales=scales, offsets=offsets, scale_band=scale_band, flip_y=flip,
        )  # fmt: skip
    model_id = (ds.GetMetadata() or {}).get(MODEL_ID_KEY) or f"bands-as-embeddings-{len(bands)}"
    words = "band values as stored" + (f"; {scaling}" if scaling else "") + flip_words
    note = (
        f"{name}: its {len(bands)} band values are used as they are as embeddings"
        + (f" ({scaling})" if scaling else "")
        + f"{flip_words}{alpha_words}. Bands with larger ranges weigh more in distances and clusters; "
        "rescale the bands first if they are in different units."
    )
    return Decoding(FLOAT, model_id, bands, nodata, words, note, scales=scales, offsets=offsets, flip_y=flip)


PARTIAL_NODATA_WINDOW = 256  # side of the centre window read for the note below
PARTIAL_NODATA_SHARE = 0.01  # pixels with the value in some bands only, above which the note is given


def _partial_nodata_note(ds: gdal.Dataset, decoding: Decoding) -> str:
    """A sentence when many pixels of a centre window hold the no-data value in some bands but not all:
    they are left out as no data (see :meth:`Decoding.decode`), which is right for bands with their own
    no-data borders and wrong where the value is also a value of the embeddings (a feature that is 0
    where it is off, in a file written with no-data 0: a third of one such raster was left out)."""
    declared = [(band, value) for band, value in zip(decoding.bands, decoding.nodata)
                if value is not None and np.isfinite(value)]
    if len(declared) < 2:
        return ""
    width, height = min(ds.RasterXSize, PARTIAL_NODATA_WINDOW), min(ds.RasterYSize, PARTIAL_NODATA_WINDOW)
    xoff, yoff = (ds.RasterXSize - width) // 2, (ds.RasterYSize - height) // 2
    equal = np.zeros((height, width), np.int32)
    for band, value in declared:
        data = ds.GetRasterBand(band).ReadAsArray(xoff, yoff, width, height)
        if decoding.signed_byte and data.dtype == np.uint8:
            data = data.view(np.int8)  # as decode reads them
        stored = stored_nodata(value, data.dtype)
        if stored is not None:  # else no pixel holds it
            equal += data == stored
    share = float(((equal > 0) & (equal < len(declared))).mean())
    if share < PARTIAL_NODATA_SHARE:
        return ""
    value = declared[0][1]
    return (f"{share:.0%} of the pixels read hold the no-data value {value:g} in some bands but not all; "
            "they are left out as no data. If it is also a value of these embeddings, remove it from the "
            "file (gdal_edit -unsetnodata).")


def _require_georeferencing(ds: gdal.Dataset, path: str) -> None:
    """Refuse a raster without georeferencing: GDAL's default grid (0, 1, 0, 0, 0, 1) read it as
    bottom-up, so its outputs came out upside down and off it, under a note saying it was read
    north-up."""
    if ds.GetGeoTransform(can_return_null=True) is None:
        raise InputError(
            f"{path} has no georeferencing, so the analyses' outputs could not be placed on it: give it "
            "its grid and CRS first (e.g. gdal_edit -a_ullr ... -a_srs ..., or Raster > Georeferencer)."
        )


@gdal_exceptions()
def describe_embedding_raster(raster: RasterInput) -> tuple[EmbeddingRasterInfo, Decoding]:
    """What an analysis needs to read ``raster`` as embeddings: its north-up grid and its decoding.

    SRL's own rasters are always read as such. Others are read as ``product`` when it is
    given, as the product recognised from the file otherwise, or, with
    ``bands_as_embeddings``, as float band values; anything else is refused with a message
    saying how to accept it.
    """
    source = as_embedding_raster(raster)
    if source.product not in PRODUCT_CHOICES:
        raise InputError(
            f"Unknown embedding product {source.product!r}; use one of {', '.join(PRODUCT_CHOICES)}."
        )
    try:
        ds = gdal.Open(source.path)
    except RuntimeError as exc:
        raise InputError(f"Cannot open embedding raster {source.path}: {exc}") from exc
    if (ds.GetMetadata() or {}).get(KIND_KEY) == TILE_KIND:
        info = read_raster_info(source.path)
        bands = tuple(range(1, info.size + 1))
        nodata = tuple(ds.GetRasterBand(b).GetNoDataValue() for b in bands)
        masks = mask_bands_of(ds, bands)
        return info, Decoding(SRL, info.model_id, bands, nodata, "SRL embedding raster", mask_bands=masks)
    descriptions = [ds.GetRasterBand(i + 1).GetDescription() for i in range(ds.RasterCount)]
    product = source.product if source.product != AUTO else _recognise(ds, descriptions)
    if product is None and source.bands_as_embeddings:
        product = FLOAT
    kind = (ds.GetMetadata() or {}).get(KIND_KEY)
    if product is None and kind:  # one of SRL's own results (a similarity map, clusters, a view)
        raise InputError(
            f"{source.path} is an SRL {kind.replace('_', ' ')} raster, not an embedding raster: choose the "
            "embedding raster it was made from."
        )
    if product is None:
        raise InputError(
            f"{source.path} is not an embedding raster made by SRL (metadata {KIND_KEY} missing) nor a "
            f"recognised embedding product (AlphaEarth, TESSERA). To use its {ds.RasterCount} band "
            "values as embeddings, turn on 'Treat the bands of a raster SRL did not make as embeddings' "
            "(--bands-as-embeddings on the command line) or name the product ('Embedding product', "
            "--product); otherwise embed the raster first."
        )
    _require_georeferencing(ds, source.path)
    decoding = _product_decoding(ds, source.path, product)
    decoding = replace(decoding, mask_bands=mask_bands_of(ds, decoding.bands))
    partial = _partial_nodata_note(ds, decoding)
    if partial:
        decoding = replace(decoding, note=f"{decoding.note} {partial}")
    gt = tuple(ds.GetGeoTransform())
    if decoding.flip_y:  # the last row first: its corner is the origin, and the row step turns round
        height = ds.RasterYSize
        gt = (gt[0] + height * gt[2], gt[1], -gt[2], gt[3] + height * gt[5], gt[4], -gt[5])
    info = EmbeddingRasterInfo(
        path=source.path,
        model_id=decoding.model_id,
        size=decoding.size,
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        geotransform=gt,
        crs_wkt=ds.GetProjection() or "",
        tile_size=None,
        stride=None,
    )
    return info, decoding
