"""Writing an embedding raster strip by strip, in bounded memory.

Embeddings arrive batch by batch for scattered tiles; rows are held until the row of output
blocks they fall in is complete (its strips may come in any order, from several readers), then
written and GDAL's cache flushed: every block is compressed and written once, never a partial
block rewritten, and memory does not grow with the raster. The output's square blocks are sized
so that one row of blocks (all bands) stays small, and strips are aligned to block rows, so that
one reader holds at most one row of blocks. Finished windows computed elsewhere
(:mod:`srl_core.tile_windows`) are accepted too, in any order.
"""

from __future__ import annotations

import numpy as np
from osgeo import gdal

from ..embedding_quality import PositionSample
from ..errors import OutputError

BLOCK_ROW_BYTES = 64 * 1024 * 1024  # one row of output blocks, all bands, as float32
STRIP_WRITE_ROWS = 16  # rows of held embeddings written per GDAL call


def output_block_size(cols: int, rows: int, dim: int) -> int:
    """Block side (256 .. 16 px) for an output of ``cols`` x ``rows`` pixels and ``dim`` float32 bands.

    The largest whose row of blocks fits the budget, but no larger than the output's short
    side (rounded up to 16): padding in a block is compressed and written too.
    """
    cap = max(16, -(-min(cols, rows) // 16) * 16)
    for block in (256, 128, 64, 32):
        padded = -(-cols // block) * block
        if block * padded * dim * 4 <= BLOCK_ROW_BYTES:
            return min(block, cap)
    return 16


def align_strip_rows(strip_rows: int, block: int) -> int:
    """Strip height (tile rows) that divides the block height or is a multiple of it."""
    if strip_rows >= block:
        return strip_rows // block * block
    return max(d for d in range(1, max(1, strip_rows) + 1) if block % d == 0)


class StripWriter:
    """Collects embeddings of grid tiles and writes finished strips to ``ds`` (D bands, NaN elsewhere).

    ``sample`` keeps a few hundred of the embeddings written, for the quality check.
    """

    def __init__(self, ds: gdal.Dataset, cols: int, dim: int, block: int, path: str) -> None:
        self.ds = ds
        self.cols = cols
        self.dim = dim
        self.block = block
        self.path = path
        self.sample = PositionSample(cols)
        self._rows: dict[int, np.ndarray] = {}
        self._unwritten = np.zeros(-(-ds.RasterYSize // block), dtype=np.int64)  # pixels per block row
        for i in range(len(self._unwritten)):
            self._unwritten[i] = min(block, ds.RasterYSize - i * block) * cols

    def put(self, rows: np.ndarray, cols: np.ndarray, embeddings: np.ndarray) -> None:
        """Hold the embeddings (n, D) of tiles at grid (rows, cols) until their strip is written.

        Batches come in runs of tiles of one row (a reader's window, row by row), so each run is
        copied as a slice, without a mask over the whole batch for every row it touches.
        """
        if len(rows) == 0:
            return
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        for a, b in zip(starts.tolist(), np.r_[starts[1:], len(rows)].tolist()):
            row = int(rows[a])
            line = self._rows.get(row)
            if line is None:
                line = self._rows[row] = np.full((self.cols, self.dim), np.nan, dtype=np.float32)
            line[cols[a:b]] = embeddings[a:b]

    def write_strip(self, row0: int, row1: int, col0: int, col1: int) -> None:
        """Grid rows [row0, row1), columns [col0, col1) are complete: write each row of output blocks
        now complete (rows with no embedded tile are all NaN). Strips may come in any order; they
        must not overlap."""
        try:
            for b in self._completed(row0, row1 - row0, col1 - col0):
                top, bottom = b * self.block, min(self.ds.RasterYSize, (b + 1) * self.block)
                for start in range(top, bottom, STRIP_WRITE_ROWS):  # a few rows at a time: little to copy
                    stop = min(bottom, start + STRIP_WRITE_ROWS)
                    strip = np.full((self.dim, stop - start, self.cols), np.nan, dtype=np.float32)
                    for row in range(start, stop):
                        line = self._rows.pop(row, None)
                        if line is not None:
                            strip[:, row - start, :] = line.T
                    self.sample.add_window(start, 0, strip)  # per strip, not per batch: a few calls a run
                    self.ds.WriteArray(strip, 0, start)
                self._flush()
        except RuntimeError as exc:
            raise OutputError(f"Writing {self.path} failed (disk full?): {exc}") from exc

    def write_window(self, row0: int, col0: int, embeddings: np.ndarray) -> None:
        """Write a finished window (D, h, w) at grid (row0, col0); windows may come in any order.

        Each row of output blocks is flushed (compressed and written once) when the windows
        written so far cover it all; windows must not overlap.
        """
        _, h, w = embeddings.shape
        self.sample.add_window(row0, col0, embeddings)
        try:
            self.ds.WriteArray(np.asarray(embeddings, dtype=np.float32), col0, row0)
            for _ in self._completed(row0, h, w):
                self._flush()
        except RuntimeError as exc:
            raise OutputError(f"Writing {self.path} failed (disk full?): {exc}") from exc

    def _completed(self, row0: int, h: int, w: int) -> list[int]:
        """Count rows [row0, row0 + h) x ``w`` columns as done; the block rows this completes."""
        done = []
        for b in range(row0 // self.block, -(-(row0 + h) // self.block)):
            top, bottom = max(row0, b * self.block), min(row0 + h, (b + 1) * self.block)
            self._unwritten[b] -= (bottom - top) * w
            if self._unwritten[b] == 0:
                done.append(b)
        return done

    def _flush(self) -> None:
        if self.ds.FlushCache() not in (None, gdal.CE_None):
            raise OutputError(f"Writing {self.path} failed (disk full?).")

    def finish(self) -> None:
        """Flush everything to disk; errors here (disk full) become an OutputError."""
        try:
            self._flush()
        except RuntimeError as exc:
            raise OutputError(f"Writing {self.path} failed (disk full?): {exc}") from exc
