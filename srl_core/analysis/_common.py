"""Helpers shared by the analyses: input checks, normalisation and reading embedding points."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..checks import int_in_range
from ..embedding_format import FIELD_PREFIX
from ..embedding_recipe import Recipe
from ..errors import InputError
from ..names import VALID_FIELD
from ..raster.blocks import MAX_SAMPLE
from ..vector.crs import from_lonlat, spatial_reference, to_lonlat
from ..vector.points import EmbeddingOrigin, PointTable, layer_metadata, read_embedding_points

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
    """Rows scaled to unit length (zero rows stay zero), float32: one new array, no other as large.

    Rows whose squares leave float32's range (values beyond about 1e19, or all below about 1e-19) are
    scaled in float64: their float32 length was inf or 0, so they became zero vectors (a cosine of 0,
    a query 'with no direction') or were scaled up to noise."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore", under="ignore"):
        norms = np.sqrt(np.einsum("...i,...i->...", x, x))[..., None]  # no (n, d) temporary
        out = np.divide(x, np.maximum(norms, np.float32(1e-12)), order="C")  # C order: rows below is a view
    if not x.ndim or not x.shape[-1]:
        return out
    rows = out.reshape(-1, x.shape[-1])
    outside = (~np.isfinite(norms) | (norms < np.float32(1e-18))).reshape(-1)
    if outside.any():
        wide = x.reshape(-1, x.shape[-1])[outside].astype(np.float64)
        rows[outside] = wide / np.maximum(np.linalg.norm(wide, axis=-1, keepdims=True), 1e-300)
    return out


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


@dataclass(frozen=True)
class EmbeddingPoints:
    """An embedding point layer read for an analysis: every point, and which of them have an embedding.

    Tiles sampled at points that run off the raster or are mostly nodata have none (``emb_valid`` = 0,
    empty ``emb_`` fields). An analysis runs on the others and gives these no value (NULL), so that the
    layer can be analysed as written, and none of its points is dropped from the output.
    """

    table: PointTable
    embeddings: np.ndarray  # (N, D) float32, NaN rows where a point has no embedding
    model_id: str
    embedded: np.ndarray  # (N,) bool: the point has an embedding
    path: str
    recipe: Recipe  # how the embeddings were made (tiles sampled at the points: bands, tile size...)
    origin: EmbeddingOrigin  # their kind and quality flag, which an output copying them keeps

    @property
    def usable(self) -> np.ndarray:
        """The embeddings of the points that have one (n, D); no copy when every point has one."""
        return self.embeddings if self.embedded.all() else self.embeddings[self.embedded]

    def spread(self, values: np.ndarray) -> np.ndarray:
        """``values`` (rows) of the embedded points, a row per point: NaN (floats) or masked (integers)
        for the others."""
        values = np.asarray(values)
        if self.embedded.all():
            return values
        shape = (len(self.embedded), *values.shape[1:])
        if values.dtype.kind == "f":
            full = np.full(shape, np.nan, dtype=values.dtype)
            full[self.embedded] = values
            return full
        full = np.ma.masked_all(shape, dtype=values.dtype)
        full[self.embedded] = values
        return full

    def warning(self, outcome: str) -> Optional[str]:
        """That some points have no embedding, and ``outcome`` for them ("their class is empty (NULL)"),
        or None when all have one."""
        missing = int((~self.embedded).sum())
        if not missing:
            return None
        return (
            f"{missing} of the {len(self.embedded)} points of {Path(self.path).name} have no embedding "
            f"(empty {FIELD_PREFIX}* fields; {VALID_FIELD} = 0 where tiles were sampled: the tile "
            f"ran off the raster or was mostly nodata); they were left out: {outcome}."
        )


def read_points_with_embeddings(path: str) -> EmbeddingPoints:
    """An embedding point layer with :class:`EmbeddingPoints`' account of the points that have no embedding.

    A layer where no point has one is refused: nothing could be analysed.
    """
    table, emb, model_id = read_embedding_points(path)
    embedded = np.ones(len(emb), dtype=bool)
    for i in range(0, len(emb), CHECK_ROWS):
        embedded[i : i + CHECK_ROWS] = np.isfinite(emb[i : i + CHECK_ROWS]).all(axis=1)
    if len(emb) == 0:
        as_embeddings(emb, f"embeddings of {path}")  # refused with its message for an empty layer
    if not embedded.any():
        raise InputError(
            f"None of the {len(emb)} points of {path} has an embedding (its {FIELD_PREFIX}* fields "
            f"are empty; {VALID_FIELD} = 0 where tiles were sampled): nothing to analyse."
        )
    metadata = layer_metadata(path)
    recipe = Recipe.of(metadata, model_id, emb.shape[1], str(path))
    return EmbeddingPoints(table, emb, model_id, embedded, str(path), recipe, EmbeddingOrigin.of(metadata))


def transform_xy(xy: np.ndarray, src_wkt: Optional[str], dst_wkt: Optional[str]) -> np.ndarray:
    """Coordinates (N, 2) from one CRS to another (unchanged when either is unknown or both are the same)."""
    if not src_wkt or not dst_wkt or spatial_reference(src_wkt).IsSame(spatial_reference(dst_wkt)):
        return np.asarray(xy, np.float64)
    return from_lonlat(to_lonlat(xy, src_wkt), dst_wkt)
