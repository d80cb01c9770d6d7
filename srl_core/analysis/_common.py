"""Helpers shared by the analyses: input checks, normalisation and reading embedding points."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..checks import int_in_range
from ..errors import InputError
from ..raster.blocks import MAX_SAMPLE
from ..vector.crs import from_lonlat, spatial_reference, to_lonlat
from ..vector.points import PointTable, read_embedding_points

CHECK_ROWS = 65_536  # rows checked for NaN at a time: no mask as large as the embeddings
# Total variance below this share of the mean squared length: the embeddings do not vary (a spread under
# 0.1 % of their length; the bundled tile model on the bundled scene: 0.33). What PCA or k-means finds in
# them then is rounding.
NEGLIGIBLE_VARIANCE = 1e-6


def as_embeddings(x: np.ndarray, what: str = "embeddings") -> np.ndarray:
    """(N, D) finite float32, or a clear error."""
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"Expected a non-empty table of {what} (rows x dimensions), got shape {arr.shape}.")
    bad = sum(int((~np.isfinite(arr[i : i + CHECK_ROWS]).all(axis=1)).sum())
              for i in range(0, len(arr), CHECK_ROWS))  # fmt: skip
    if bad:
        raise InputError(f"{bad} of the {what} have missing (NaN) values; remove those rows first.")
    return np.ascontiguousarray(arr)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32: one new array, no other as large."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("...i,...i->...", x, x))[..., None]  # no (n, d) temporary
    return x / np.maximum(norms, np.float32(1e-12))


def relative_variance(x: np.ndarray) -> float:
    """Total variance of ``x`` (N, D) over its mean squared row length: how much the embeddings vary for
    their size (0 when they are all one vector, where PCA's shares are of float rounding)."""
    wide = x.astype(np.float64)
    return float(wide.var(axis=0).sum() / max(float(np.mean((wide * wide).sum(axis=1))), 1e-30))


def subsample(x: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most ``n`` rows of ``x`` chosen at random (all of them, in order, when fewer)."""
    n = int_in_range(n, "The sample size", 1, MAX_SAMPLE)
    if len(x) <= n:
        return x
    idx = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    return x[idx]


def read_points_with_embeddings(path: str) -> tuple[PointTable, np.ndarray, str]:
    """(PointTable, embeddings (N, D) float32, model id) of an embedding point layer; no NaN rows."""
    table, emb, model_id = read_embedding_points(path)
    return table, as_embeddings(emb, f"embeddings of {path}"), model_id


def transform_xy(xy: np.ndarray, src_wkt: Optional[str], dst_wkt: Optional[str]) -> np.ndarray:
    """Coordinates (N, 2) from one CRS to another (unchanged when either is unknown or both are the same)."""
    if not src_wkt or not dst_wkt or spatial_reference(src_wkt).IsSame(spatial_reference(dst_wkt)):
        return np.asarray(xy, np.float64)
    return from_lonlat(to_lonlat(xy, src_wkt), dst_wkt)
