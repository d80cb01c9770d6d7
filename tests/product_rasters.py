"""Small rasters in the formats of published embedding products, from known unit vectors.

Values are quantised by each product's documented rule, so tests can check the decoded
vectors against known answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from analysis_synthetic import utm31_wkt
from osgeo import gdal

LANDSAT = Path(__file__).resolve().parent.parent / "resources" / "sample_data" / "nc_landsat7_2000.tif"
ORIGIN_X, TOP_Y, PIXEL = 500000.0, 4000000.0, 10.0
H, W = 12, 20
ALPHAEARTH_NAMES = [f"A{i:02d}" for i in range(64)]


def unit_vectors(d: int, seed: int = 0) -> np.ndarray:
    """(d, H, W) unit vectors in two groups (left and right halves) with some spread."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, d))
    groups = (np.arange(W) >= W // 2).astype(int)[None, :].repeat(H, axis=0)
    x = centres[groups] + rng.normal(scale=0.15, size=(H, W, d))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return np.moveaxis(x, -1, 0)


def quantise_alphaearth(x: np.ndarray) -> np.ndarray:
    """The inverse of AlphaEarth's documented de-quantisation sign(v) * (|v| / 127.5)^2."""
    return np.clip(np.round(np.sign(x) * np.sqrt(np.abs(x)) * 127.5), -127, 127).astype(np.int8)


def dequantise_alphaearth(q: np.ndarray) -> np.ndarray:
    q = q.astype(np.float64)
    return np.sign(q) * (np.abs(q) / 127.5) ** 2


def write_raster(
    path, data: np.ndarray, *, nodata=None, names=None, metadata=None, bottom_up=False, scale_offset=None
) -> str:
    """A GeoTIFF of (bands, H, W) ``data`` (int8 written as signed bytes), row 0 = north unless bottom-up."""
    bands, h, w = data.shape
    int8 = data.dtype == np.int8
    gdal_type = getattr(gdal, "GDT_Int8", gdal.GDT_Byte) if int8 else gdal.GDT_Float32
    options = ["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"]
    if int8 and gdal_type == gdal.GDT_Byte:
        options.append("PIXELTYPE=SIGNEDBYTE")  # GDAL < 3.7
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, bands, gdal_type, options)
    if bottom_up:
        ds.SetGeoTransform([ORIGIN_X, PIXEL, 0, TOP_Y - h * PIXEL, 0, PIXEL])
        data = data[:, ::-1, :]  # the file's first row is the southernmost
    else:
        ds.SetGeoTransform([ORIGIN_X, PIXEL, 0, TOP_Y, 0, -PIXEL])
    ds.SetProjection(utm31_wkt())
    if metadata:
        ds.SetMetadata(metadata)
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if names:
            band.SetDescription(names[b])
        if scale_offset:
            band.SetScale(scale_offset[0][b])
            band.SetOffset(scale_offset[1][b])
        values = data[b]
        band.WriteArray(values.view(np.uint8) if int8 and gdal_type == gdal.GDT_Byte else values)
    ds = None
    return str(path)


def alphaearth_int8(path, bottom_up=False, names=True) -> tuple[str, np.ndarray, np.ndarray]:
    """(path, known unit vectors, quantised values) of an AlphaEarth 8-bit raster; pixel (0, 0) masked."""
    x = unit_vectors(64)
    q = quantise_alphaearth(x)
    q[:, 0, 0] = -128
    names = ALPHAEARTH_NAMES if names else None
    return write_raster(path, q, nodata=-128, names=names, bottom_up=bottom_up), x, q
