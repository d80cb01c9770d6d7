"""Block-by-block reading of embedding rasters and writing of derived rasters.

An embedding raster of 10,000 x 10,000 pixels and 64 bands is 25 GB of float32: no
analysis may hold it whole. Readers here walk windows aligned on the file's own tiles
(so GDAL decompresses each tile once) and sized to a memory budget; writers take the
same windows, so an analysis holds one window of input and one of output at a time.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Union

import numpy as np
from osgeo import gdal

from ..atomic import atomic_output, release_error_frames
from ..checks import int_in_range
from ..embedding_format import EmbeddingRasterInfo
from ..embedding_products import Decoding, RasterInput, as_embedding_raster, describe_embedding_raster
from ..errors import InputError, OutputError
from ..gdal_exceptions import gdal_exceptions
from ..progress import Progress, ensure_progress
from ..vector.coordinates_text import crs_units, format_point
from .geotiff import create_geotiff

MAX_SAMPLE = 100_000_000  # embeddings held in memory for a fit: 64 bands x 1e8 = 25 GB already


DEFAULT_BLOCK_BYTES = 64 * 1024 * 1024  # budget of one input window, float32 all bands


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
    block_x = max(1, min(block_x, width))
    block_y = max(1, min(block_y, height))
    block_bytes = block_x * block_y * bands * 4
    n_blocks = max(1, max_bytes // block_bytes)
    per_row = -(-width // block_x)
    cols = min(per_row, n_blocks)
    rows = max(1, n_blocks // cols) if cols == per_row else 1
    win_w, win_h = cols * block_x, rows * block_y
    return [
        Window(x, y, min(win_w, width - x), min(win_h, height - y))
        for y in range(0, height, win_h)
        for x in range(0, width, win_w)
    ]


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

    def windows(self) -> list[Window]:
        bx, by = self.block_size
        wins = block_windows(self.info.width, self.info.height, bx, by, self.info.size, self.max_bytes)
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
        gt = self.info.geotransform
        if gt[2] != 0 or gt[4] != 0:
            raise InputError("Rotated rasters are not supported; warp the raster first.")
        if not (np.isfinite(x) and np.isfinite(y)):
            raise InputError(f"The location ({x:g}, {y:g}) is not a pair of finite map coordinates.")
        col = int(np.floor((x - gt[0]) / gt[1]))
        row = int(np.floor((y - gt[3]) / gt[5]))
        if not (0 <= col < self.info.width and 0 <= row < self.info.height):
            raise InputError(
                f"The location {format_point(x, y, crs_units(self.info.crs_wkt))} lies outside the embedding "
                f"raster {self.info.path}."
            )
        return col, row

    def read_pixels(self, cols: Sequence[int], rows: Sequence[int]) -> np.ndarray:
        """Embeddings (n, D) at pixel positions; error if one is nodata."""
        out = np.empty((len(cols), self.info.size), dtype=np.float32)
        for i, (c, r) in enumerate(zip(cols, rows)):
            block = self.read(Window(int(c), int(r), 1, 1))
            if not block.valid[0, 0]:
                raise InputError(
                    f"Pixel (column {c}, row {r}) of {self.info.path} has no embedding (nodata)."
                )
            out[i] = block.data[:, 0, 0]
        return out

    def sample_at(self, xy: np.ndarray) -> np.ndarray:
        """Embeddings (n, D) of the pixels containing map points ``xy`` (raster CRS); NaN rows outside/nodata.

        Reads only the window bounding the points, so keep ``xy`` spatially compact (e.g. grid rows).
        """
        gt = self.info.geotransform
        cols = np.floor((xy[:, 0] - gt[0]) / gt[1]).astype(np.int64)
        rows = np.floor((xy[:, 1] - gt[3]) / gt[5]).astype(np.int64)
        inside = (cols >= 0) & (cols < self.info.width) & (rows >= 0) & (rows < self.info.height)
        out = np.full((len(xy), self.info.size), np.nan, np.float32)
        if inside.any():
            c0, c1 = cols[inside].min(), cols[inside].max()
            r0, r1 = rows[inside].min(), rows[inside].max()
            block = self.read(Window(int(c0), int(r0), int(c1 - c0 + 1), int(r1 - r0 + 1)))
            rr, cc = rows[inside] - r0, cols[inside] - c0
            values = block.data[:, rr, cc].T
            values[~block.valid[rr, cc]] = np.nan
            out[inside] = values
        return out

    def pixel_centres(self, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Map coordinates (n, 2) of pixel centres in the raster's CRS."""
        gt = self.info.geotransform
        x = gt[0] + (np.asarray(cols) + 0.5) * gt[1]
        y = gt[3] + (np.asarray(rows) + 0.5) * gt[5]
        return np.column_stack([x, y]).astype(np.float64)

    def sample(self, n: int, seed: int = 0, progress: Optional[Progress] = None) -> np.ndarray:
        """Up to ``n`` valid embeddings drawn uniformly at random, in bounded time and memory.

        Windows are visited in random order until four times ``n`` valid pixels have been seen
        (or all of them); a reservoir keeps a uniform sample of exactly ``n`` of those seen, so
        memory is n x D whatever the raster.
        """
        progress = ensure_progress(progress)
        n = int_in_range(n, "The sample size", 1, MAX_SAMPLE)
        rng = np.random.default_rng(seed)
        wins = self.windows()
        reservoir = np.empty((n, self.info.size), np.float32)
        seen = 0
        for i, idx in enumerate(rng.permutation(len(wins))):
            progress.check()
            vectors = self.read(wins[idx]).valid_vectors()
            fill = min(max(n - seen, 0), len(vectors))
            reservoir[seen : seen + fill] = vectors[:fill]
            rest = vectors[fill:]
            if len(rest):
                # Algorithm R, vectorised: item number t replaces a random slot j <= t when j < n.
                slots = rng.integers(0, seen + fill + np.arange(len(rest)) + 1)
                hit = slots < n
                reservoir[slots[hit]] = rest[hit]
            seen += len(vectors)
            progress.report((i + 1) / len(wins), "sampling")
            if seen >= 4 * n:
                break
        if seen == 0:
            raise InputError(f"{self.info.path} has no valid (non-nodata) pixels.")
        return reservoir[: min(seen, n)]

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
