"""An optional mask, sampled at the tile centres: tiles outside it are not embedded.

The mask is a raster (non-zero, non-nodata = inside) or a polygon layer (inside the
polygons), in any CRS; GDAL warps or rasterises it onto the embedding raster's own grid,
so the result costs one byte per tile whatever the mask's resolution.
"""

from __future__ import annotations

import numpy as np
from osgeo import gdal

from ..errors import InputError
from .grid import GeoTransform

gdal.UseExceptions()


def outside_mask(mask_path: str, geotransform: GeoTransform, crs_wkt: str, cols: int, rows: int
                 ) -> np.ndarray:
    """(rows, cols) bool: True where the tile centre falls outside the mask."""
    try:
        mask = gdal.OpenEx(str(mask_path), gdal.OF_RASTER | gdal.OF_VECTOR)
    except RuntimeError as exc:
        raise InputError(f"Cannot open the mask {mask_path}: {exc}") from exc
    target = gdal.GetDriverByName("MEM").Create("", cols, rows, 1, gdal.GDT_Byte)
    target.SetGeoTransform(list(geotransform))
    if crs_wkt:
        target.SetProjection(crs_wkt)
    try:
        if mask.RasterCount > 0:
            # Band 1 only; nodata and zero both mean 'outside'; nearest neighbour samples tile centres.
            first = gdal.Translate("", mask, format="VRT", bandList=[1])
            gdal.Warp(target, first, resampleAlg="near", dstNodata=0)
        elif mask.GetLayerCount() > 0:
            gdal.Rasterize(target, mask, burnValues=[1], layers=[mask.GetLayer(0).GetName()])
        else:
            raise InputError(f"The mask {mask_path} has neither raster bands nor a vector layer.")
    except RuntimeError as exc:
        raise InputError(f"Cannot apply the mask {mask_path}: {exc}") from exc
    inside = target.GetRasterBand(1).ReadAsArray()
    return inside == 0
