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
valid enough to embed. Output problems (folder not writable, disk full) are an
:class:`~srl_core.errors.OutputError`. On any error or cancel, nothing is left at the output path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from osgeo import osr

from .atomic import atomic_output
from .bundle import LoadedModel, ModelCard
from .device import resolve_device
from .embedding_format import EMBEDDING_NODATA, field_names, raster_metadata
from .errors import InputError, ModelError, OutputError
from .models.tile import TileNet, fuse_for_inference
from .progress import Progress, ensure_progress
from .raster.geotiff import create_geotiff
from .raster.grid import TileGrid, extent_to_window, make_grid, tile_origins_centred_at
from .raster.mask import outside_mask
from .raster.reader import (
    Normaliser,
    Prefetcher,
    StripDone,
    TileBatch,
    grid_batches,
    plan_windows,
    point_batches,
)
from .raster.source import RasterSource, open_source
from .raster.statistics import band_statistics
from .raster.writer import StripWriter, align_strip_rows, output_block_size
from .training_free import bind_to_raster, resolve_model, settings_metadata

ModelLike = Union[str, Path, LoadedModel]
OUTPUT_DTYPES = ("float32", "float16")
NORMALISATIONS = ("model", "raster")  # the card's training statistics, or the raster's own
UNLIKE_TRAINING_SIGMAS = 3.0  # warn when a band's mean is further than this from the card's, in card stds
WARNING_SAMPLE_PIXELS = 65_536  # enough for a band mean, cheap beside any embedding run
PIXEL_SIZE_WARNING_RATIO = 1.5  # warn when the raster's pixels differ from the model's by more


@dataclass(frozen=True)
class TileModelInputs:
    """What a tile model's card says about its inputs."""

    bands: int
    tile_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_size_m: Optional[float]


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


def tile_model_inputs(card: ModelCard) -> TileModelInputs:
    """Read and check the inputs section of a tile model's card."""
    if card.kind != "tile":
        raise ModelError(f"Model '{card.id}' is a {card.kind} model, not a tile model.")
    bands = int(card.config.get("in_channels", len(card.inputs.get("bands", []))))
    norm = card.inputs.get("normalisation") or {}
    mean, std = norm.get("mean"), norm.get("std")
    if mean is None or std is None or len(mean) != bands or len(std) != bands:
        raise ModelError(
            f"Model '{card.id}': its card needs inputs.normalisation with {bands} means "
            "and standard deviations."
        )
    if not all(np.isfinite(v) for v in [*mean, *std]) or min(std) <= 0:
        raise ModelError(f"Model '{card.id}': its normalisation has a non-positive or non-finite value.")
    tile = card.inputs.get("tile_size")
    if not tile:
        raise ModelError(f"Model '{card.id}': its card does not give the tile size (inputs.tile_size).")
    pixel = card.inputs.get("pixel_size_m")
    return TileModelInputs(bands=bands, tile_size=int(tile), mean=tuple(float(v) for v in mean),
                           std=tuple(float(v) for v in std), pixel_size_m=float(pixel) if pixel else None)


class TileEncoder:
    """The model ready on its device: float32 tiles (n, C, T, T) in, float32 embeddings (n, D) out.

    A TileNet runs with its BatchNorms folded into its convolutions and channels-last
    tensors on CPU and CUDA (2-3x faster on CPU); the loaded module is left as it is.
    """

    def __init__(self, loaded: LoadedModel, device: str = "auto") -> None:
        self.device = resolve_device(device)
        module = loaded.module.eval()
        self.channels_last = isinstance(module, TileNet) and self.device.type in ("cpu", "cuda")
        if isinstance(module, TileNet):
            module = fuse_for_inference(module)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        self.module = module.to(self.device)
        self.size = int(loaded.card.embedding_size)
        self.model_id = loaded.card.id

    def __call__(self, tiles: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(tiles).to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = self.module(x)
        if out.ndim != 2 or out.shape[1] != self.size:
            raise ModelError(
                f"Model '{self.model_id}' returned embeddings of shape {tuple(out.shape)}, "
                f"its card says {self.size} dimensions."
            )
        return out.float().cpu().numpy()


def _pixel_size_warning(source: RasterSource, inputs: TileModelInputs) -> list[str]:
    if not inputs.pixel_size_m or not source.crs_wkt:
        return []
    srs = osr.SpatialReference()
    srs.ImportFromWkt(source.crs_wkt)
    metres = source.pixel_size * srs.GetLinearUnits()
    ratio = max(metres, inputs.pixel_size_m) / min(metres, inputs.pixel_size_m)
    if ratio <= PIXEL_SIZE_WARNING_RATIO:
        return []
    return [f"The raster's pixels are {metres:g} m, the model was trained on {inputs.pixel_size_m:g} m "
            "pixels: embeddings may be less meaningful. Resample the raster to the model's pixel size."]


def normaliser_for(source: RasterSource, inputs: TileModelInputs, normalisation: str) -> Normaliser:
    """The per-band standardisation: ``"model"`` with the card's training statistics (same sensor
    and units as the training imagery), ``"raster"`` with the raster's own (another sensor or
    scaling: see :mod:`srl_core.raster.statistics`)."""
    if normalisation not in NORMALISATIONS:
        raise InputError(f"Normalisation must be one of {NORMALISATIONS}, got '{normalisation}'.")
    if normalisation == "raster":
        stats = band_statistics(source)
        return Normaliser(stats.mean, stats.std)
    return Normaliser(inputs.mean, inputs.std)


def _unlike_training_warning(source: RasterSource, inputs: TileModelInputs) -> list[str]:
    """A warning when a band's mean is far from the card's: another sensor or scaling, most likely."""
    try:
        stats = band_statistics(source, max_pixels=WARNING_SAMPLE_PIXELS)
    except InputError:  # nothing valid or a constant band: the embedding itself reports what is wrong
        return []
    shift = np.abs(np.subtract(stats.mean, inputs.mean)) / np.asarray(inputs.std)
    worst = int(shift.argmax())
    if shift[worst] <= UNLIKE_TRAINING_SIGMAS:
        return []
    return [f"Band {source.bands[worst]} averages {stats.mean[worst]:.4g}, {shift[worst]:.0f} standard "
            "deviations from the model's training data: the raster seems to come from another sensor or "
            "scaling, and the embeddings may be meaningless. Standardise by the raster's own statistics "
            "(normalisation 'raster')."]


def _check_settings(batch_size: int, max_nodata_fraction: float) -> None:
    if int(batch_size) < 1:
        raise InputError(f"Batch size must be at least 1, got {batch_size}.")
    if not 0.0 <= float(max_nodata_fraction) <= 1.0:
        raise InputError(f"max_nodata_fraction must be between 0 and 1, got {max_nodata_fraction}.")


def _run_grid(batches: Callable[[], Iterator[Union[TileBatch, StripDone]]], encoder: TileEncoder,
              writer: StripWriter, grid: TileGrid, progress: Progress) -> int:
    """Run the model over the batches as the reader thread delivers them; return the tiles embedded."""
    progress.report(0.0, f"Embedding {grid.count} tiles on {encoder.device.type}")
    embedded = 0
    with Prefetcher(batches) as stream:
        for item in stream:
            progress.check()
            if isinstance(item, TileBatch):
                writer.put(item.rows, item.cols, encoder(item.tiles))
                embedded += len(item.rows)
            else:
                writer.write_strip(item.row0, item.row1)
                progress.report(item.row1 / grid.rows, f"{item.row1} of {grid.rows} tile rows")
    progress.check()
    return embedded


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
    batch_size: int = 64,
    dtype: str = "float32",
    max_nodata_fraction: float = 0.5,
    normalisation: str = "model",
    progress: Optional[Progress] = None,
) -> EmbedRasterResult:
    """Embed every tile of a raster and write the embedding raster to ``output_path`` (GeoTIFF).

    ``model``: an id, a bundle folder, a loaded model, or ``"auto"`` (a learned model made for
    the raster's band count, else MOSAIKS: :mod:`srl_core.training_free`); training-free models
    are fitted to this raster first. ``bands``: 1-based raster bands in the model's band order
    (default: all bands, when their number is the model's). ``tile_size`` defaults to the
    model's, ``stride`` to the tile size. ``extent``: (xmin, ymin, xmax, ymax) in the raster's
    CRS. ``mask_path``: a raster (non-zero = inside) or polygon layer; tiles whose centre is outside are NaN.
    Tiles with more than ``max_nodata_fraction`` invalid pixels are NaN; the invalid pixels
    of other tiles are filled with the band mean. ``dtype``: "float32" or "float16".
    ``normalisation``: "model" standardises each band with the card's training statistics,
    "raster" with the raster's own (for another sensor or scaling; see :func:`normaliser_for`).
    """
    started = time.perf_counter()
    progress = ensure_progress(progress)
    _check_settings(batch_size, max_nodata_fraction)
    if dtype not in OUTPUT_DTYPES:
        raise InputError(f"Output data type must be one of {OUTPUT_DTYPES}, got '{dtype}'.")
    if Path(output_path).expanduser().resolve() == Path(raster_path).expanduser().resolve():
        raise OutputError("The output would overwrite the input raster; choose another output path.")
    progress.report(0.0, "Loading the model")
    loaded = bind_to_raster(resolve_model(model, raster_path, bands), raster_path, bands)
    inputs = tile_model_inputs(loaded.card)
    source = open_source(str(raster_path), inputs.bands, bands)
    normalise = normaliser_for(source, inputs, normalisation)
    warnings = _unlike_training_warning(source, inputs) if normalisation == "model" else []
    tile = int(tile_size or inputs.tile_size)
    window = extent_to_window(source.geotransform, source.width, source.height, extent) if extent else None
    grid = make_grid(source.width, source.height, tile, stride, window)
    out_gt = grid.output_geotransform(source.geotransform)
    skip = outside_mask(str(mask_path), out_gt, source.crs_wkt, grid.cols, grid.rows) if mask_path else None
    encoder = TileEncoder(loaded, device)
    dim = encoder.size
    block = output_block_size(grid.cols, grid.rows, dim)
    strip_rows, chunk_cols = plan_windows(grid, len(source.bands), out_bytes_per_tile=4 * dim)
    strip_rows = align_strip_rows(strip_rows, block)
    with atomic_output(output_path) as tmp:
        ds = create_geotiff(
            str(tmp), grid.cols, grid.rows, dim, dtype, out_gt, source.crs_wkt, EMBEDDING_NODATA,
            {**raster_metadata(loaded.card.id, dim, grid.tile_size, grid.stride),
             **settings_metadata(loaded.card)},
            field_names(dim),
            block_size=block,
        )
        writer = StripWriter(ds, grid.cols, dim, block, str(output_path))

        def batches() -> Iterator[Union[TileBatch, StripDone]]:
            return grid_batches(source, grid, normalise, int(batch_size), float(max_nodata_fraction),
                                strip_rows, chunk_cols, skip)

        try:
            embedded = _run_grid(batches, encoder, writer, grid, progress)
            if embedded == 0:
                raise InputError(
                    f"No tile of {raster_path} has at most {max_nodata_fraction:.0%} nodata pixels"
                    + (" inside the mask" if mask_path else "") + ": nothing to embed."
                )
            writer.finish()
        finally:
            writer.ds = ds = None  # closes the file, before it is renamed or removed
    progress.report(1.0, f"Embedded {embedded} tiles")
    return EmbedRasterResult(
        path=str(output_path), model_id=loaded.card.id, embedding_size=dim, width=grid.cols, height=grid.rows,
        tile_size=grid.tile_size, stride=grid.stride, tiles_total=grid.count, tiles_embedded=embedded,
        device=str(encoder.device), seconds=time.perf_counter() - started,
        warnings=tuple(warnings + _pixel_size_warning(source, inputs)),
    )


def embed_tiles_at_points(
    raster_path: Union[str, Path],
    xy: np.ndarray,
    model: ModelLike,
    *,
    bands: Optional[Sequence[int]] = None,
    tile_size: Optional[int] = None,
    device: str = "auto",
    batch_size: int = 64,
    max_nodata_fraction: float = 0.5,
    normalisation: str = "model",
    progress: Optional[Progress] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of the tiles centred at points ``xy`` (N, 2), given in the raster's CRS.

    Returns ``(embeddings float32 (N, D), valid bool (N,))``; rows of invalid points (tile
    not wholly inside the raster, too much nodata, non-finite coordinates) are NaN.
    ``normalisation``: as for :func:`embed_raster`.
    """
    progress = ensure_progress(progress)
    _check_settings(batch_size, max_nodata_fraction)
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"Points must be an (N, 2) array of x, y coordinates; got shape {xy.shape}.")
    loaded = bind_to_raster(resolve_model(model, raster_path, bands), raster_path, bands)
    inputs = tile_model_inputs(loaded.card)
    source = open_source(str(raster_path), inputs.bands, bands)
    normalise = normaliser_for(source, inputs, normalisation)
    tile = int(tile_size or inputs.tile_size)
    if tile < 1:
        raise InputError(f"Tile size must be a positive number of pixels, got {tile}.")
    finite = np.isfinite(xy).all(axis=1)
    origins = np.full((len(xy), 2), -tile, dtype=np.int64)  # non-finite points: never inside
    origins[finite] = tile_origins_centred_at(source.geotransform, xy[finite], tile)
    encoder = TileEncoder(loaded, device)
    embeddings = np.full((len(xy), encoder.size), np.nan, dtype=np.float32)
    valid = np.zeros(len(xy), dtype=bool)

    def batches() -> Iterator[TileBatch]:
        return point_batches(source, origins, tile, normalise, int(batch_size), float(max_nodata_fraction))

    done = 0
    with Prefetcher(batches) as stream:
        for batch in stream:
            progress.check()
            embeddings[batch.rows] = encoder(batch.tiles)
            valid[batch.rows] = True
            done += len(batch.rows)
            progress.report(done / max(1, len(xy)), f"{done} tiles embedded")
    progress.report(1.0, f"{int(valid.sum())} of {len(xy)} points embedded")
    return embeddings, valid
