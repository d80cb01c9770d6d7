"""The tile engine: a raster (or points on it) to tile embeddings with a tile model bundle.

:func:`embed_raster` writes an embedding raster (see :mod:`srl_core.embedding_format`):
one pixel per tile centre, one band per embedding dimension, NaN where a tile is mostly
nodata or outside the mask. :func:`embed_tiles_at_points` embeds the tiles centred at
given points and returns arrays.

Both stream the raster (:mod:`srl_core.raster.reader`): large block-aligned reads in a
background thread, tiles cut and normalised in memory, batches to the model on the
chosen device, so that the model is the bottleneck and memory is bounded by one window
and a few batches. The same inputs and settings give the same embeddings.

Refused with an :class:`~srl_core.errors.InputError`: rasters without georeferencing (no
pixel-space output), in a geographic CRS, or with non-square pixels; rasters or extents
smaller than one tile; band mappings that do not fit the model; rasters with no tile
valid enough to embed; a tile size below 1. Output problems (folder not writable, disk full, a
name not ending in .tif/.tiff, an estimated size above the folder's free space, checked before
any work) are an :class:`~srl_core.errors.OutputError`; a model giving NaN or infinite embeddings
is a :class:`~srl_core.errors.ModelError`. A raster without a CRS is embedded with a warning.
On any error or cancel, nothing is left at the output path.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings as _warnings
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from osgeo import gdal

from .atomic import atomic_output, guards_files, release_error_frames
from .backends import Backend, resolve_backend
from .band_choice import BandChoice, card_band_names, choose_bands, default_bands
from .bundle import LoadedModel, ModelCard
from .checks import finite_float, float_list, int_in_range, mapping
from .device import resolve_device
from .disk_space import check_free_space
from .embedding_format import EMBEDDING_NODATA, field_names, raster_metadata
from .embedding_quality import spread, spread_warning
from .errors import InputError, ModelError
from .gdal_exceptions import gdal_exceptions
from .names import (
    BANDS_KEY,
    CHOICES_KEY,
    NORMALISATION_KEY,
    NORMALISATIONS,
    QUALITY_WARNING_KEY,
    STATISTICS_AREA_KEY,
    TILE_SIZE_KEY,
    WHOLE_RASTER,
)
from .progress import Progress, ensure_progress
from .raster.geotiff import create_geotiff, require_geotiff_path
from .raster.grid import TileGrid, extent_to_window, make_grid, tile_origins_centred_at
from .raster.mask import outside_mask
from .raster.parts import parts_bytes, remove_parts
from .raster.reader import (
    Normaliser,
    Prefetcher,
    StripDone,
    TileBatch,
    grid_batches,
    plan_windows,
    point_batches,
    prefetch_depth,
    reader_bands,
)
from .raster.source import RasterSource, as_workers_reach, open_dataset, open_source
from .raster.statistics import (
    UNDECLARED_FILL_SHARE,
    BandStatistics,
    band_statistics,
    declares_nodata,
    undeclared_fill_warning,
)
from .raster.writer import StripWriter, align_strip_rows, output_block_size
from .raster.writer_thread import WriterThread
from .threads import io_plan, limit_threads
from .tile_encoder import PendingEmbeddings, TileEncoder, check_precision, default_batch_size
from .tile_windows import EmbedWindows, embed_windows
from .training_free import (
    bind_to_raster,
    bound_embedding_size,
    check_tile_size,
    is_training_free,
    resolve_model,
    settings_metadata,
)
from .vector.crs import MAX_MAP_COORDINATE, pixel_size_m

ModelLike = Union[str, Path, LoadedModel]
OUTPUT_DTYPES = ("float32", "float16")
UNLIKE_TRAINING_SIGMAS = 3.0  # warn when a band's mean is further than this from the card's, in card stds
CHECK_SAMPLE_PIXELS = 65_536  # enough for a band mean, cheap beside any embedding run
# The check sample's squares: 128 px fit inside the common 256 px and 512 px blocks, so a tiled file
# decodes no more blocks than with 256 px squares (a 128 px tiled one 4x fewer), and a strip file
# decodes half the rows (384 instead of 768 full-width rows of the Landsat scene).
CHECK_SAMPLE_WINDOW = 128
PIXEL_SIZE_WARNING_RATIO = 1.5  # warn when the raster's pixels differ from the model's by more
PROGRESS_INTERVAL_S = 0.5  # report at least this often while tiles are embedded
MAX_TILE_SIZE = 8192  # pixels; bounds what a card can make the engine allocate per tile
MAX_MODEL_BANDS = 1024


@dataclass(frozen=True)
class TileModelInputs:
    """What a tile model's card says about its inputs."""

    bands: int
    tile_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_size_m: Optional[float]
    # trained with each raster standardised by its own statistics (several sensors or scalings): then a
    # raster is standardised by its own too, and the card's mean/std only describe the training data
    per_raster: bool = False
    # the nodata value training was told (``--nodata``): applied to bands of a raster that declare none
    nodata: Optional[float] = None
    # the file name of the valid-area mask training drew its tiles and (per raster) its statistics from
    # (card training.valid_area_mask: its path, then where it came from); None when it had none
    trained_in_mask: Optional[str] = None


@dataclass(frozen=True)
class EmbedRasterResult:
    """Summary of one :func:`embed_raster` run."""

    path: str
    model_id: str
    embedding_size: int
    width: int
    height: int
    tile_size: int
    stride: int
    tiles_total: int
    tiles_embedded: int
    device: str
    seconds: float
    warnings: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()  # defaults chosen for the analyst (bands, normalisation), a sentence each


def tile_model_inputs(card: ModelCard) -> TileModelInputs:
    """Read and check the inputs section of a tile model's card."""
    if card.kind != "tile":
        raise ModelError(f"Model '{card.id}' is a {card.kind} model, not a tile model.")
    where = f"Model '{card.id}': its card's"
    listed = card.inputs.get("bands", [])
    bands = card.config.get("in_channels", len(listed) if isinstance(listed, list) else 0)
    bands = int_in_range(bands, f"{where} config.in_channels", 1, MAX_MODEL_BANDS, ModelError)
    norm = mapping(card.inputs.get("normalisation") or {}, f"{where} inputs.normalisation")
    if norm.get("mean") is None or norm.get("std") is None:
        raise ModelError(
            f"Model '{card.id}': its card needs inputs.normalisation with {bands} means "
            "and standard deviations."
        )
    mean = float_list(norm["mean"], f"{where} inputs.normalisation.mean", bands)
    std = float_list(norm["std"], f"{where} inputs.normalisation.std", bands)
    if min(std) <= 0:
        raise ModelError(f"Model '{card.id}': its normalisation has a non-positive standard deviation.")
    tile = card.inputs.get("tile_size")
    if not tile:
        raise ModelError(f"Model '{card.id}': its card does not give the tile size (inputs.tile_size).")
    tile = int_in_range(tile, f"{where} inputs.tile_size", 1, MAX_TILE_SIZE, ModelError)
    pixel = card.inputs.get("pixel_size_m")
    if pixel is not None:
        pixel = finite_float(pixel, f"{where} inputs.pixel_size_m", error=ModelError, positive=True)
    per_raster = norm.get("per_raster", False)
    if not isinstance(per_raster, bool):
        raise ModelError(f"{where} inputs.normalisation.per_raster must be true or false, "
                         f"not {per_raster!r}.")
    nodata = card.inputs.get("nodata")
    if nodata is not None:
        nodata = finite_float(nodata, f"{where} inputs.nodata", error=ModelError)
    mask = (card.training or {}).get("valid_area_mask")
    return TileModelInputs(bands=bands, tile_size=tile, mean=tuple(mean), std=tuple(std), pixel_size_m=pixel,
                           per_raster=per_raster, nodata=nodata,
                           trained_in_mask=Path(str(mask).split(" (")[0]).name if mask else None)


def with_training_nodata(source: RasterSource, inputs: TileModelInputs) -> tuple[RasterSource, list[str]]:
    """``source`` with the nodata value the model was trained with (card ``inputs.nodata``) on its bands
    that declare none, and the sentence saying so; unchanged otherwise. Training left those pixels out
    (a scene's fill of zeros, say): embedded as data, its fill tiles lay far outside anything the model
    saw."""
    if inputs.nodata is None or all(v is not None for v in source.nodata):
        return source, []
    nodata = tuple(inputs.nodata if v is None else v for v in source.nodata)
    return replace(source, nodata=nodata), [
        f"Pixels of value {inputs.nodata:g} were taken as nodata in the bands that declare none, as the "
        "model's training took them (its card's inputs.nodata)."]


ROTATION_ROUNDING = 1e-6  # rotation terms this small for the pixel size are a writer's rounding, not a turn


def _rotation_note(source: RasterSource) -> list[str]:
    """Said when the raster's grid is turned from north-up (south-up and east-left storage are undone:
    :attr:`RasterSource.flip_axes`), or mirrored: tiles are cut along its rows and columns, so the model
    sees the ground turned by that angle. No model is invariant to it, a quarter turn included (counted
    as none before): the same ground stored turned 90° gave tile2vec embeddings down to cosine 0.86, and
    MOSAIKS, whose filters are drawn in the file's orientation, 0.25. Warping the raster north-up
    removes it."""
    g = source.geotransform
    if max(abs(g[2]), abs(g[4])) <= ROTATION_ROUNDING * source.pixel_size:  # flip_axes undoes the rest
        return []
    turn = abs(math.degrees(math.atan2(g[4], g[1])))  # of the rows' direction from east, 0..180
    mirrored = g[1] * g[5] - g[2] * g[4] > 0  # columns to the rows' left: a north-up grid's are to the right
    if turn < 0.5 and not mirrored:
        return []
    how = f"turned {turn:.0f}° from north-up" + (" and mirrored" if mirrored else "")
    return [f"The raster's grid is {how}: tiles are cut along its rows and columns, so the model sees the "
            "ground turned (or mirrored) as much (it was trained on north-up tiles). To embed north-up "
            "tiles, warp the raster first (gdalwarp -t_srs with its own CRS)."]


def _pixel_size_warning(source: RasterSource, inputs: TileModelInputs) -> list[str]:
    metres = pixel_size_m(source.geotransform, source.crs_wkt, source.width, source.height)
    if not inputs.pixel_size_m or not metres:
        return []
    ratio = max(metres, inputs.pixel_size_m) / min(metres, inputs.pixel_size_m)
    if ratio <= PIXEL_SIZE_WARNING_RATIO:
        return []
    tile_km = inputs.tile_size * metres / 1000
    trained_km = inputs.tile_size * inputs.pixel_size_m / 1000
    coarser = "coarser" if metres > inputs.pixel_size_m else "finer"
    text = (f"The raster's pixels are {metres:,.1f} m, the model was trained on {inputs.pixel_size_m:,.1f} m "
            f"pixels: each tile covers {tile_km:,.2f} km instead of {trained_km:,.2f} km, so the model looks "
            f"at the ground at a scale {ratio:,.0f} times {coarser} than it learned. Its embeddings still "
            "tell tiles of this raster apart, but compare them with each other, not with other rasters'.")
    if metres < inputs.pixel_size_m:  # the CRS's units per ground metre here
        size = inputs.pixel_size_m * source.pixel_size / metres
        text += f" Resampling to the model's pixel size matches its scale (gdalwarp -tr {size:g} {size:g})."
    else:
        text += " A model trained on pixels of about this size would suit this raster better."
    return [text]


def normaliser_for(source: RasterSource, inputs: TileModelInputs, normalisation: str,
                   progress: Optional[Progress] = None,
                   sample: Optional[BandStatistics] = None,
                   mask_path: Optional[str] = None) -> tuple[Normaliser, Optional[BandStatistics]]:
    """The per-band standardisation: ``"model"`` with the card's training statistics (same sensor
    and units as the training imagery), ``"raster"`` with the raster's own (another sensor or
    scaling: see :mod:`srl_core.raster.statistics`). Resolve ``"auto"`` first with
    :func:`choose_normalisation`; its ``sample`` of the raster is used when it read every pixel.

    Also returns the raster statistics ``"raster"`` read (None for ``"model"``): the engine's checks
    use them rather than reading a sample of their own. ``mask_path``: the raster's own statistics
    from inside the mask only (see :func:`~srl_core.raster.statistics.band_statistics`)."""
    if normalisation not in ("model", "raster"):
        raise InputError(
            f"Normalisation must be 'model' or 'raster' ('auto' is resolved first), got '{normalisation}'."
        )
    if normalisation == "raster":
        usable = sample is not None and sample.whole and not sample.constant_bands()
        stats = sample if usable else band_statistics(source, progress=progress, mask_path=mask_path)
        return Normaliser(stats.mean, stats.std), stats
    return Normaliser(inputs.mean, inputs.std), None


def _unlike_training(source: RasterSource, inputs: TileModelInputs, progress: Optional[Progress] = None,
                     mask_path: Optional[str] = None) -> tuple[Optional[str], Optional[BandStatistics]]:
    """``(how the raster differs from the model's training data, the sample that says so)``: the
    first when a band's mean is far from the card's (another sensor or scaling, most likely),
    None when it looks alike; the sample is None when no valid pixel was found to compare.

    A constant band still has a mean to compare (a band of zeros is unlike any training data). The
    small check sample can miss a raster's valid area (a thin strip of data in a large frame of
    nodata); the usual sample, denser, is read before concluding nothing could be compared."""
    stats = (_check_sample(source, progress, mask_path=mask_path)
             or _check_sample(source, progress, dense=True, mask_path=mask_path))
    if stats is None:
        return None, None
    # an undeclared fill (said by its own warning) is no sign of another sensor: compared without it, the
    # scene a model was trained on was taken for another's and standardised so that its ground looked alike
    undeclared = not declares_nodata(source) and stats.zero_fill >= UNDECLARED_FILL_SHARE
    compared = stats.without_zeros() if undeclared else stats
    unlike = unlike_band(compared.mean, inputs.mean, inputs.std)
    if unlike is None:
        return None, stats
    worst, shift = unlike
    return (f"band {source.bands[worst]} averages {compared.mean[worst]:.4g}, {shift:.0f} standard "
            "deviations from the model's training data"), stats


def unlike_band(mean: Sequence[float], reference_mean: Sequence[float], reference_std: Sequence[float]
                ) -> Optional[tuple[int, float]]:
    """``(band index, distance)`` of the band mean furthest from the reference's, in its standard
    deviations, when that is more than ``UNLIKE_TRAINING_SIGMAS`` (another sensor or scaling, most
    likely); None when every band is alike. The one rule for a raster against a model's training data
    and (in training) for a training raster against the others."""
    shift = np.abs(np.subtract(mean, reference_mean)) / np.maximum(np.asarray(reference_std, float), 1e-12)
    worst = int(shift.argmax())
    return (worst, float(shift[worst])) if shift[worst] > UNLIKE_TRAINING_SIGMAS else None


def choose_normalisation(source: RasterSource, inputs: TileModelInputs, normalisation: str,
                         progress: Optional[Progress] = None, mask_path: Optional[str] = None
                         ) -> tuple[str, list[str], list[str], Optional[BandStatistics]]:
    """``(normalisation to use, warnings, choices, the raster sample the choice read)``: ``"auto"``
    becomes ``"raster"`` when the raster looks unlike the model's training data (standardising by
    the card's statistics would make every tile look alike), else ``"model"``; ``"model"`` chosen
    explicitly on such a raster is kept, with a warning. A model trained with each raster standardised
    by its own statistics (card ``per_raster``) gets ``"raster"`` under ``"auto"``, with no sample read.
    ``mask_path``: the raster is compared by its pixels inside the mask, as training drew its own."""
    if normalisation not in NORMALISATIONS:
        raise InputError(f"Normalisation must be one of {NORMALISATIONS}, got '{normalisation}'.")
    if normalisation == "raster":
        return "raster", [], [], None
    if inputs.per_raster:
        return _per_raster_choice(normalisation, inputs, mask_path)
    unlike, sample = _unlike_training(source, inputs, progress, mask_path)
    if normalisation == "model":
        if unlike is None:
            return "model", [], [], sample
        return "model", [f"{unlike[0].upper()}{unlike[1:]}: the raster seems to come from another sensor or "
                         "scaling, and the embeddings may be meaningless. Standardise by the raster's own "
                         "statistics."], [], sample
    if unlike:
        why = f"Each band was standardised by the raster's own statistics, because {unlike}."
        return "raster", [], [why], sample
    if sample is None:
        return "model", [], ["Each band was standardised by the model's training statistics: no valid "
                             "pixel was found in the samples read to compare the raster with its training "
                             "data."], None
    return "model", [], ["Each band was standardised by the model's training statistics (the raster looks "
                         "like its training data)."], sample


def _per_raster_choice(normalisation: str, inputs: TileModelInputs, mask_path: Optional[str]
                       ) -> tuple[str, list[str], list[str], None]:
    """:func:`choose_normalisation` for a model trained with each raster standardised by its own
    statistics: ``"auto"`` does the same; ``"model"`` is kept, with a warning (the card's statistics
    are those of several sensors pooled). A model whose training rasters' statistics came from inside a
    mask (land only), used without one, gets a note: a raster's statistics over land and water standardise
    it unlike training (a training raster half water, embedded so, came out at cosine 0.45 on average to
    what training computed), where an all-land raster's are the same with or without a mask."""
    if normalisation == "auto":
        note = [] if mask_path or not inputs.trained_in_mask else [
            f"Its training rasters' statistics were taken inside a mask ({inputs.trained_in_mask}): where "
            "this raster holds much of what that mask left out (water, say), give a mask of the same area to "
            "standardise it as training did."]
        return "raster", [], ["Each band was standardised by the raster's own statistics, as the model was "
                              "trained (each of its training rasters by its own).", *note], None
    return "model", ["The model was trained with each raster standardised by its own statistics; its card's "
                     "statistics pool rasters of other sensors or scalings, and the embeddings may be "
                     "meaningless. Standardise by the raster's own statistics."], [], None


def _standardisation(source: RasterSource, inputs: TileModelInputs, card: ModelCard, normalisation: str,
                     progress: Optional[Progress] = None, mask_path: Optional[str] = None
                     ) -> tuple[str, Normaliser, list[str], list[str], Optional[BandStatistics]]:
    """``(normalisation used, its normaliser, warnings, choices, the raster statistics read if any: the
    standardisation's own, else the check sample)`` for ``card`` on ``source``.

    A training-free card, bound to the raster (:func:`srl_core.training_free.bind_to_raster`),
    already holds the raster's own statistics: every setting means "raster" there, with no
    second pass over the raster and no comparison with training data it does not have.
    """
    if is_training_free(card):
        if normalisation not in NORMALISATIONS:
            raise InputError(f"Normalisation must be one of {NORMALISATIONS}, got '{normalisation}'.")
        why = ["Each band was standardised by the raster's own statistics (a training-free model has no "
               "training statistics)."] * (normalisation == "auto")
        # Invalid pixels NaN, which both training-free models leave out: with 0 (the band mean, what networks
        # are trained with) a coastal tile half sea was described as half "average ground".
        return "raster", Normaliser(inputs.mean, inputs.std, fill=float("nan")), [], why, None
    normalisation, warnings, choices, sample = choose_normalisation(source, inputs, normalisation, progress,
                                                                    mask_path)
    normaliser, read = normaliser_for(source, inputs, normalisation, progress, sample, mask_path)
    return normalisation, normaliser, warnings, choices, read or sample


def _fill_warnings(source: RasterSource, sample: Optional[BandStatistics],
                   progress: Optional[Progress] = None, mask_path: Optional[str] = None) -> list[str]:
    """The undeclared-fill warning (:func:`undeclared_fill_warning`) from ``sample``, or a small new one."""
    sample = sample or _check_sample(source, progress, mask_path=mask_path)
    fill = undeclared_fill_warning(source, sample) if sample is not None else None
    return [fill] if fill else []


def _check_sample(source: RasterSource, progress: Optional[Progress] = None, dense: bool = False,
                  mask_path: Optional[str] = None) -> Optional[BandStatistics]:
    """The small sample of the raster the checks read (``dense``: the usual sample of
    :func:`band_statistics`), constant bands included; None when it has no valid pixel (the
    embedding itself then reports what is wrong)."""
    size = {} if dense else {"max_pixels": CHECK_SAMPLE_PIXELS, "side": CHECK_SAMPLE_WINDOW}
    try:
        return band_statistics(source, progress=progress, allow_constant=True, mask_path=mask_path, **size)
    except InputError:
        return None


@gdal_exceptions()
def _quality_warnings(output_path: Union[str, Path], sample: np.ndarray, card: ModelCard,
                      normalisation: str) -> list[str]:
    """A warning, with what to change, when the embeddings just written to ``output_path`` (``sample``:
    some of them, :class:`srl_core.embedding_quality.PositionSample`) barely differ from each other.

    For a training-free model only the cosine check applies (its card has no training figures to
    compare the embedding length with), and the advice is about the raster, not about matching
    training data the model does not have.
    """
    found = [w for w in (*_training_warnings(card), spread_warning(spread(sample), card,
                                                                  _spread_advice(card, normalisation))) if w]
    if found:  # kept with the file, so that whoever loads it is told (the plugin's message bar)
        ds = gdal.Open(str(output_path), gdal.GA_Update)
        ds.SetMetadataItem(QUALITY_WARNING_KEY, " ".join(found))
        ds = None
    return found


def _training_warnings(card: ModelCard) -> list[str]:
    """What the model's card says went wrong in its training (a collapse: its learned values constant), said
    with every use of it: the card's note was read by no one, and the band statistics a model appends kept
    the spread of its embeddings above the degenerate check, so its constant values passed unsaid."""
    said = card.training.get("warnings") if isinstance(card.training, dict) else None
    if not said:
        return []
    return [f"The card of model '{card.id}' says of its training: {' '.join(str(w) for w in said)} Its "
            "embeddings may mean little; retrain it (see its card)."]


def _spread_advice(card: ModelCard, normalisation: str) -> str:
    """What to change when the embeddings of ``card`` with ``normalisation`` look degenerate."""
    if is_training_free(card):
        return ("The model describes only this raster's own variation: check that the raster's nodata is "
                "declared and that it varies within a tile (a larger tile size may help).")
    if _training_warnings(card):  # the model itself, not the raster: advice about the input would mislead
        return "The model's own training went wrong: see its card's warning, said with these embeddings."
    if normalisation == "model":
        return "Standardise each band by the raster's own statistics, and check the bands are the model's."
    return ("Check that the bands fed to the model are the ones its card names, in its order, and that "
            "the raster resembles its training imagery (sensor, pixel size).")


def _check_settings(device: str, precision: str, batch_size: Optional[int], max_nodata_fraction: float,
                    tile_size: Optional[int] = None) -> tuple[torch.device, int]:
    """Refuse bad run settings before any work; return the device and the batch size to use
    (:func:`~srl_core.tile_encoder.default_batch_size` for the device when none is given)."""
    used_device = resolve_device(device)  # a device that is not there is refused before any work
    check_precision(precision, used_device)
    batch_size = default_batch_size(used_device) if batch_size is None else batch_size
    int_in_range(batch_size, "Batch size", 1, 1 << 20)
    finite_float(max_nodata_fraction, "The largest nodata fraction of an embedded tile (--max-nodata)",
                 0.0, 1.0)
    if tile_size is not None:  # 0 is refused, not read as "the model's"
        int_in_range(tile_size, "Tile size (pixels)", 1, MAX_TILE_SIZE)
    return used_device, int(batch_size)


def _palette_warning(source: RasterSource) -> list[str]:
    """Said for bands with a colour table: their values are codes (the classes of a land-cover map, the
    entries of a paletted photo), not measurements, and are standardised and embedded as numbers, so that
    class 10 lies between 9 and 11 to the model."""
    ds = open_dataset(source.path)
    paletted = [b for b in source.bands if ds.GetRasterBand(b).GetColorTable() is not None]
    if not paletted:
        return []
    return [f"Band {paletted[0]} of {source.path} has a colour table: its values are codes (classes, or "
            "the colours of a paletted image), which the model reads as measurements. Expand a paletted "
            "image to its colours first (gdal_translate -expand rgb); embed a classified map only to "
            "compare its patterns, knowing that the codes' order means something to the model."]


def _no_crs_warning(source: RasterSource) -> list[str]:
    if source.crs_wkt:
        return []
    return [f"{source.path} has a geotransform but no CRS: the embedding raster has none either and will "
            "not line up with other layers. Assign the raster's CRS (Layer Properties > Source, or "
            "gdal_edit.py -a_srs EPSG:...) and embed it again."]


def _run_grid(readers: Sequence[Callable[[], Iterator[Union[TileBatch, StripDone]]]], depth: int,
              loaded: LoadedModel, device: str, precision: str, writer: StripWriter, grid: TileGrid,
              progress: Progress, threads: Optional[int] = None, write_thread: bool = False) -> int:
    """Run the model over the batches as the reader threads deliver them; return the tiles embedded.

    The readers start first: they decode the first strips while the model is prepared for
    inference (BatchNorm folding), which on a short run is a fixed cost worth hiding. One batch
    stays in flight: on a GPU it is embedded while the next one is submitted and the last one is
    written (see :meth:`TileEncoder.submit`); it is written before its strip is. With
    ``write_thread`` the writing is handed to a thread of its own (beside a GPU, see
    :func:`~srl_core.threads.io_plan`), in the same order.
    """
    embedded = rows_done = cells_done = 0
    reported, fraction = time.monotonic(), 0.0  # readers finish strips in any order: keep it monotonic
    in_flight: Optional[tuple[TileBatch, PendingEmbeddings]] = None
    sink = WriterThread(writer) if write_thread else contextlib.nullcontext(writer)

    def write_in_flight() -> None:
        nonlocal in_flight
        if in_flight is not None:
            batch, pending = in_flight
            in_flight = None
            out.put(batch.rows, batch.cols, pending.result())

    with Prefetcher(readers, depth) as stream, limit_threads(threads), sink as out:
        encoder = TileEncoder(loaded, device, precision)
        progress.report(0.0, f"Embedding {grid.count} tiles on {encoder.device.type}")
        for item in stream:
            progress.check()
            if isinstance(item, TileBatch):
                submitted = (item, encoder.submit(item.tiles))
                write_in_flight()
                in_flight = submitted
                embedded += len(item.rows)
                if time.monotonic() - reported >= PROGRESS_INTERVAL_S:  # a strip can take a minute
                    reported, fraction = time.monotonic(), max(fraction, min(0.99, embedded / grid.count))
                    progress.report(fraction, f"{embedded} tiles embedded, {rows_done} of {grid.rows} tile "
                                    "rows done")
            else:
                write_in_flight()
                out.write_strip(item.row0, item.row1, item.col0, item.col1)
                cells_done += (item.row1 - item.row0) * (item.col1 - item.col0)
                rows_done = cells_done // grid.cols  # as whole rows: a backend's windows may be parts of rows
                fraction = max(fraction, rows_done / grid.rows)
                progress.report(fraction, f"{rows_done} of {grid.rows} tile rows")
        write_in_flight()
    progress.check()
    return embedded


@guards_files(outputs=["output_path"], inputs=["raster_path", "mask_path"])
@gdal_exceptions()
def embed_raster(
    raster_path: Union[str, Path],
    output_path: Union[str, Path],
    model: ModelLike,
    *,
    bands: Optional[Sequence[int]] = None,
    tile_size: Optional[int] = None,
    stride: Optional[int] = None,
    extent: Optional[Sequence[float]] = None,
    mask_path: Optional[Union[str, Path]] = None,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: Optional[int] = None,
    dtype: str = "float32",
    max_nodata_fraction: float = 0.5,
    normalisation: str = "auto",
    progress: Optional[Progress] = None,
    threads: Optional[int] = None,
    backend: Optional[Backend] = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    window_tiles: Optional[int] = None,
) -> EmbedRasterResult:
    """Embed every tile of a raster and write the embedding raster to ``output_path`` (GeoTIFF).

    ``model``: an id, a bundle folder, a loaded model, or ``"auto"`` (a learned model whose bands
    the raster has, else MOSAIKS: :func:`srl_core.training_free.resolve_model`); training-free
    models are fitted to this raster first. ``bands``: 1-based raster bands in the model's band
    order (default: chosen by :func:`srl_core.band_choice.choose_bands` from the raster's band
    names, else all or the first bands; the result's ``choices`` say which). ``tile_size``
    defaults to the model's, ``stride`` to the tile size. ``extent``: (xmin, ymin, xmax, ymax)
    in the raster's CRS. ``mask_path``: a raster (non-zero = inside) or polygon layer; tiles
    whose centre is outside are NaN, and the band statistics (compared with the model's, or used
    to standardise) come from inside it, as training takes its own.
    Tiles with more than ``max_nodata_fraction`` invalid pixels are NaN; the invalid pixels
    of other tiles are filled with the band mean. ``dtype``: "float32" or "float16".
    ``normalisation``: "model" standardises each band with the card's training statistics,
    "raster" with the raster's own (for another sensor or scaling; see :func:`normaliser_for`),
    "auto" (default) picks one of them (see :func:`choose_normalisation`). The choices made are
    written into the output's metadata, and a sample of the output is checked for degenerate
    embeddings (:mod:`srl_core.embedding_quality`), with a warning when they are.
    ``threads``: CPU threads for the model (default: see :mod:`srl_core.threads`); with the model on
    a CUDA GPU, the threads reading the raster and compressing the output (:func:`~srl_core.threads.io_plan`).
    ``precision``: "fp32" (default) or "mixed" (autocast on a CUDA GPU); ``batch_size``: tiles per
    model call, default 64 on the CPU and 1024 on a CUDA GPU (see :mod:`srl_core.tile_encoder`).

    By default everything runs in this process. ``workers`` (a Dask LocalCluster of that many
    workers), ``scheduler`` (the address of a running Dask cluster) or ``backend`` (any
    :mod:`srl_core.backends` backend) run the grid window by window instead, ``window_tiles``
    tiles a side (see :mod:`srl_core.tile_windows`): the output is the same whatever the
    number of workers, and a killed or failed run resumes from the windows already done.
    Local worker processes use ``threads`` threads each when it is given, else one each.
    """
    started = time.perf_counter()
    progress = ensure_progress(progress)
    used_device, batch_size = _check_settings(device, precision, batch_size, max_nodata_fraction, tile_size)
    if dtype not in OUTPUT_DTYPES:
        raise InputError(f"Output data type must be one of {OUTPUT_DTYPES}, got '{dtype}'.")
    require_geotiff_path(str(output_path))
    runner, parts = resolve_backend(backend, workers, scheduler, threads), None  # Dask starts on first use
    progress.report(0.0, "Loading the model")
    resolved = resolve_model(model, raster_path, bands)
    _check_space_before_binding(raster_path, output_path, resolved.card, bands, tile_size, stride, extent,
                                dtype, runner is not None)
    mask = str(mask_path) if mask_path else None
    loaded, inputs, band_choice, source, nodata_choice = _bound_source(resolved, raster_path, bands, mask)
    tile = inputs.tile_size if tile_size is None else int(tile_size)
    check_tile_size(loaded.card, tile)
    grid = _output_grid(source.width, source.height, source.geotransform, tile, stride, extent)
    dim = int(loaded.card.embedding_size)
    progress.report(0.0, _free_space_estimate(output_path, grid, dim, dtype, runner is not None))
    progress.report(0.0, "Reading band statistics")
    # inside the mask: training drew its statistics from inside its own (land only, say)
    normalisation, normalise, warnings, choices, sample = _standardisation(source, inputs, loaded.card,
                                                                           normalisation, progress, mask)
    warnings = warnings + _fill_warnings(source, sample, progress, mask)  # read afresh where no check sample
    choices = [band_choice.reason] * (bands is None) + nodata_choice + choices + _rotation_note(source)
    warnings = _no_crs_warning(source) + _palette_warning(source) + warnings
    out_gt = grid.output_geotransform(source.geotransform)
    skip = outside_mask(mask, out_gt, source.crs_wkt, grid.cols, grid.rows) if mask else None
    block = output_block_size(grid.cols, grid.rows, dim)
    strip_rows, chunk_cols = plan_windows(grid, len(source.bands), out_bytes_per_tile=4 * dim)
    strip_rows = align_strip_rows(strip_rows, block)
    plan = io_plan(used_device.type, threads)  # several threads only beside a GPU
    with atomic_output(output_path) as tmp:
        ds = create_geotiff(
            str(tmp), grid.cols, grid.rows, dim, dtype, out_gt, source.crs_wkt, EMBEDDING_NODATA,
            {**raster_metadata(loaded.card.id, dim, grid.tile_size, grid.stride),
             **settings_metadata(loaded.card), **_choice_metadata(source, normalisation, choices, mask)},
            field_names(dim),
            block_size=block,
            compress_threads=plan.compress_threads,
            predictor=False,
        )
        writer = StripWriter(ds, grid.cols, dim, block, str(output_path))
        bands = reader_bands(grid.rows, strip_rows, plan.readers)

        def batches(band: tuple[int, int]) -> Iterator[Union[TileBatch, StripDone]]:
            return grid_batches(source, grid, normalise, int(batch_size), float(max_nodata_fraction),
                                strip_rows, chunk_cols, skip, band, len(bands))

        try:
            if runner is None:
                depth = len(bands) * prefetch_depth(int(batch_size), len(source.bands), grid.tile_size)
                embedded = _run_grid([partial(batches, band) for band in bands], depth, loaded, device,
                                     precision, writer, grid, progress, threads, plan.write_thread)
            else:  # window by window on a backend (see srl_core.tile_windows)
                reached = replace(source, path=as_workers_reach(source.path))  # workers in other folders
                task = EmbedWindows(reached, grid, loaded, device, normalise, int(batch_size),
                                    float(max_nodata_fraction), skip, precision)
                settings = {"dtype": dtype, "precision": precision, "output": str(output_path)}
                embedded, parts = embed_windows(runner, task, writer, str(output_path), settings,
                                                window_tiles, progress)
            if embedded == 0:
                raise InputError(
                    f"No tile of {raster_path} has at most {max_nodata_fraction:.0%} nodata pixels"
                    + (" inside the mask" if mask_path else "") + ": nothing to embed."
                )
            writer.finish()
        except BaseException as exc:
            release_error_frames(exc)  # so that the line below closes the file whatever frame held it
            raise
        finally:
            writer.ds = ds = None  # closes the file, before it is renamed or removed
            if runner is not None and runner is not backend:
                runner.close()  # the Dask cluster started for this call
        warnings += _quality_warnings(tmp, writer.sample.vectors(), loaded.card, normalisation)
    # the output is in place: its parts are no longer needed, nor those an earlier run through workers kept
    # (stopped by SIGTERM, then finished here: a hidden float32 copy of its windows stayed for good)
    if parts is not None:
        parts.remove()
    else:
        remove_parts(str(output_path))
    progress.report(1.0, f"Embedded {embedded} tiles")
    return EmbedRasterResult(
        path=str(output_path), model_id=loaded.card.id, embedding_size=dim, width=grid.cols, height=grid.rows,
        tile_size=grid.tile_size, stride=grid.stride, tiles_total=grid.count, tiles_embedded=embedded,
        device=str(used_device), seconds=time.perf_counter() - started,
        warnings=tuple(warnings + _pixel_size_warning(source, inputs)), choices=tuple(choices),
    )


def _output_grid(width: int, height: int, geotransform: Sequence[float], tile: int, stride: Optional[int],
                 extent: Optional[Sequence[float]]) -> TileGrid:
    window = extent_to_window(geotransform, width, height, extent) if extent else None
    return make_grid(width, height, tile, stride, window)


def _free_space_estimate(output_path: Union[str, Path], grid: TileGrid, dim: int, dtype: str,
                         windowed: bool = False) -> str:
    """The output's size against the free space (an OutputError when it does not fit). ``windowed`` (on a
    backend): the windows' parts beside it hold the whole output again as float32 until it is written,
    less what an earlier run's parts already hold (a run through workers into a folder with room for the
    output alone failed on a full disk, and kept parts that made every rerun fail the check)."""
    needed = grid.cols * grid.rows * dim * np.dtype(dtype).itemsize
    detail = f"{grid.cols} x {grid.rows} pixels x {dim} bands of {dtype}"
    if windowed:
        needed += max(0, grid.cols * grid.rows * dim * 4 - parts_bytes(str(output_path)))
        detail += ", and its windows' parts while it runs on workers"
    return check_free_space(output_path, needed, detail)


def _check_space_before_binding(raster_path: Union[str, Path], output_path: Union[str, Path],
                                card: ModelCard, bands: Optional[Sequence[int]], tile_size: Optional[int],
                                stride: Optional[int], extent: Optional[Sequence[float]], dtype: str,
                                windowed: bool = False) -> None:
    """Refuse a disk too small for the output before a training-free model reads the raster to bind to
    it (a sample for the band statistics, patches for MOSAIKS' filters): no work before the refusal.
    Learned models are checked after loading, which reads no raster."""
    if not is_training_free(card):
        return
    tile = card.inputs.get("tile_size") if tile_size is None else tile_size
    if not isinstance(tile, (int, np.integer)) or tile < 1:
        return  # a card without a usable tile size is refused with its own message once bound
    ds = open_dataset(str(raster_path))
    dim = bound_embedding_size(card, len(bands) if bands else len(default_bands(ds)))  # as bound: no alpha
    grid = _output_grid(ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform(), tile, stride, extent)
    _free_space_estimate(output_path, grid, dim, dtype, windowed)


def _bound_source(resolved: LoadedModel, raster_path: Union[str, Path], bands: Optional[Sequence[int]],
                  mask: Optional[str] = None
                  ) -> tuple[LoadedModel, TileModelInputs, BandChoice, RasterSource, list[str]]:
    """``(model bound to the raster, its inputs, the bands chosen, the raster as read for it, the nodata
    choice made)``: what both tile engines set up before reading (see :func:`with_training_nodata`)."""
    loaded = bind_to_raster(resolved, raster_path, bands, mask)
    inputs = tile_model_inputs(loaded.card)
    band_choice = _band_choice(raster_path, inputs, loaded.card, bands)
    opened = open_source(str(raster_path), inputs.bands, band_choice.bands)
    source, nodata_choice = with_training_nodata(opened, inputs)
    return loaded, inputs, band_choice, source, nodata_choice


def _band_choice(raster_path: Union[str, Path], inputs: TileModelInputs, card: ModelCard,
                 bands: Optional[Sequence[int]]) -> BandChoice:
    """The analyst's bands as given, or the ones :func:`choose_bands` picks from the raster's band names."""
    if bands is not None:
        return BandChoice(tuple(int(b) for b in bands), "Bands chosen by the analyst.")
    return choose_bands(str(raster_path), inputs.bands, card_band_names(card.inputs))


def _choice_metadata(source: RasterSource, normalisation: str, choices: Sequence[str],
                     mask: Optional[str] = None) -> dict[str, str]:
    """Metadata items recording the bands and standardisation used (and where the raster's own statistics
    came from), and why."""
    return {**_standardisation_metadata(source, normalisation, mask), CHOICES_KEY: " ".join(choices)}


def _standardisation_metadata(source: RasterSource, normalisation: str,
                              mask: Optional[str]) -> dict[str, str]:
    """The bands and standardisation of a run; with the raster's own statistics, the area they were taken
    from: a masked run (land only, say) standardises otherwise than one over the whole raster, and
    classes or queries from one mean something else on the other."""
    area = {STATISTICS_AREA_KEY: f"the raster inside the mask {Path(mask).name}" if mask else WHOLE_RASTER}
    return {BANDS_KEY: ",".join(map(str, source.bands)), NORMALISATION_KEY: normalisation,
            **(area if normalisation == "raster" else {})}


@gdal_exceptions()
def embed_tiles_at_points(
    raster_path: Union[str, Path],
    xy: np.ndarray,
    model: ModelLike,
    *,
    bands: Optional[Sequence[int]] = None,
    tile_size: Optional[int] = None,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: Optional[int] = None,
    max_nodata_fraction: float = 0.5,
    normalisation: str = "auto",
    progress: Optional[Progress] = None,
    threads: Optional[int] = None,
    on_warning: Optional[Callable[[str], None]] = None,
    on_settings: Optional[Callable[[dict[str, str]], None]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the tiles centred at points ``xy`` (N, 2), given in the raster's CRS.

    Returns ``(embeddings float32 (N, D), valid bool (N,))``; rows of invalid points (tile
    not wholly inside the raster, too much nodata, non-finite coordinates) are NaN.
    ``normalisation``, ``threads`` and ``precision``: as for :func:`embed_raster`.
    ``on_warning`` receives, one by one, what embed_raster would warn of: the raster unlike the
    model's training data, undeclared fill, another pixel size, and embeddings that barely differ
    (the same check, on the points' embeddings); default: :func:`warnings.warn`. Embeddings of a
    raster in the wrong units look like any others, so these must reach the analyst.
    ``on_settings`` receives the metadata items an embedding raster records (tile size, bands,
    standardisation, the model's settings), for outputs of the points to say how they were made.
    """
    progress = ensure_progress(progress)
    batch_size = _check_settings(device, precision, batch_size, max_nodata_fraction, tile_size)[1]
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"Points must be an (N, 2) array of x, y coordinates; got shape {xy.shape}.")
    loaded, inputs, _, source, _ = _bound_source(resolve_model(model, raster_path, bands), raster_path, bands)
    tile = inputs.tile_size if tile_size is None else int(tile_size)
    check_tile_size(loaded.card, tile)
    make_grid(source.width, source.height, tile)  # a tile larger than the raster: every point NaN, unsaid
    say = on_warning or (lambda text: _warnings.warn(text, stacklevel=4))  # past the decorator: the caller
    normalisation, normalise, warnings, _, sample = _standardisation(source, inputs, loaded.card,
                                                                     normalisation, progress)
    for warning in (_training_warnings(loaded.card) + _palette_warning(source) + warnings
                    + _fill_warnings(source, sample, progress) + _pixel_size_warning(source, inputs)):
        say(warning)
    if on_settings is not None:
        on_settings({TILE_SIZE_KEY: str(tile), **settings_metadata(loaded.card),
                     **_standardisation_metadata(source, normalisation, None)})
    finite = np.isfinite(xy).all(axis=1) & (np.abs(xy) <= MAX_MAP_COORDINATE).all(axis=1)
    origins = np.full((len(xy), 2), -tile, dtype=np.int64)  # non-finite points: never inside
    origins[finite] = tile_origins_centred_at(source.geotransform, xy[finite], tile)
    encoder = TileEncoder(loaded, device, precision)
    embeddings = np.full((len(xy), encoder.size), np.nan, dtype=np.float32)
    valid = np.zeros(len(xy), dtype=bool)

    def batches() -> Iterator[TileBatch]:
        return point_batches(source, origins, tile, normalise, int(batch_size), float(max_nodata_fraction))

    done = 0
    with limit_threads(threads), Prefetcher(batches) as stream:
        for batch in stream:
            progress.check()
            embeddings[batch.rows] = encoder(batch.tiles)
            valid[batch.rows] = True
            done += len(batch.rows)
            progress.report(done / max(1, len(xy)), f"{done} tiles embedded")
    progress.report(1.0, f"{int(valid.sum())} of {len(xy)} points embedded")
    advice = _spread_advice(loaded.card, normalisation)
    degenerate = spread_warning(spread(embeddings[valid]), loaded.card, advice)
    if degenerate:
        say(degenerate)
    return embeddings, valid
