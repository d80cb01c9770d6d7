"""An optional mask, sampled at the tile centres: tiles outside it are not embedded.

The mask is a raster (non-zero, non-nodata = inside) or a polygon layer (inside the
polygons), in any CRS; GDAL warps or rasterises it onto the embedding raster's own grid,
so the result costs one byte per tile whatever the mask's resolution (and a raster mask,
while it is warped, a band of rows of float32: at most CHUNK_CELLS cells).

A raster mask is warped into float32 with NaN as the only nodata, and 'inside' is decided
afterwards. Warping into bytes with 0 as nodata (as this module once did) is wrong twice:
GDAL 3.9 and later change a source value equal to the destination nodata to the next value
"to avoid being treated as NoData", so every 0 (outside) became 1 (inside) and the mask was
silently ignored (seen with GDAL 3.13); and a float mask's -1 or 0.4 (non-zero: inside)
became byte 0 (outside).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from osgeo import gdal

from ..errors import InputError
from ..gdal_exceptions import gdal_exceptions
from ..names import LAYER_SUFFIX, split_layer
from ..vector.crs import layer_crs
from .grid import GeoTransform, window_geotransform

CHUNK_CELLS = 1 << 22  # cells of a raster mask warped at once (16 MiB of float32)


@gdal_exceptions()
def outside_mask(mask_path: str, geotransform: GeoTransform, crs_wkt: str, cols: int, rows: int
                 ) -> np.ndarray:
    """(rows, cols) bool: True where the tile centre falls outside the mask.

    A polygon file of several layers must name one (``FILE|layername=LAYER``): taking the first,
    as this module once did, silently masked with another layer than the one the analyst chose. A
    layer filtered in QGIS keeps its filter (``|subset=``): only its features shown are inside."""
    path, layer, subset = split_layer(mask_path)
    try:
        mask = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_VECTOR)
    except RuntimeError as exc:
        raise InputError(f"Cannot open the mask {path}: {exc}") from exc
    try:
        if mask.RasterCount > 0:
            return _outside_raster(gdal.Translate("", mask, format="VRT", bandList=[1]), geotransform,
                                   crs_wkt, cols, rows)
        if mask.GetLayerCount() > 0:
            name = _mask_layer(mask, path, layer)
            if crs_wkt and layer_crs(mask.GetLayerByName(name).GetSpatialRef()) is None:
                # GDAL tried to transform it anyway: PROJ's "Invalid latitude" noise, then "covers no pixel"
                raise InputError(f"The mask {mask_path} has no CRS, so where its polygons lie on the raster "
                                 "cannot be told: assign it one (Layer Properties > Source, or a .prj file).")
            target = _grid(gdal.GDT_Byte, geotransform, crs_wkt, cols, rows)
            gdal.Rasterize(target, mask, burnValues=[1], layers=[name], where=subset or None)
            return target.GetRasterBand(1).ReadAsArray() == 0
    except RuntimeError as exc:
        raise InputError(f"Cannot apply the mask {mask_path}: {exc}") from exc
    raise InputError(f"The mask {path} has neither raster bands nor a vector layer.")


def inside_region(mask_path: str, geotransform: GeoTransform, crs_wkt: str, width: int, height: int,
                  cells: Sequence[int] = (256, 4096)) -> Optional[tuple[int, int, int, int]]:
    """The window ``(x, y, w, h)`` of a ``width`` x ``height`` raster that holds the mask's inside, found
    on a grid of coarse cells (padded by one cell): at most 256 x 256 of them, else, when no cell centre
    falls inside (a mask smaller than a cell), 4096 x 4096; None when none does either way (the caller
    then looks at the whole raster).

    Why: statistics sampled over the whole raster find few or no pixels inside a small mask."""
    for count in cells:
        step = max(1.0, max(width, height) / count)
        cols, rows = max(1, math.ceil(width / step)), max(1, math.ceil(height / step))
        inside = ~outside_mask(mask_path, window_geotransform(geotransform, 0, 0, step), crs_wkt, cols, rows)
        if inside.any() or step == 1.0:
            break
    if not inside.any():
        return None
    r, c = np.nonzero(inside)
    x0, y0 = int(max(0, (c.min() - 1) * step)), int(max(0, (r.min() - 1) * step))
    x1 = int(min(width, math.ceil((c.max() + 2) * step)))
    y1 = int(min(height, math.ceil((r.max() + 2) * step)))
    return x0, y0, x1 - x0, y1 - y0


def _mask_layer(mask: gdal.Dataset, path: str, layer: str) -> str:
    names = [mask.GetLayer(i).GetName() for i in range(mask.GetLayerCount())]
    if layer and layer not in names:
        raise InputError(f"The mask {path} has no layer '{layer}' (it has {', '.join(names)}).")
    if not layer and len(names) > 1:
        raise InputError(f"The mask {path} holds {len(names)} layers ({', '.join(names)}): name the one to "
                         f"use, e.g. {path}{LAYER_SUFFIX}{names[0]}.")
    return layer or names[0]


def _outside_raster(first: gdal.Dataset, geotransform: GeoTransform, crs_wkt: str, cols: int, rows: int
                    ) -> np.ndarray:
    """The mask's band 1 sampled at the cell centres (nearest neighbour), a band of rows at a time so
    that the float32 values cost at most :data:`CHUNK_CELLS` cells whatever the grid (a training
    raster's grid is its pixels). Source nodata is not written, so it stays NaN, as does the grid
    beyond the mask's extent: both mean 'outside'."""
    outside = np.empty((rows, cols), dtype=bool)
    step = max(1, CHUNK_CELLS // max(cols, 1))
    for top in range(0, rows, step):
        height = min(step, rows - top)
        target = _grid(gdal.GDT_Float32, window_geotransform(geotransform, 0, top), crs_wkt, cols, height)
        target.GetRasterBand(1).Fill(float("nan"))
        # the mask's own pixels, not its pyramids (QGIS offers to build them: with them 48 of 768 tiles were
        # kept or dropped by another mask), transformed to within 0.01 px rather than GDAL's default 0.125
        # (a tile centre 0.002 px from a mask pixel's edge was sampled across it; exact was 7.6x slower)
        gdal.Warp(target, first, resampleAlg="near", dstNodata=float("nan"), overviewLevel="NONE",
                  errorThreshold=0.01)
        values = target.GetRasterBand(1).ReadAsArray()
        outside[top:top + height] = ~(np.isfinite(values) & (values != 0))
    return outside


@gdal_exceptions()
def _grid(data_type: int, geotransform: GeoTransform, crs_wkt: str, cols: int, rows: int) -> gdal.Dataset:
    """An in-memory single-band raster on the embedding raster's grid (one cell per tile)."""
    target = gdal.GetDriverByName("MEM").Create("", cols, rows, 1, data_type)
    target.SetGeoTransform(list(geotransform))
    if crs_wkt:
        target.SetProjection(crs_wkt)
    return target
