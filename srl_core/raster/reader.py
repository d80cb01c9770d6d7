"""Streaming tiles out of a raster: few large reads, tiles cut in memory, reading ahead of the model.

The grid is read in *strips* of tile rows. A strip spans the full width of the grid when
it fits the memory budget and is otherwise split into column windows. Reads go down each
column window in whole block rows of the source, one GDAL call for all bands as float32,
and rows already read are kept for the next strip: every source block is decoded once,
the rows two strips share (stride < tile) are not read again, and GDAL's block cache is
emptied as each block row is done so that it does not grow with the raster. A block row too
large to hold as float32 within the read-ahead budget (a very wide raster) is read strip by
strip instead, its decoded blocks kept in GDAL's cache until the last strip that needs them.
Tiles are cut from these rows with NumPy, so overlapping tiles share the pixels read.

Sparse grids (stride > tile) keep only the rows and columns some tile covers: each tile
row is read on its own, in the stored type, the columns between tiles dropped, and only the
rest converted, checked and normalised; tiles are then cut from this compact array as if
the stride were the tile size. A tiled file's blocks are still decoded whole (once: the
other tile rows of a block come from GDAL's block cache); a file stored in strips has only
the strips that tiles cover decoded. Integer rasters skip the per-pixel NaN/inf check.

Pixels are normalised once per window, as ``(x - mean) / std``; invalid pixels (a band's
nodata value, NaN/inf, or a zero in a mask band: the raster's, an alpha band or a band's own)
become 0, the band mean (NaN for the training-free models, which leave them out). Rasters without mask
bands read none.
A tile is kept when at most ``max_invalid_fraction`` of its pixels are invalid, counted
for all tiles of a window at once with a summed-area table. Tiles reach the model north-up
whatever the raster's row order: a south-up raster's tiles (positive pixel height) have their
rows flipped as they are cut, and where x grows leftwards their columns.

:class:`Prefetcher` runs the reading in a thread with a bounded queue, so the next
batches are read and cut while the model computes (GDAL and NumPy release the GIL).
Memory is bounded by one window plus ``PREFETCH_BYTES`` of batches, whatever the raster's size.

Beside a model fast enough to wait on one reader (a CUDA GPU), several readers run at once, each
on its own band of tile rows (:func:`reader_bands`) with its own GDAL dataset: batches then arrive
in no fixed order, and strips are written as output block rows complete
(:class:`srl_core.raster.writer.StripWriter`). Each cut between bands decodes at most one source
block row twice. Memory: one window and one queue's worth of batches per reader; the read-ahead
budget and GDAL's block cache are shared out between them. (Bands of tile columns on a wide grid,
tried on 28 Nov 2026, were slower beside an H200 in 12 of 16 same-call comparisons, by up to 1.7x:
see the README's *GPU* section.)
"""

from __future__ import annotations

import functools
import math
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence, Union

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from osgeo import gdal

from ..errors import InputError
from ..gdal_exceptions import gdal_exceptions
from ..signals import through_signals
from .grid import TileGrid
from .source import RasterSource, open_dataset

# Budget for one window's pixels and masks: large enough for hundreds of tiles per GDAL call,
# small enough that the first batch is ready soon and reading overlaps computing from the start.
DEFAULT_WINDOW_BYTES = 16 * 1024 * 1024
# Batches the reader may hold ready for the model: a whole read's worth (a block row of tiles at a sparse
# stride: 8 batches of the bundled model on a 8164 px wide raster), so that it decodes the next block row
# while the model works through this one instead of waiting for room in the queue.
PREFETCH_BYTES = 16 * 1024 * 1024
MIN_PREFETCH = 3
LAUNCH_WAIT_S = 2.0  # how long a reader thread whose start was interrupted may take to show up
# Reads may run on to the end of a source block row (so that no block is decoded twice)
# while the rows held stay under this.
READ_AHEAD_BYTES = 256 * 1024 * 1024


@dataclass
class TileBatch:
    """Normalised tiles ``(n, C, T, T)`` float32 and where they go: grid rows/cols, or point indices."""

    tiles: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


@dataclass
class StripDone:
    """Every kept tile of grid rows [row0, row1), columns [col0, col1), has been handed out in
    earlier batches."""

    row0: int
    row1: int
    col0: int
    col1: int


class Normaliser:
    """Per-band ``(x - mean) / std`` in place, invalid pixels set to ``fill`` (std checked by the caller).

    ``fill`` is 0, the band mean, for networks (trained so); NaN for a model that leaves invalid pixels
    out of what it computes (band statistics over a tile's valid pixels)."""

    def __init__(self, mean: Iterable[float], std: Iterable[float], fill: float = 0.0) -> None:
        self.mean = np.asarray(list(mean), dtype=np.float32)[:, None, None]
        self.scale = (1.0 / np.asarray(list(std), dtype=np.float32))[:, None, None]
        self.fill = float(fill)

    def __call__(self, pixels: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        pixels -= self.mean
        pixels *= self.scale
        if invalid.any():
            pixels[:, invalid] = self.fill
        return pixels


def read_window(ds: gdal.Dataset, source: RasterSource, x: int, y: int, w: int, h: int,
                keep: Optional[tuple[np.ndarray, np.ndarray]] = None) -> tuple[np.ndarray, np.ndarray]:
    """All mapped bands of one window as float32 ``(C, h, w)`` plus its invalid-pixel mask ``(h, w)``.

    ``keep``: (rows, cols) indices within the window; only those rows and columns are kept,
    converted to float32 after the others are dropped (sparse tiles).
    """
    try:
        if keep is None:
            pixels = ds.ReadAsArray(x, y, w, h, band_list=list(source.bands), buf_type=gdal.GDT_Float32)
        else:
            pixels = ds.ReadAsArray(x, y, w, h, band_list=list(source.bands))
        masked = _masked(ds, source, x, y, w, h)
    except RuntimeError as exc:
        raise InputError(f"Cannot read pixels {w} x {h} at ({x}, {y}) of {source.path}: {exc}") from exc
    pixels = pixels.reshape(len(source.bands), h, w)
    if keep is not None:
        rows, cols = keep[0][:, None], keep[1][None, :]
        pixels = pixels[:, rows, cols].astype(np.float32, copy=False)
        masked = None if masked is None else masked[rows, cols]
    invalid = (np.zeros(pixels.shape[1:], dtype=bool) if source.integer
               else ~np.isfinite(pixels).all(axis=0))
    for band, nodata in enumerate(source.nodata):
        if nodata is not None:
            invalid |= _is_nodata(pixels[band], nodata)
    if masked is not None:
        invalid |= masked
    return pixels, invalid


HUGE_NODATA = 1e30  # no-data values this large are the float's extremes (-3.4028235e38), often written short


def _is_nodata(band: np.ndarray, nodata: float) -> np.ndarray:
    """Where ``band`` (float32) holds ``nodata``: exactly, as GDAL compares; a huge no-data value within
    1e-4 of itself, as GDAL's mask band takes one close to the float's extreme for the extreme. Declared
    as '-3.402823e+38' (C's %e), the float's lowest value in the pixels was data: 81,535 fill pixels
    embedded and a band mean of -1.3e38 making every real pixel alike, without a word."""
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 (a float64 band's 1e300): inf
        value = np.float32(nodata)
        if not np.isfinite(value) or not abs(float(nodata)) >= HUGE_NODATA:
            # beyond float32 (ArcGIS's float64 -1.797e308; -inf): such fill reads as +-inf, which alone is
            # nodata (a tolerance of inf took every pixel for nodata: "every pixel is nodata")
            return band == value
        return np.abs(band - value) <= np.float32(1e-4) * np.abs(value)


def _masked(ds: gdal.Dataset, source: RasterSource, x: int, y: int, w: int, h: int) -> Optional[np.ndarray]:
    """Pixels of the window that a mask band marks invalid (0) in any of the source's mask bands
    (:attr:`RasterSource.mask_bands`) or its alpha bands GDAL takes for no mask (``alpha_bands``), ``(h, w)``
    bool; None for a raster without either."""
    masked = None
    masks = [ds.GetRasterBand(band).GetMaskBand() for band in source.mask_bands]
    masks += [ds.GetRasterBand(band) for band in source.alpha_bands]  # as values: GDAL gives them no mask
    for mask in masks:
        zero = mask.ReadAsArray(x, y, w, h) == 0
        masked = zero if masked is None else np.logical_or(masked, zero, out=masked)
    return masked


def _kept(fractions: np.ndarray, max_invalid_fraction: float) -> np.ndarray:
    """Tiles with at most ``max_invalid_fraction`` nodata pixels and at least one valid: at 1.0, tiles of
    no valid pixel were embedded, as 0.0 in every value (a made-up embedding of no ground)."""
    return (fractions <= max_invalid_fraction) & (fractions < 1.0)


def invalid_fractions(invalid: np.ndarray, ys: np.ndarray, xs: np.ndarray, tile: int) -> np.ndarray:
    """Fraction of invalid pixels of the tiles with top-left (ys, xs) in ``invalid`` (summed-area table)."""
    if not invalid.any():
        return np.zeros(len(ys))
    table = np.zeros((invalid.shape[0] + 1, invalid.shape[1] + 1), dtype=np.int32)
    np.cumsum(np.cumsum(invalid, axis=0, dtype=np.int32), axis=1, out=table[1:, 1:])
    total = table[ys + tile, xs + tile] - table[ys, xs + tile] - table[ys + tile, xs] + table[ys, xs]
    return total / float(tile * tile)


class _BatchBuilder:
    """Collects tiles cut from windows into batches of exactly ``size`` (the last may be short).

    ``flip``: the tile axes to flip so that tiles are north-up (:attr:`RasterSource.flip_axes`);
    flipping the cut tiles' view costs nothing, the batch's copy is made anyway.
    """

    def __init__(self, size: int, flip: tuple[int, ...] = ()) -> None:
        self.size = size
        self.flip = flip
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.count = 0

    def add(self, pixels: np.ndarray, tile: int, ys: np.ndarray, xs: np.ndarray, rows: np.ndarray,
            cols: np.ndarray) -> Iterator[TileBatch]:
        """Cut the tiles at (ys, xs) from ``pixels`` chunk by chunk; yield each batch that fills up."""
        view = sliding_window_view(pixels, (tile, tile), axis=(1, 2))
        start = 0
        while start < len(ys):
            stop = min(len(ys), start + self.size - self.count)
            cut = np.flip(view[:, ys[start:stop], xs[start:stop]].transpose(1, 0, 2, 3), self.flip)
            self.parts.append((np.ascontiguousarray(cut), rows[start:stop], cols[start:stop]))
            self.count += stop - start
            start = stop
            if self.count == self.size:
                yield self.flush()

    def flush(self) -> TileBatch:
        tiles, rows, cols = (np.concatenate(p) for p in zip(*self.parts))
        self.parts, self.count = [], 0
        return TileBatch(tiles=tiles, rows=rows, cols=cols)


def _owner(view: np.ndarray) -> np.ndarray:
    """The array whose memory ``view`` keeps alive."""
    while isinstance(view.base, np.ndarray):
        view = view.base
    return view


class _RowBuffer:
    """Normalised source rows of one column window, read downwards in whole block rows.

    Each call returns rows [y0, y1), reading only the rows not held yet, extended to the
    end of a source block row (or, past the read-ahead budget, only to y1, the block row's
    decoded blocks then left in GDAL's cache for the next reads); rows above y0 are dropped.
    Every source block is thus decoded once (while GDAL's cache can hold a block row),
    overlapping strips share their rows, and GDAL's block cache, emptied as each block row is
    done, does not grow with the raster. Between strips a buffer keeps at most one block row
    plus the strips' overlap: with column windows (very wide rasters) that is about one row of
    source blocks across the raster, as GDAL's own cache would need.

    Sparse tiles: ``rows_at`` (source row of each compact row, increasing) and ``cols``
    (source columns kept, from ``x``) make the buffer hold only those rows and columns;
    ``y0``, ``y1`` are then compact rows and ``w`` is ``len(cols)``.
    """

    def __init__(self, ds: gdal.Dataset, source: RasterSource, normalise: Normaliser, x: int, w: int,
                 rows_at: Optional[np.ndarray] = None, cols: Optional[np.ndarray] = None,
                 readers: int = 1) -> None:
        self.ds, self.source, self.normalise, self.x = ds, source, normalise, x
        self.rows_at, self.cols = rows_at, cols
        # Shares of GDAL's block cache and of the read-ahead budget: room left to the other readers.
        self.cache_share = gdal.GetCacheMax() // (2 * readers)
        self.read_ahead = READ_AHEAD_BYTES // readers
        self.itemsize = gdal.GetDataTypeSize(ds.GetRasterBand(source.bands[0]).DataType) // 8
        self.w = w if cols is None else len(cols)
        self.read_w = w if cols is None else int(cols[-1]) + 1
        self.top = self.bottom = 0
        self.pixels = np.empty((len(source.bands), 0, self.w), dtype=np.float32)
        self.invalid = np.empty((0, self.w), dtype=bool)

    def drop_above(self, y: int) -> None:
        """Forget the rows above ``y``. The rest stay a view of the rows read: copying them for each
        strip cost a quarter of the reading time with whole block rows held (``get`` copies them once,
        before its next read, so that the forgotten rows are freed before new ones are read). Unless
        the view would keep more than twice its size alive: a window's buffer waiting for its next
        strip then held its whole last read, and with one buffer per window and reader, 8 readers
        across a 24,492 px wide mosaic held 2.2 GB of rows they no longer needed (measured).
        Halving before copying keeps the copies to about one block row per read."""
        if y >= self.bottom:
            self.top = self.bottom = y
            self.pixels, self.invalid = self.pixels[:, :0].copy(), self.invalid[:0].copy()
        elif y > self.top:
            skip = y - self.top
            self.pixels, self.invalid = self.pixels[:, skip:], self.invalid[skip:]
            self.top = y
            if 2 * self.pixels.nbytes < _owner(self.pixels).nbytes:
                self.pixels, self.invalid = self.pixels.copy(), self.invalid.copy()

    def get(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [y0, y1); ``y0`` may not go back above rows already dropped."""
        if y0 < self.top:
            self.drop_above(self.bottom)
            self.top = self.bottom = y0
        self.drop_above(y0)
        if y1 > self.bottom:
            if self.pixels.base is not None:  # a view (see drop_above): free the forgotten rows first
                self.pixels, self.invalid = self.pixels.copy(), self.invalid.copy()
            end, block_row_done = self._read_end(y0, y1)
            if self.rows_at is None:
                pixels, invalid = read_window(self.ds, self.source, self.x, self.bottom, self.w,
                                              end - self.bottom)
            else:
                pixels, invalid = self._read_sparse(self.rows_at[self.bottom:end])
            if block_row_done:  # else the next read needs the same blocks: decode them once, not per strip
                self.ds.FlushCache()
            self.pixels = np.concatenate([self.pixels, self.normalise(pixels, invalid)], axis=1)
            self.invalid = np.concatenate([self.invalid, invalid], axis=0)
            self.bottom = end
        return self.pixels[:, :y1 - y0], self.invalid[:y1 - y0]

    def _read_sparse(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source rows ``rows`` (increasing) at the kept columns: one read per run of adjacent rows
        (a tile row), so the rows between tiles are neither copied nor, in a file stored in strips,
        decoded. A tiled file's blocks are decoded once, by the first run that touches them, and
        read from GDAL's block cache by the others; when the cache cannot hold the blocks spanned,
        the span is read in one call and the rows between tiles dropped."""
        first, last = int(rows[0]), int(rows[-1]) + 1
        runs = _runs(rows) if self._cache_holds(last - first) else [(first, last)]
        parts = []
        for start, stop in runs:
            inside = rows[(rows >= start) & (rows < stop)]
            parts.append(read_window(self.ds, self.source, self.x, start, self.read_w, stop - start,
                                     (inside - start, self.cols)))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p for p, _ in parts], axis=1), np.concatenate([m for _, m in parts])

    def _cache_holds(self, rows: int) -> bool:
        """Whether this reader's share of GDAL's block cache holds the blocks of ``rows`` window rows."""
        bw, bh = self.source.block_size
        spanned = (rows + bh) * (self.read_w + bw) * self.source.band_count * self.itemsize
        return spanned <= self.cache_share

    def _read_end(self, y0: int, y1: int) -> tuple[int, bool]:
        """Row to read up to: past ``y1`` to the end of its source block row, within the read-ahead
        budget; and whether that read finishes the block row (so that its blocks can leave GDAL's cache)."""
        block = self.source.block_size[1]
        last = y1 - 1 if self.rows_at is None else int(self.rows_at[y1 - 1])
        block_end = min(self.source.height, -(-(last + 1) // block) * block)
        end = block_end if self.rows_at is None else int(np.searchsorted(self.rows_at, block_end))
        if (end - y0) * self.w * (4 * len(self.source.bands) + 1) > self.read_ahead:
            # Block rows too large to hold as float32 (a very wide raster, one strip for a whole
            # image): read only to y1 and keep the decoded blocks in GDAL's cache for the next strips.
            return y1, last + 1 == block_end
        return end, True


def plan_windows(grid: TileGrid, bands: int, out_bytes_per_tile: int = 0,
                 window_bytes: int = DEFAULT_WINDOW_BYTES) -> tuple[int, int]:
    """Tile rows per strip and tile columns per window so that a window, and the embeddings
    of a strip (``out_bytes_per_tile`` each), fit ``window_bytes``."""
    per_pixel = 4 * bands + 10  # float32 pixels, invalid mask, summed-area table
    budget = max(window_bytes // per_pixel, grid.tile_size * grid.tile_size)
    full_width = (grid.cols - 1) * grid.stride + grid.tile_size
    if full_width * grid.tile_size <= budget:
        height = budget // full_width
        strip_rows, chunk_cols = max(1, (height - grid.tile_size) // grid.stride + 1), grid.cols
    else:
        side = math.isqrt(budget)
        strip_rows = chunk_cols = max(1, (side - grid.tile_size) // grid.stride + 1)
    if out_bytes_per_tile:
        strip_rows = min(strip_rows, max(1, window_bytes // (grid.cols * out_bytes_per_tile)))
    return min(strip_rows, grid.rows), chunk_cols


def reader_bands(rows: int, strip_rows: int, readers: int) -> list[tuple[int, int]]:
    """Tile rows (or columns) [first, last) of each of up to ``readers`` readers: contiguous bands of
    whole strips (``strip_rows`` at a time), as equal as the strips allow."""
    strips = -(-rows // strip_rows)
    count = max(1, min(readers, strips))
    bounds = [round(i * strips / count) * strip_rows for i in range(count + 1)]
    return [(a, min(rows, b)) for a, b in zip(bounds, bounds[1:])]


def grid_batches(
    source: RasterSource,
    grid: TileGrid,
    normalise: Normaliser,
    batch_size: int,
    max_invalid_fraction: float,
    strip_rows: int,
    chunk_cols: int,
    skip: Optional[np.ndarray] = None,
    band: Optional[tuple[int, int]] = None,
    readers: int = 1,
) -> Iterator[Union[TileBatch, StripDone]]:
    """Batches of the grid's kept tiles in row order, each strip closed by a :class:`StripDone`.

    Strips are ``strip_rows`` tile rows, windows ``chunk_cols`` tile columns (see
    :func:`plan_windows`). ``skip`` (rows x cols bool) drops tiles whatever their pixels
    (outside a mask). Sparse grids (stride > tile) are read compacted (see the module notes).
    ``band``: tile rows [first, last) only (default: all), for one of ``readers`` readers running
    at once (see :func:`reader_bands`), which share GDAL's block cache.
    """
    ds = open_dataset(source.path)
    first, last = (0, grid.rows) if band is None else band
    tile, stride = grid.tile_size, grid.stride
    sparse = stride > tile
    step = tile if sparse else stride  # between tile origins in the rows held
    rows_at = grid.row_off + _covered(grid.rows, stride, tile) if sparse else None
    builder = _BatchBuilder(batch_size, source.flip_axes)
    buffers: dict[int, _RowBuffer] = {}
    waiting: list[StripDone] = []
    for row0 in range(first, last, strip_rows):
        row1 = min(last, row0 + strip_rows)
        for col0 in range(0, grid.cols, chunk_cols):
            col1 = min(grid.cols, col0 + chunk_cols)
            x, y, w, h = grid.rows_window(row0, row1, col0, col1)
            if col0 not in buffers:
                cols = _covered(col1 - col0, stride, tile) if sparse else None
                buffers[col0] = _RowBuffer(ds, source, normalise, x, w, rows_at, cols, readers)
            rows = buffers[col0]
            if sparse:
                y, h = row0 * tile, (row1 - row0) * tile
            pixels, invalid = rows.get(y, y + h)
            r, c = np.meshgrid(np.arange(row0, row1), np.arange(col0, col1), indexing="ij")
            r, c = r.ravel(), c.ravel()
            ys, xs = (r - row0) * step, (c - col0) * step
            keep = _kept(invalid_fractions(invalid, ys, xs, tile), max_invalid_fraction)
            if skip is not None:
                keep &= ~skip[r, c]
            for batch in builder.add(pixels, tile, ys[keep], xs[keep], r[keep], c[keep]):
                yield batch
                yield from waiting
                waiting.clear()
            del pixels, invalid
            rows.drop_above(row1 * tile if sparse else grid.tile_origin(row1, col0)[1])  # next strip's top
        waiting.append(StripDone(row0, row1, 0, grid.cols))
        if builder.count == 0:
            yield from waiting
            waiting.clear()
    if builder.count:
        yield builder.flush()
    yield from waiting


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of consecutive values in the increasing ``rows``."""
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts, stops = rows[np.r_[0, breaks]], rows[np.r_[breaks - 1, len(rows) - 1]] + 1
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def _covered(count: int, stride: int, tile: int) -> np.ndarray:
    """Offsets of the pixels covered by ``count`` tiles every ``stride`` px, in order (stride > tile)."""
    return np.add.outer(np.arange(count) * stride, np.arange(tile)).ravel()


def point_batches(
    source: RasterSource,
    origins: np.ndarray,
    tile: int,
    normalise: Normaliser,
    batch_size: int,
    max_invalid_fraction: float,
    group_size: int = 512,
) -> Iterator[TileBatch]:
    """Batches of the tiles with top-left pixels ``origins`` (N, 2); ``rows`` holds the point indices.

    Points are grouped by ``group_size`` px cells; each group is one read of the bounding
    window of its tiles, so dense points share pixels and sparse points read little.
    Tiles not wholly inside the raster, or with too many invalid pixels, are left out.
    """
    ds = open_dataset(source.path)
    x, y = origins[:, 0], origins[:, 1]
    inside = np.flatnonzero((x >= 0) & (y >= 0) & (x + tile <= source.width) & (y + tile <= source.height))
    cells = (y[inside] // group_size) * (source.width // group_size + 1) + x[inside] // group_size
    order = inside[np.argsort(cells, kind="stable")]
    bounds = np.flatnonzero(np.diff(np.sort(cells, kind="stable"))) + 1
    builder = _BatchBuilder(batch_size, source.flip_axes)
    for group in np.split(order, bounds):
        if not len(group):
            continue
        gx, gy = x[group], y[group]
        x0, y0 = int(gx.min()), int(gy.min())
        w, h = int(gx.max()) - x0 + tile, int(gy.max()) - y0 + tile
        pixels, invalid = read_window(ds, source, x0, y0, w, h)
        ds.FlushCache()  # keep GDAL's block cache from growing with the raster
        normalise(pixels, invalid)
        ys, xs = gy - y0, gx - x0
        keep = _kept(invalid_fractions(invalid, ys, xs, tile), max_invalid_fraction)
        yield from builder.add(pixels, tile, ys[keep], xs[keep], group[keep], group[keep])
    if builder.count:
        yield builder.flush()


def prefetch_depth(batch_size: int, bands: int, tile: int, budget: int = PREFETCH_BYTES) -> int:
    """Batches of float32 tiles a :class:`Prefetcher` may hold within ``budget`` bytes (at least 3)."""
    return max(MIN_PREFETCH, budget // (4 * batch_size * bands * tile * tile))


class Prefetcher:
    """Run an iterator in a background thread, ``depth`` items ahead; re-raise its errors here.

    Given several iterator factories, runs each in its own thread and yields their items as they
    come (interleaved in no fixed order) until all are done. Use as a context manager: leaving it
    (normally, by error or cancel) stops the threads, and so does a signal that interrupts
    entering it (Ctrl-C while the threads start): a reader left running at interpreter exit
    can abort the process ("terminate called without an active exception").
    """

    _END = object()

    def __init__(self, make_iterator: Union[Callable[[], Iterator], Sequence[Callable[[], Iterator]]],
                 depth: int = 3) -> None:
        makers = [make_iterator] if callable(make_iterator) else list(make_iterator)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._launched = [threading.Event() for _ in makers]  # set by each thread once it runs
        self._started = 0  # threads whose start() returned
        self._threads = [threading.Thread(target=self._run, args=(make, launched), daemon=True,
                                          name=f"srl-tile-reader-{i}")
                         for i, (make, launched) in enumerate(zip(makers, self._launched))]

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    @gdal_exceptions()  # a thread of its own: GDAL's setting may be per thread
    def _run(self, make_iterator: Callable[[], Iterator], launched: threading.Event) -> None:
        launched.set()
        if self._stop.is_set():
            return
        try:
            for item in make_iterator():
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(_Failure(exc))
            return
        self._put(self._END)

    def __enter__(self) -> Prefetcher:
        try:
            for thread in self._threads:
                thread.start()
                self._started += 1
        except BaseException:
            self._stop_threads()
            raise
        return self

    def __iter__(self) -> Iterator:
        running = len(self._threads)
        while running:
            item = self._queue.get()
            if item is self._END:
                running -= 1
                continue
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def __exit__(self, *exc_info: object) -> None:
        self._stop_threads()

    def _stop_threads(self) -> None:
        """Stop every thread that was launched and wait for it, even through a signal while waiting
        (raised again once all have stopped). The thread whose start a signal interrupted is given
        :data:`LAUNCH_WAIT_S` to show up; those after it were never started."""
        self._stop.set()
        interrupted: Optional[BaseException] = None
        for thread, launched in list(zip(self._threads, self._launched))[:self._started + 1]:
            interrupted = through_signals(functools.partial(_join_launched, thread, launched), interrupted)
        if interrupted is not None:
            raise interrupted


def _join_launched(thread: threading.Thread, launched: threading.Event) -> None:
    if launched.wait(LAUNCH_WAIT_S):  # at once for a thread that runs
        thread.join()


@dataclass
class _Failure:
    error: BaseException
