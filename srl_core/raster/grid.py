"""The tile grid laid over a raster, and the georeferencing of the embedding raster it makes.

Tiles are ``tile_size`` x ``tile_size`` source pixels, placed every ``stride`` pixels
(stride < tile gives overlapping tiles, stride > tile leaves gaps) from the top-left of a
pixel window (the whole raster, or the part of it inside an extent). Only tiles that lie
wholly inside the window are made; a margin narrower than a stride on the right and
bottom is left out. Each tile becomes one pixel of the output raster, centred on the
tile's centre and ``stride`` source pixels wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError

GeoTransform = tuple[float, float, float, float, float, float]
Window = tuple[int, int, int, int]  # xoff, yoff, xsize, ysize in source pixels


def window_geotransform(geotransform: Sequence[float], x: float, y: float, step: float = 1.0) -> GeoTransform:
    """The geotransform of a window whose top-left corner is pixel (``x``, ``y``) of ``geotransform``,
    its cells ``step`` pixels wide."""
    x0, dx, rx, y0, ry, dy = (float(v) for v in geotransform)
    return (x0 + x * dx + y * rx, dx * step, rx * step, y0 + x * ry + y * dy, ry * step, dy * step)



@dataclass(frozen=True)
class TileGrid:
    """Tiles of ``tile_size`` px every ``stride`` px, ``rows`` x ``cols`` of them.

    The tile at (row ``i``, col ``j``) covers source pixels
    ``[col_off + j*stride, col_off + j*stride + tile_size)`` across and likewise down.
    """

    tile_size: int
    stride: int
    col_off: int
    row_off: int
    cols: int
    rows: int

    @property
    def count(self) -> int:
        return self.rows * self.cols

    def tile_origin(self, row: int, col: int) -> tuple[int, int]:
        """Source pixel (x, y) of the top-left corner of tile (row, col)."""
        return self.col_off + col * self.stride, self.row_off + row * self.stride

    def rows_window(self, row0: int, row1: int, col0: int = 0, col1: Optional[int] = None) -> Window:
        """The source pixel window holding every pixel of tiles rows [row0, row1) x cols [col0, col1)."""
        col1 = self.cols if col1 is None else col1
        x0, y0 = self.tile_origin(row0, col0)
        width = (col1 - col0 - 1) * self.stride + self.tile_size
        height = (row1 - row0 - 1) * self.stride + self.tile_size
        return x0, y0, width, height

    def output_geotransform(self, source: Sequence[float]) -> GeoTransform:
        """Geotransform of the embedding raster: one pixel per tile, centred on the tile centre."""
        shift = (self.tile_size - self.stride) / 2.0
        return window_geotransform(source, self.col_off + shift, self.row_off + shift, self.stride)


def make_grid(width: int, height: int, tile_size: int, stride: Optional[int] = None,
              window: Optional[Window] = None) -> TileGrid:
    """Lay tiles over a ``width`` x ``height`` raster, or over ``window`` of it.

    Raises :class:`InputError` if the tile size or stride is not a positive integer or
    the (windowed) raster is smaller than one tile.
    """
    stride = tile_size if stride is None else stride
    if int(tile_size) != tile_size or tile_size < 1:
        raise InputError(f"Tile size must be a positive number of pixels, got {tile_size}.")
    if int(stride) != stride or stride < 1:
        raise InputError(f"Stride must be a positive number of pixels, got {stride}.")
    xoff, yoff, xsize, ysize = window if window is not None else (0, 0, width, height)
    if xsize < tile_size or ysize < tile_size:
        where = "The part of the raster inside the extent" if window is not None else "The raster"
        raise InputError(
            f"{where} is {xsize} x {ysize} pixels, smaller than one {tile_size} x {tile_size} pixel tile. "
            "Use a larger raster or extent, or a model with smaller tiles."
        )
    return TileGrid(
        tile_size=int(tile_size),
        stride=int(stride),
        col_off=int(xoff),
        row_off=int(yoff),
        cols=(xsize - tile_size) // stride + 1,
        rows=(ysize - tile_size) // stride + 1,
    )


def extent_to_window(geotransform: Sequence[float], width: int, height: int,
                     extent: Sequence[float]) -> Window:
    """Source pixel window of the pixels whose centres lie inside ``extent``, clipped to the raster.

    ``extent`` is (xmin, ymin, xmax, ymax) in the raster's CRS. Rotated rasters cannot be
    clipped by an axis-aligned extent: that is an error, as is an extent missing the raster.
    """
    if len(extent) != 4:
        raise InputError("An extent is four numbers: xmin, ymin, xmax, ymax (in the raster's CRS).")
    xmin, ymin, xmax, ymax = (float(v) for v in extent)
    if not all(map(math.isfinite, (xmin, ymin, xmax, ymax))):  # infinity overflowed into "a bug in SRL"
        raise InputError(f"An extent is four finite numbers (xmin, ymin, xmax, ymax), got {tuple(extent)}.")
    if not (xmin < xmax and ymin < ymax):
        raise InputError(f"Empty extent {tuple(extent)}: need xmin < xmax and ymin < ymax.")
    g = [float(v) for v in geotransform]
    if g[2] != 0.0 or g[4] != 0.0:
        raise InputError("This raster is rotated; an extent cannot be applied to it. Omit the extent.")
    cols = sorted(((xmin - g[0]) / g[1], (xmax - g[0]) / g[1]))
    rows = sorted(((ymin - g[3]) / g[5], (ymax - g[3]) / g[5]))
    # Pixel i has its centre at i + 0.5: keep the pixels with lo <= i + 0.5 <= hi.
    x0, x1 = max(0, math.ceil(cols[0] - 0.5)), min(width, math.floor(cols[1] - 0.5) + 1)
    y0, y1 = max(0, math.ceil(rows[0] - 0.5)), min(height, math.floor(rows[1] - 0.5) + 1)
    inside = cols[1] > 0 and cols[0] < width and rows[1] > 0 and rows[0] < height
    if (x1 <= x0 or y1 <= y0) and inside:  # over the raster, but between pixel centres
        raise InputError(f"The extent {tuple(extent)} holds no pixel centre of the raster: make it at least "
                         "one pixel wide and high.")
    if x1 <= x0 or y1 <= y0:  # most often an extent in another CRS (degrees for a raster in metres)
        xs, ys = sorted((g[0], g[0] + width * g[1])), sorted((g[3], g[3] + height * g[5]))
        raise InputError(f"The extent {tuple(extent)} does not overlap the raster, which spans x {xs[0]:g} "
                         f"to {xs[1]:g} and y {ys[0]:g} to {ys[1]:g}: give the extent in the raster's CRS.")
    return x0, y0, x1 - x0, y1 - y0


def world_to_pixel(geotransform: Sequence[float], xy: np.ndarray) -> np.ndarray:
    """(N, 2) map coordinates to fractional (col, row) pixel coordinates (rotation allowed)."""
    g = np.asarray(geotransform, dtype=np.float64)
    a = np.array([[g[1], g[2]], [g[4], g[5]]])
    det = np.linalg.det(a)
    if det == 0:
        raise InputError("The raster's geotransform is degenerate (zero pixel size).")
    offsets = np.asarray(xy, dtype=np.float64) - g[[0, 3]]
    return offsets @ np.linalg.inv(a).T


def pixel_to_world(geotransform: Sequence[float], colrow: np.ndarray) -> np.ndarray:
    """(N, 2) fractional (col, row) pixel coordinates to map coordinates (rotation allowed): the inverse of
    :func:`world_to_pixel`; pixel centres are at (col + 0.5, row + 0.5)."""
    g = np.asarray(geotransform, dtype=np.float64)
    col, row = np.asarray(colrow, dtype=np.float64).T
    return np.column_stack([g[0] + col * g[1] + row * g[2], g[3] + col * g[4] + row * g[5]])


def tile_origins_centred_at(geotransform: Sequence[float], xy: np.ndarray, tile_size: int) -> np.ndarray:
    """Top-left source pixels (x, y) of the tiles whose centres are nearest to each point, (N, 2) int64."""
    colrow = world_to_pixel(geotransform, xy)
    return np.floor(colrow - tile_size / 2.0 + 0.5).astype(np.int64)
