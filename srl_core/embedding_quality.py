"""Are these embeddings any use? A cheap check of their spread, run after every embedding.

A model fed data unlike its training data (another sensor or scaling, wrong bands) does
not fail: it returns vectors that all point the same way. Clustering then still "finds"
clusters and similarity maps read 0.98-1 everywhere, results that look fine and mean
nothing. The check takes a sample of the output (kept while it is written:
:class:`PositionSample`) and measures:

- the median cosine similarity between pairs of embeddings, and that of the least alike pairs: both
  near 1 means every tile (or point) got nearly the same vector, the telltale of degenerate embeddings
  (the bundled tile model on the bundled sample: 1.000 with the model's training statistics, 0.60 with
  the raster's own); a high median alone is one land cover filling most of the scene;
- the median embedding length against the one the card reports on the training data
  (``training.loss_curve[-1].embedding_norm``, when there): far off means the inputs were
  scaled unlike the training data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from osgeo import gdal

from .bundle import ModelCard
from .gdal_exceptions import gdal_exceptions

DEGENERATE_COSINE = 0.98  # median pairwise cosine at or above this: the vectors barely differ
# ... and even the least alike pairs (this quantile) this alike: a scene three quarters water has a median
# of 0.986 from its water alone, while its land tiles point elsewhere (cosine -0.88 to the water) and
# separate cleanly; the median alone called it degenerate and every analysis of it repeated so.
LEAST_ALIKE_QUANTILE = 0.1  # 1.5 % of vectors off (zero, clouds) make 3 % of the pairs: still degenerate
LEAST_ALIKE_COSINE = 0.9
MOSTLY_ZERO = 0.98  # this share of zero vectors or more: nothing to compare (MOSAIKS on flat ground gives 0)
NORM_RATIO_LIMIT = 5.0  # median length this many times larger (or smaller) than in training
SAMPLE_VECTORS = 400
READ_PIXELS = 40_000  # the raster is read decimated to about this many pixels


@dataclass(frozen=True)
class Spread:
    """Spread of a sample of embeddings."""

    vectors: int
    median_cosine: float
    median_norm: float
    median_dim_std: float
    least_alike_cosine: float = float("nan")  # the LEAST_ALIKE_QUANTILE of the pairwise cosines
    zero_share: float = 0.0  # share of vectors of length 0

    def describe(self) -> str:
        return (f"median pairwise cosine {self.median_cosine:.3f}, median length {self.median_norm:.3g}, "
                f"median per-dimension std {self.median_dim_std:.3g} ({self.vectors} vectors sampled)")


def spread(vectors: np.ndarray, seed: int = 0) -> Optional[Spread]:
    """The spread of (N, D) embeddings (rows with NaN ignored); None with fewer than 2 valid rows.

    Only the sample is copied (as float64): a copy of all N rows doubled the peak memory of embedding
    a large point layer (2.8 kB per point with the bundled location model, measured)."""
    vectors = np.asarray(vectors)
    rows = np.flatnonzero(np.isfinite(vectors).all(axis=1))
    if len(rows) < 2:
        return None
    rng = np.random.default_rng(seed)
    if len(rows) > SAMPLE_VECTORS:
        rows = rows[rng.choice(len(rows), SAMPLE_VECTORS, replace=False)]
    sample = vectors[rows].astype(np.float64)
    norms = np.linalg.norm(sample, axis=1)
    unit = sample / np.maximum(norms, 1e-12)[:, None]
    cosines = (unit @ unit.T)[np.triu_indices(len(sample), 1)]
    return Spread(
        vectors=len(sample),
        median_cosine=float(np.median(cosines)),
        median_norm=float(np.median(norms)),
        median_dim_std=float(np.median(sample.std(axis=0))),
        least_alike_cosine=float(np.quantile(cosines, LEAST_ALIKE_QUANTILE)),
        zero_share=float(np.mean(norms == 0)),
    )


def _position_keys(index: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random 64-bit key per grid position (splitmix64's finaliser)."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class PositionSample:
    """Up to ``size`` embeddings of an output grid ``cols`` wide, the same ones whatever order
    they arrive in (each grid position has a fixed random key; the smallest keys are kept).

    Why: the quality check needs a sample spread over the whole output. Read back from the
    file, a decimated read of a raster without overviews decodes every block of it, as long as
    writing it took for a large output; kept while writing, it costs a few hundred vectors. Fixed
    keys make it the same with one process or many workers finishing windows in any order.
    """

    def __init__(self, cols: int, size: int = SAMPLE_VECTORS) -> None:
        self.cols = int(cols)
        self.size = int(size)
        self._keys = np.empty(0, dtype=np.uint64)
        self._vectors: Optional[np.ndarray] = None

    def add_window(self, row0: int, col0: int, window: np.ndarray) -> None:
        """Offer a finished (D, h, w) window whose top left is grid (``row0``, ``col0``)."""
        rows, cols = np.nonzero(np.isfinite(window[0]))
        self._offer(rows + row0, cols + col0, lambda pick: window[:, rows[pick], cols[pick]].T)

    def _offer(self, rows: np.ndarray, cols: np.ndarray, take: Callable[[np.ndarray], np.ndarray]) -> None:
        """Keep the smallest keys among the sample and these positions; ``take(i)`` gives the vectors of
        positions ``i`` (only those that may be kept are copied, so a large window costs no copy)."""
        if not len(rows):
            return
        keys = _position_keys(rows.astype(np.int64) * self.cols + cols.astype(np.int64))
        pick = np.arange(len(keys))
        if 0 < len(self._keys) == self.size:  # full: only keys below the largest kept can enter
            pick = np.flatnonzero(keys < self._keys.max())
        if len(pick) > self.size:
            pick = pick[np.argpartition(keys[pick], self.size - 1)[:self.size]]
        if not len(pick):
            return
        vectors = np.array(take(pick), dtype=np.float32)  # a copy: the caller's array may be reused
        finite = np.isfinite(vectors).all(axis=1)  # a tile NaN in a later band only is left out
        keys, vectors = keys[pick][finite], vectors[finite]
        if self._vectors is not None:
            keys, vectors = np.concatenate([self._keys, keys]), np.concatenate([self._vectors, vectors])
        if len(keys) > self.size:
            keep = np.argpartition(keys, self.size - 1)[:self.size]
            keys, vectors = keys[keep], vectors[keep]
        self._keys, self._vectors = keys, vectors

    def vectors(self) -> np.ndarray:
        """The sample, (N, D) with N <= ``size`` (N = 0 when nothing valid was offered)."""
        return self._vectors if self._vectors is not None else np.empty((0, 0), dtype=np.float32)


@gdal_exceptions()
def raster_sample(path: str, max_pixels: int = READ_PIXELS) -> np.ndarray:
    """Embedding vectors (N, D) of an embedding raster, read decimated to about ``max_pixels`` pixels."""
    ds = gdal.Open(str(path))
    step = max(1.0, float(np.sqrt(ds.RasterXSize * ds.RasterYSize / max_pixels)))
    width, height = max(1, int(ds.RasterXSize / step)), max(1, int(ds.RasterYSize / step))
    data = ds.ReadAsArray(buf_xsize=width, buf_ysize=height).astype(np.float32)
    return data.reshape(ds.RasterCount, -1).T


def training_norm(card: ModelCard) -> Optional[float]:
    """The embedding length the card reports at the end of training, if it does."""
    curve = card.training.get("loss_curve") if isinstance(card.training, dict) else None
    if curve and isinstance(curve[-1], dict) and curve[-1].get("embedding_norm"):
        return float(curve[-1]["embedding_norm"])
    return None


def spread_warning(found: Optional[Spread], card: ModelCard, advice: str) -> Optional[str]:
    """One sentence when the embeddings look degenerate, ending with ``advice`` (what to change)."""
    if found is None:
        return None
    problems = []
    if found.zero_share >= MOSTLY_ZERO:  # cosines of zero vectors are 0: the check below cannot see them
        problems.append(f"{found.zero_share:.0%} of them are 0 in every dimension")
    elif found.median_cosine >= DEGENERATE_COSINE and found.least_alike_cosine >= LEAST_ALIKE_COSINE:
        problems.append(f"their median pairwise cosine similarity is {found.median_cosine:.3f} and even the "
                        f"least alike pairs reach {found.least_alike_cosine:.2f}, so nearly every vector "
                        "points the same way")
    reference = training_norm(card)
    if reference and not 1 / NORM_RATIO_LIMIT <= found.median_norm / reference <= NORM_RATIO_LIMIT:
        problems.append(f"their median length is {found.median_norm:.3g} against {reference:.3g} on the "
                        "model's training data")
    if not problems:
        return None
    return ("These embeddings look degenerate: " + "; ".join(problems)
            + ". Clusters and similarity maps made from them will mean little. " + advice)
