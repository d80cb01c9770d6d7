"""The tile engine window by window, for a backend: each window of the tile grid is one task.

:func:`srl_core.tiles.embed_raster` comes here when it is given a backend (or ``workers``
or ``scheduler``). The grid is cut into windows of at most ``window_tiles`` tiles a side;
a task reads the window's pixels itself, by the raster's path (any GDAL path), embeds
them with the same reader and model code as the in-process path, and returns the window's
embeddings (D, h, w). Results become parts (:mod:`srl_core.raster.parts`), written to the
output in window order, so the output is the same, bit for bit, whatever the backend and
its number of workers; a killed or failed run resumes from its parts.

The windows do not depend on the backend, and a window's tiles go to the model in the
same batches everywhere. They differ from the in-process streaming path's batches (which
run on across windows), and a model's output can differ in the last bits with the batch
it was computed in (a batch of one tile takes another convolution algorithm): compare
windowed runs with windowed runs (:class:`~srl_core.backends.local.LocalBackend`).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .bundle import LoadedModel
from .errors import InputError
from .progress import Progress
from .raster.grid import TileGrid
from .raster.parts import PartStore, fingerprint, run_parts, sources_stamp, weights_digest
from .raster.reader import Normaliser, Prefetcher, TileBatch, grid_batches, plan_windows, prefetch_depth
from .raster.source import RasterSource
from .raster.writer import StripWriter
from .tile_encoder import TileEncoder

# At most this many tiles a window side. A window costs about 45 ms besides its tiles (43 ms on its
# worker: its reads decode whole source blocks shared with its neighbours, and the model waits for its
# first read; 2.5 ms of scheduling: benchmarks/bench_dask.py); at the bundled model's 0.22 ms a tile,
# 64 x 64 tiles keep that near 5 %.
DEFAULT_WINDOW_TILES = 64


@dataclass(frozen=True)
class GridWindow:
    """Tile rows [row0, row1) x columns [col0, col1) of the grid."""

    row0: int
    row1: int
    col0: int
    col1: int


def grid_windows(grid: TileGrid, side: int) -> list[GridWindow]:
    """The grid cut into windows of at most ``side`` x ``side`` tiles, row by row.

    The rows (and columns) are shared evenly between as few windows as ``side`` allows, so
    that no window is a sliver: 100 tiles at side 64 make two windows of 50, not 64 and 36,
    which keeps two workers equally busy and every window's fixed cost worth its tiles.
    """
    return [GridWindow(r0, r1, c0, c1) for r0, r1 in _even_cuts(grid.rows, side)
            for c0, c1 in _even_cuts(grid.cols, side)]


def _even_cuts(count: int, side: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of ``ceil(count / side)`` nearly equal runs covering ``range(count)``."""
    parts = -(-count // side)
    bounds = [count * i // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass
class EmbedWindows:
    """The task: embeddings (D, h, w) of one window. Sent to each worker once; builds its model there."""

    source: RasterSource
    grid: TileGrid
    model: LoadedModel
    device: str
    normalise: Normaliser
    batch_size: int
    max_nodata_fraction: float
    skip: Optional[np.ndarray] = None
    precision: str = "fp32"
    _encoder: Any = field(default=None, init=False, repr=False)
    _lock: Any = field(default_factory=threading.Lock, init=False, repr=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_encoder"], state["_lock"] = None, None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def encoder(self) -> Any:
        with self._lock:
            if self._encoder is None:
                self._encoder = TileEncoder(self.model, self.device, self.precision)
            return self._encoder

    def __call__(self, window: GridWindow) -> np.ndarray:
        encoder = self.encoder()
        g = self.grid
        col_off, row_off = g.tile_origin(window.row0, window.col0)
        sub = TileGrid(g.tile_size, g.stride, col_off, row_off, window.col1 - window.col0,
                       window.row1 - window.row0)
        strip_rows, chunk_cols = plan_windows(sub, len(self.source.bands),
                                              out_bytes_per_tile=4 * encoder.size)
        skip = None if self.skip is None else self.skip[window.row0:window.row1, window.col0:window.col1]
        out = np.full((sub.rows, sub.cols, encoder.size), np.nan, dtype=np.float32)

        def batches() -> Any:
            return grid_batches(self.source, sub, self.normalise, self.batch_size, self.max_nodata_fraction,
                                strip_rows, chunk_cols, skip)

        depth = prefetch_depth(self.batch_size, len(self.source.bands), g.tile_size)
        with Prefetcher(batches, depth) as stream:
            for item in stream:
                if isinstance(item, TileBatch):
                    out[item.rows, item.cols] = encoder(item.tiles)
        return np.ascontiguousarray(out.transpose(2, 0, 1))


def model_identity(model: LoadedModel) -> dict:
    """What makes a model's embeddings what they are, for the parts' fingerprint: its card id,
    config, inputs (a bound training-free card's band statistics) and embedding size, and its
    weights and buffers. Training-free models have no weights, so the digest alone would let
    one such model resume from another's parts."""
    card = model.card
    return {"id": card.id, "config": card.config, "inputs": card.inputs,
            "embedding_size": card.embedding_size, "weights": weights_digest(model.module)}


def embed_windows(backend: Any, task: EmbedWindows, writer: StripWriter, output_path: str,
                  settings: dict, window_tiles: Optional[int], progress: Progress) -> tuple[int, PartStore]:
    """Run the task over every window on ``backend``, writing the output; return (tiles embedded, parts).

    ``settings`` (everything else that shapes the output: dtype, extent, mask ...) goes
    into the parts' fingerprint. The caller removes the parts once the output is in place.
    """
    side = int(window_tiles or DEFAULT_WINDOW_TILES)
    if side < 1:
        raise InputError(f"Windows must be at least 1 tile a side, got {window_tiles}.")
    windows = grid_windows(task.grid, side)
    skip = None if task.skip is None else hashlib.sha256(task.skip.tobytes()).hexdigest()
    key = fingerprint({"raster": task.source.path, "stamp": sources_stamp(task.source.path),
                       "bands": task.source.bands, "grid": task.grid,
                       "model": model_identity(task.model),
                       "mean": task.normalise.mean.ravel().tolist(),
                       "scale": task.normalise.scale.ravel().tolist(), "batch": task.batch_size,
                       "nodata": task.max_nodata_fraction, "side": side, "skip": skip, **settings})
    parts = PartStore(output_path, key)
    embedded = 0

    def write(index: int, array: np.ndarray) -> None:
        nonlocal embedded
        window = windows[index]
        writer.write_window(window.row0, window.col0, array)
        embedded += int(np.isfinite(array[0]).sum())

    progress.report(0.0, f"Embedding {task.grid.count} tiles in {len(windows)} windows on {backend.name}")
    run_parts(backend, task, windows, parts, write, progress)
    if embedded == 0:
        parts.remove()  # nothing to embed: the caller says so, and a rerun would find the same
    return embedded, parts
