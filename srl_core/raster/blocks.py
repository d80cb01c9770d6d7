"""Block-by-block reading of embedding rasters and writing of derived rasters.

An embedding raster of 10,000 x 10,000 pixels and 64 bands is 25 GB of float32: no
analysis may hold it whole. Readers here walk windows aligned on the file's own tiles
(so GDAL decompresses each tile once) and sized to a memory budget; writers take the
same windows, so an analysis holds one window of input and one of output at a time.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Optional, Sequence, Union

import numpy as np
from osgeo import gdal

from ..atomic import atomic_output, release_error_frames
from ..checks import check_seed, int_in_range
from ..embedding_format import EmbeddingRasterInfo
from ..embedding_products import Decoding, RasterInput, as_embedding_raster, describe_embedding_raster
from ..embedding_recipe import Recipe
from ..errors import InputError, OutputError
from ..gdal_exceptions import gdal_exceptions
from ..names import QUALITY_WARNING_KEY
from ..progress import Progress, ensure_progress
from ..vector.coordinates_text import crs_units, format_point
from .geotiff import create_geotiff
from .grid import pixel_to_world, world_to_pixel

MAX_SAMPLE = 100_000_000  # embeddings held in memory for a fit: 64 bands x 1e8 = 25 GB already


DEFAULT_BLOCK_BYTES = 64 * 1024 * 1024  # budget of one input window, float32 all bands
CELL_PIXELS = 256 * 256  # pixels of one cell read by a sample or a point query: a common GeoTIFF tile
MIN_SAMPLE_CELLS = 8  # a sample of a raster larger than one window comes from at least this many cells
SEEN_PER_KEPT = 4  # valid pixels seen per pixel kept in a sample
# What a fit's sample (k-means, the RGB view) reads at least of the raster (all of one up to this size),
# spread over it: cells enough for SEEN_PER_KEPT x n pixels alone covered 5 % of a 3072² x 16 raster, and a
# lake on 4 % of it was left out of 12 samples in 20 (its class merged into another, k suggested one lower).
# Checks that need no coverage (a similarity map's flatness) read only their cells.
SAMPLE_READ_BYTES = 4 * 1024 ** 3


@dataclass(frozen=True)
class Window:
    """A rectangle of pixels: column/row offset and size."""

    xoff: int
    yoff: int
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class Grid:
    """A raster grid to write on: size, geotransform and CRS (an EmbeddingRasterInfo is one too)."""

    width: int
    height: int
    geotransform: tuple
    crs_wkt: str


@dataclass(frozen=True)
class EmbeddingBlock:
    """One window of an embedding raster: data (D, h, w) float32 and valid mask (h, w)."""

    window: Window
    data: np.ndarray
    valid: np.ndarray

    def valid_vectors(self) -> np.ndarray:
        """The valid pixels' embeddings as rows (n, D), in row-major pixel order."""
        return self.data[:, self.valid].T


def block_windows(
    width: int, height: int, block_x: int, block_y: int, bands: int, max_bytes: int = DEFAULT_BLOCK_BYTES
) -> list[Window]:
    """Windows covering the raster, aligned on its native blocks, each within ``max_bytes``.

    A window spans whole native blocks: as many block columns as fit in the budget
    (at least one), then as many block rows as still fit.
    """
    win_w, win_h = window_size(width, height, block_x, block_y, bands, max_bytes)
    return [
        Window(x, y, min(win_w, width - x), min(win_h, height - y))
        for y in range(0, height, win_h)
        for x in range(0, width, win_w)
    ]


def window_size(
    width: int, height: int, block_x: int, block_y: int, bands: int, max_bytes: int = DEFAULT_BLOCK_BYTES
) -> tuple[int, int]:
    """Width and height of the windows of :func:`block_windows`: the step of their grid."""
    block_x = max(1, min(block_x, width))
    block_y = max(1, min(block_y, height))
    block_bytes = block_x * block_y * bands * 4
    n_blocks = max(1, max_bytes // block_bytes)
    per_row = -(-width // block_x)
    cols = min(per_row, n_blocks)
    rows = max(1, n_blocks // cols) if cols == per_row else 1
    return cols * block_x, rows * block_y


def spread_picks(count: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` of ``range(count)``, ascending, one drawn at random from each of ``k`` equal runs.

    Cells listed row by row and picked so cover the whole raster evenly, where ``k`` drawn
    at once may bunch in one part. All of them, drawing no number, when ``k >= count``: a
    raster read whole is sampled with the same random numbers whatever the cells.
    """
    if k >= count:
        return np.arange(count)
    bounds = np.arange(k + 1) * count // k
    return bounds[:-1] + (rng.random(k) * np.diff(bounds)).astype(np.int64)


def cells_to_read(wanted: int, seen: int, read: int, cell_pixels: float) -> int:
    """How many more cells a sample reads to see ``wanted`` valid pixels, ``seen`` in ``read`` cells so far.

    First as if every pixel were valid (at least :data:`MIN_SAMPLE_CELLS`, so a small sample
    is not one cell's neighbourhood); then at the valid rate found so far, doubling the cells
    read while none was valid.
    """
    if read == 0:
        return max(MIN_SAMPLE_CELLS, -(-wanted // max(1, int(cell_pixels))))
    if seen == 0:
        return read
    return -(-(wanted - seen) * read // seen)


class _Reservoir:
    """A uniform random sample of ``n`` rows of a stream of row batches, in n x D memory."""

    def __init__(self, n: int, dims: int, rng: np.random.Generator) -> None:
        self.rows = np.empty((n, dims), np.float32)
        self.seen = 0
        self._rng = rng

    def add(self, vectors: np.ndarray) -> None:
        """Offer the rows of ``vectors``: each of all seen stays in the sample with probability n / seen."""
        n, seen = len(self.rows), self.seen
        fill = min(max(n - seen, 0), len(vectors))
        self.rows[seen : seen + fill] = vectors[:fill]
        rest = vectors[fill:]
        if len(rest):
            # Algorithm R, vectorised: item number t replaces a random slot j <= t when j < n.
            slots = self._rng.integers(0, seen + fill + np.arange(len(rest)) + 1)
            hit = slots < n
            self.rows[slots[hit]] = rest[hit]
        self.seen += len(vectors)

    def sample(self) -> np.ndarray:
        """The rows kept: ``n``, or every row seen when fewer."""
        return self.rows[: min(self.seen, len(self.rows))]


@gdal_exceptions()
def _open(path: str) -> gdal.Dataset:
    try:
        return gdal.Open(str(path))
    except RuntimeError as exc:
        raise InputError(f"Cannot open raster {path}: {exc}") from exc


class EmbeddingRasterReader:
    """Open embedding raster: its info, block windows, window and pixel reads.

    ``path`` is an SRL embedding raster, a recognised product, or an
    :class:`~srl_core.embedding_products.EmbeddingRaster` saying how to read another raster;
    windows and reads are north-up and decoded (see ``decoding``).
    """

    def __init__(self, path: RasterInput, max_bytes: int = DEFAULT_BLOCK_BYTES) -> None:
        source = as_embedding_raster(path)
        self.source = source  # how to open it again (a backend's workers read their own windows)
        self.info: EmbeddingRasterInfo
        self.decoding: Decoding
        self.info, self.decoding = describe_embedding_raster(source)
        self._ds = _open(source.path)
        band = self._ds.GetRasterBand(1)
        self.block_size = tuple(band.GetBlockSize())
        self.max_bytes = max_bytes

    @property
    def model_id(self) -> str:
        return self.info.model_id

    @property
    def metadata(self) -> dict[str, str]:
        """The raster's metadata items (its recipe, its flag: what a copy of its embeddings keeps)."""
        return self._ds.GetMetadata() or {}

    @property
    def recipe(self) -> Recipe:
        """How these embeddings were made (:mod:`srl_core.embedding_recipe`), from the raster's metadata."""
        return Recipe.of(self.metadata, self.model_id, self.info.size, self.source.path)

    @property
    def flagged(self) -> str:
        """The warning the embeddings were flagged with when made (SRL_QUALITY_WARNING; "" if none)."""
        return self._ds.GetMetadataItem(QUALITY_WARNING_KEY) or ""

    def warnings(self, *own: Optional[str]) -> list[str]:
        """An output's SRL_QUALITY_WARNING parts: the embeddings' flag, then the analysis's own warnings.
        A map made from embeddings that mean nothing keeps saying so, also where the embeddings were an
        intermediate file of a graphical model that was never loaded (the flag was dropped until 28 Nov
        2026)."""
        return [w for w in (self.flagged, *own) if w]

    def windows(self) -> list[Window]:
        """Windows covering the raster, aligned on the file's blocks, each within ``max_bytes``."""
        return self._aligned_windows(self.max_bytes)

    def _cell_bytes(self) -> int:
        """Budget of a cell: :data:`CELL_PIXELS` of all bands, no more than a window."""
        return min(self.max_bytes, CELL_PIXELS * self.info.size * 4)

    def _aligned_windows(self, max_bytes: int) -> list[Window]:
        bx, by = self.block_size
        wins = block_windows(self.info.width, self.info.height, bx, by, self.info.size, max_bytes)
        # Aligned on the file's blocks; a bottom-up file's windows are given in north-up rows.
        height = self.info.height
        return [
            Window(w.xoff, self.decoding.source_row(w.yoff, w.height, height), w.width, w.height)
            for w in wins
        ]

    def read(self, window: Window) -> EmbeddingBlock:
        data, valid = self.decoding.read(self._ds, window.xoff, window.yoff, window.width, window.height)
        return EmbeddingBlock(window, data, valid)

    def blocks(self, progress: Optional[Progress] = None) -> Iterator[EmbeddingBlock]:
        """Every window in turn; reports progress and honours cancel between windows."""
        progress = ensure_progress(progress)
        wins = self.windows()
        for i, window in enumerate(wins):
            progress.check()
            yield self.read(window)
            progress.report((i + 1) / len(wins), f"block {i + 1}/{len(wins)}")

    def pixel_of(self, x: float, y: float) -> tuple[int, int]:
        """(col, row) of map coordinates in the raster's CRS; error when outside."""
        if not (np.isfinite(x) and np.isfinite(y)):
            raise InputError(f"The location ({x:g}, {y:g}) is not a pair of finite map coordinates.")
        col, row = (int(v) for v in np.floor(self._pixels(np.array([[x, y]], np.float64))[0]))
        if not (0 <= col < self.info.width and 0 <= row < self.info.height):
            raise InputError(
                f"The location {format_point(x, y, crs_units(self.info.crs_wkt))} lies outside the embedding "
                f"raster {self.info.path}."
            )
        return col, row

    @cached_property
    def _in_degrees(self) -> bool:
        """Whether the raster's CRS is geographic (its CRS parsed once, not at every point looked up)."""
        return crs_units(self.info.crs_wkt) == "°"

    def _pixels(self, xy: np.ndarray) -> np.ndarray:
        """Fractional (col, row) of map points ``xy`` (N, 2). On a raster in degrees whose columns run past
        180° (170..190, 0..360: climate and ocean grids), a longitude off its columns is taken 360° east or
        west where that lands on them: -179° is 181° there, and was 'outside' it."""
        colrow = world_to_pixel(self.info.geotransform, xy)
        if not self._in_degrees:
            return colrow
        for shift in (360.0, -360.0):
            with np.errstate(invalid="ignore"):
                off = np.flatnonzero((colrow[:, 0] < 0) | (colrow[:, 0] >= self.info.width))
            moved = world_to_pixel(self.info.geotransform, xy[off] + [shift, 0.0])
            lands = (moved[:, 0] >= 0) & (moved[:, 0] < self.info.width)
            colrow[off[lands]] = moved[lands]
        return colrow

    def read_pixels(self, cols: Sequence[int], rows: Sequence[int]) -> np.ndarray:
        """Embeddings (n, D) at pixel positions; error if one is nodata or off the raster.

        Read cell by cell as :meth:`sample_at` reads (a top-k's 30,000 results read one pixel at a time,
        in rank order, decoded a whole stored block again for nearly each one once the raster outgrew
        GDAL's cache: 2 min against 17 s for 100)."""
        cols, rows = np.asarray(cols, np.int64).reshape(-1), np.asarray(rows, np.int64).reshape(-1)
        off = (cols < 0) | (cols >= self.info.width) | (rows < 0) | (rows >= self.info.height)
        if off.any():
            i = int(np.argmax(off))
            raise InputError(f"Pixel (column {cols[i]}, row {rows[i]}) lies off {self.info.path}.")
        out = np.empty((len(cols), self.info.size), dtype=np.float32)
        for group in self._cell_groups(np.arange(len(cols)), cols, rows):
            out[group] = self._values_at(cols[group], rows[group])
        missing = np.isnan(out).any(axis=1)
        if missing.any():
            i = int(np.argmax(missing))
            raise InputError(f"Pixel (column {cols[i]}, row {rows[i]}) of {self.info.path} has no embedding "
                             "(nodata).")
        return out

    @gdal_exceptions()
    def sample_at(self, xy: np.ndarray) -> np.ndarray:
        """Embeddings (n, D) of the pixels containing map points ``xy`` (raster CRS); NaN rows outside/nodata.

        Points are grouped by the cell (block-aligned, within :meth:`_cell_bytes`) they fall in, and
        each group's bounding window is read: memory stays one cell whatever the area the points
        span (two far corners once read the whole raster), and compact points (a grid's window)
        still take a few reads, each decoding its stored blocks once.
        """
        colrow = np.floor(self._pixels(np.asarray(xy, np.float64)))  # rotation too
        with np.errstate(invalid="ignore"):  # NaN points: outside
            cols, rows = (np.nan_to_num(colrow[:, i], nan=-1.0).astype(np.int64) for i in (0, 1))
        inside = (cols >= 0) & (cols < self.info.width) & (rows >= 0) & (rows < self.info.height)
        out = np.full((len(xy), self.info.size), np.nan, np.float32)
        for group in self._cell_groups(np.flatnonzero(inside), cols, rows):
            out[group] = self._values_at(cols[group], rows[group])
        return out

    def _cell_groups(self, idx: np.ndarray, cols: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
        """The indices ``idx`` of pixels (cols, rows), split by the cell of the file's blocks they lie in."""
        bx, by = self.block_size
        width, height = self.info.width, self.info.height
        cell_w, cell_h = window_size(width, height, bx, by, self.info.size, self._cell_bytes())
        file_rows = self.decoding.source_row(rows[idx], 1, height)  # cells are aligned in the file's rows
        keys = (file_rows // cell_h) * -(-width // cell_w) + cols[idx] // cell_w
        order = np.argsort(keys, kind="stable")
        return np.split(idx[order], np.flatnonzero(np.diff(keys[order])) + 1) if len(idx) else []

    def _values_at(self, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Embeddings (n, D) at pixels (cols, rows), NaN on nodata, from the one window bounding them."""
        c0, r0 = int(cols.min()), int(rows.min())
        block = self.read(Window(c0, r0, int(cols.max()) - c0 + 1, int(rows.max()) - r0 + 1))
        rr, cc = rows - r0, cols - c0
        values = block.data[:, rr, cc].T
        values[~block.valid[rr, cc]] = np.nan
        return values

    def pixel_centres(self, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Map coordinates (n, 2) of pixel centres in the raster's CRS (the whole affine transform: the
        rotation terms were left out, which put a 30° rotated raster's top-k points 10 pixels off)."""
        colrow = np.column_stack([np.asarray(cols, np.float64), np.asarray(rows, np.float64)]) + 0.5
        return pixel_to_world(self.info.geotransform, colrow)

    @gdal_exceptions()
    def sample(self, n: int, seed: int = 0, progress: Optional[Progress] = None,
               min_read_bytes: int = 0) -> np.ndarray:
        """Up to ``n`` valid embeddings drawn uniformly at random, in bounded time and memory.

        A raster that fits one window is read whole. A larger one is read in cells (block-aligned
        windows of about :data:`CELL_PIXELS`) picked up front and spread over the whole raster
        (:func:`spread_picks`: reading windows until enough pixels were seen once sampled the top
        rows only), enough to hold ``SEEN_PER_KEPT * n`` pixels and at least ``min_read_bytes`` of
        the raster (all of a raster up to that size: a fit's sample from a few cells missed what lies
        in a few others, see :data:`SAMPLE_READ_BYTES`); when nodata leaves fewer valid, more cells are
        picked among the others the same way. A reservoir keeps a uniform sample of ``n`` of the valid
        pixels seen, so memory is n x D plus one cell. The same seed gives the same sample.
        """
        progress = ensure_progress(progress)
        n = int_in_range(n, "The sample size", 1, MAX_SAMPLE)
        rng = np.random.default_rng(check_seed(seed))
        wins = self.windows()
        cells = wins if len(wins) == 1 else self._aligned_windows(self._cell_bytes())
        reservoir = _Reservoir(n, self.info.size, rng)
        cell_pixels = self.info.width * self.info.height / len(cells)  # on average: edge cells are clipped
        floor = int(min_read_bytes // max(1, int(cell_pixels) * self.info.size * 4))  # cells of the budget
        wanted, left = max(SEEN_PER_KEPT * n, int(floor * cell_pixels)), np.arange(len(cells))
        while len(left) and reservoir.seen < wanted:
            more = cells_to_read(wanted, reservoir.seen, len(cells) - len(left), cell_pixels)
            picks = spread_picks(len(left), more, rng)
            done = len(cells) - len(left)
            for j, i in enumerate(left[picks], start=done + 1):
                progress.check()
                reservoir.add(self.read(cells[i]).valid_vectors())
                progress.report(max(j / len(cells), min(1.0, reservoir.seen / wanted)), "sampling")
            left = np.delete(left, picks)
        if reservoir.seen == 0:
            raise InputError(f"{self.info.path} has no valid (non-nodata) pixels.")
        return reservoir.sample()

    def close(self) -> None:
        self._ds = None

    def __enter__(self) -> EmbeddingRasterReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BlockWriter:
    """Write a raster on the grid of an embedding raster, window by window, atomically.

    Use as a context manager: the file appears at ``path`` only when the block is left
    without an exception (cancel included); otherwise nothing is left behind.
    """

    def __init__(
        self,
        path: str,
        like: Union[Grid, EmbeddingRasterInfo],
        dtype: np.dtype | str,
        bands: int = 1,
        nodata: Optional[float] = None,
        metadata: Optional[dict] = None,
        band_names: Optional[Sequence[str]] = None,
        color_table: Optional[dict[int, tuple[int, int, int, int]]] = None,
        color_interp: Optional[Sequence[int]] = None,
    ) -> None:
        self.path = str(path)
        self._args = (like, np.dtype(dtype), bands, nodata, metadata, band_names, color_table, color_interp)
        self._stack: Optional[ExitStack] = None
        self._ds: Optional[gdal.Dataset] = None

    def __enter__(self) -> BlockWriter:
        like, dtype, bands, nodata, metadata, band_names, color_table, color_interp = self._args
        self._stack = ExitStack()
        tmp = self._stack.enter_context(atomic_output(self.path))
        self._ds = create_geotiff(
            str(tmp),
            like.width,
            like.height,
            bands,
            dtype,
            like.geotransform,
            like.crs_wkt,
            nodata=nodata,
            metadata=metadata,
            band_names=band_names,
        )
        if color_table:
            table = gdal.ColorTable()
            for value, rgba in color_table.items():
                table.SetColorEntry(int(value), tuple(int(c) for c in rgba))
            self._ds.GetRasterBand(1).SetRasterColorTable(table)
            self._ds.GetRasterBand(1).SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
        if color_interp:
            for i, ci in enumerate(color_interp):
                self._ds.GetRasterBand(i + 1).SetRasterColorInterpretation(ci)
        return self

    def write(self, window: Window, array: np.ndarray) -> None:
        """Write (h, w) for one band, or (bands, h, w), at ``window``."""
        assert self._ds is not None, "use BlockWriter as a context manager"
        dtype = self._args[1]
        arr = np.asarray(array, dtype=dtype)
        if arr.ndim == 2:
            arr = arr[None]
        for b in range(arr.shape[0]):
            self._ds.GetRasterBand(b + 1).WriteArray(arr[b], window.xoff, window.yoff)

    def set_metadata_item(self, key: str, value: str) -> None:
        """Add a metadata item once the blocks are written (what they showed, such as a warning)."""
        assert self._ds is not None, "use BlockWriter as a context manager"
        self._ds.SetMetadataItem(key, value)

    def __exit__(self, exc_type, exc, tb) -> bool:
        ds, self._ds = self._ds, None
        stack, self._stack = self._stack, None
        assert stack is not None
        if exc is not None:
            release_error_frames(exc)  # a frame of the failed write may hold the dataset or a band
        try:
            if ds is not None:
                ds.FlushCache()
        except RuntimeError as err:
            release_error_frames(err)
            ds = None
            stack.__exit__(type(err), err, err.__traceback__)
            raise OutputError(f"Could not write {self.path}: {err}") from err
        ds = None  # closes the file before the rename, or the removal
        return bool(stack.__exit__(exc_type, exc, tb))
