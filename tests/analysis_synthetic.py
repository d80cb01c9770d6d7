"""Synthetic embedding rasters with known answers, shared by the analysis tests."""

from __future__ import annotations

import numpy as np
from osgeo import osr

from srl_core.embedding_format import field_names, raster_metadata
from srl_core.raster.geotiff import create_geotiff

GEOTRANSFORM = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)


def utm31_wkt() -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    return srs.ExportToWkt()


def write_embedding_raster(
    path, data: np.ndarray, model_id: str = "synthetic-tile", block_size: int = 16
) -> str:
    """Write (D, H, W) float32 (NaN = nodata) as an SRL embedding raster."""
    d, h, w = data.shape
    ds = create_geotiff(
        str(path),
        w,
        h,
        d,
        np.float32,
        GEOTRANSFORM,
        utm31_wkt(),
        nodata=float("nan"),
        metadata=raster_metadata(model_id, d, 32, 32),
        band_names=field_names(d),
        block_size=block_size,
    )
    for b in range(d):
        ds.GetRasterBand(b + 1).WriteArray(data[b])
    ds = None
    return str(path)


def clustered_embeddings(k: int, d: int, h: int, w: int, seed: int = 0, spread: float = 0.05):
    """(D, H, W) embeddings in ``k`` tight, well separated clusters laid out as vertical stripes.

    Returns (data, labels) with labels 0..k-1 per pixel and the first row set to nodata (label -1).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)).astype(np.float32) * 3
    labels = np.repeat(np.arange(k), -(-w // k))[:w][None, :].repeat(h, axis=0)
    data = centres[labels] + rng.normal(scale=spread, size=(h, w, d)).astype(np.float32)
    data = np.moveaxis(data, -1, 0).astype(np.float32)
    data[:, 0, :] = np.nan
    labels = labels.copy()
    labels[0, :] = -1
    return data, labels


def write_embedding_points(path, emb: np.ndarray, model_id: str = "synthetic-loc", seed: int = 0, **attrs):
    """Embedding points at random UTM 31N positions, with extra attribute columns."""
    from srl_core.vector.points import write_points

    rng = np.random.default_rng(seed)
    xy = np.column_stack([rng.uniform(500000, 510000, len(emb)), rng.uniform(4000000, 4010000, len(emb))])
    write_points(str(path), xy, utm31_wkt(), attrs, embeddings=emb, model_id=model_id)
    return str(path), xy
