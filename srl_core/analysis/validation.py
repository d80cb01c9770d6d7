"""Cross-validation for spatial predictions: random folds and spatially blocked folds.

Random folds answer "how well does the map fill gaps between samples"; spatial blocks
(folds made of compact groups of nearby points, by k-means on the coordinates) answer
"how well does it extrapolate into an area with no samples", which is nearer to what
an analyst does with a map and is usually the lower of the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import accuracy_score, balanced_accuracy_score, mean_squared_error, r2_score
from sklearn.model_selection import KFold, LeaveOneOut

from ..errors import InputError

SCHEMES = ("random", "spatial", "loo")
SCHEME_NAMES = {"random": "random folds", "spatial": "spatially blocked folds", "loo": "leave-one-out"}


@dataclass(frozen=True)
class CVScore:
    """Scores of one cross-validation scheme."""

    scheme: str
    folds: int
    metrics: dict
    note: str = ""  # why there are fewer folds than asked, when there are

    def describe(self) -> str:
        name = SCHEME_NAMES[self.scheme]
        values = ", ".join(f"{k} {v:.3f}" for k, v in self.metrics.items())
        note = f"; {self.note}" if self.note else ""
        return f"{name} ({self.folds}{note}): {values}"


def fold_indices(
    xy_m: np.ndarray, scheme: str, n_folds: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs for ``scheme`` (random / spatial / loo)."""
    n = len(xy_m)
    if scheme == "loo":
        return list(LeaveOneOut().split(xy_m))
    if scheme not in SCHEMES:
        raise InputError(f"Unknown cross-validation scheme {scheme!r}; use one of {', '.join(SCHEMES)}.")
    if n_folds < 2:
        raise InputError(f"Cross-validation needs at least 2 folds, got {n_folds}.")
    if n < n_folds:
        raise InputError(
            f"Only {n} points for {n_folds} cross-validation folds; use fewer folds or more points."
        )
    if scheme == "random":
        return _random_folds(xy_m, n_folds, seed)
    n_blocks = fold_count(distinct_locations(xy_m), n_folds, len(xy_m))
    groups = KMeans(n_clusters=n_blocks, n_init=4, random_state=seed).fit_predict(xy_m)
    return [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in range(n_blocks)]


SAME_SITE_FRACTION = 1e-5  # points closer than this share of the extent are one site (4 cm over Meuse)
SITE_NEIGHBOURS = 9  # each point is joined to at most this many (itself included) of its site


def site_labels(xy_m: np.ndarray) -> np.ndarray:
    """The site (0 .. S-1) of each point: points closer than :data:`SAME_SITE_FRACTION` of the extent are
    replicates of one site, however their coordinates were rounded or reprojected. Only exact copies were
    one site, so replicates 1 cm apart set the finest length scale to 2 cm and sat on both sides of a
    random fold."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    unique, inverse = np.unique(np.asarray(xy_m, np.float64), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    n = len(unique)
    tolerance = SAME_SITE_FRACTION * float(np.ptp(unique, axis=0).max()) if n > 1 else 0.0
    if tolerance <= 0:
        return inverse
    # Each point joined to its nearest few within the tolerance: memory linear in the points. Every pair
    # within it (query_pairs) held R²/2 pairs for a site of R jittered replicates (40,000 points at 20
    # sites: 2.3 GB, and growing with the square).
    distance, neighbour = cKDTree(unique).query(unique, k=min(SITE_NEIGHBOURS, n),
                                                distance_upper_bound=tolerance)
    near = np.isfinite(distance) & (neighbour != np.arange(n)[:, None])
    if not near.any():
        return inverse
    rows = np.broadcast_to(np.arange(n)[:, None], near.shape)[near]
    graph = coo_matrix((np.ones(len(rows)), (rows, neighbour[near])), shape=(n, n))
    site_of_unique = connected_components(graph, directed=False)[1]
    return np.unique(site_of_unique, return_inverse=True)[1].ravel()[inverse]


def site_centres(xy_m: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """The mean position of each site's points, (S, 2)."""
    counts = np.bincount(sites)
    return np.stack([np.bincount(sites, weights=xy_m[:, axis]) for axis in (0, 1)], axis=1) / counts[:, None]


def _random_folds(xy_m: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Random folds of whole sites (:func:`site_labels`): repeated samples at one site are tested
    together. Split row by row, a site's copies sat on both sides of a fold and the score read skill
    into pure noise (R² 0.5). Points at distinct locations get the plain shuffled k folds, as before."""
    sites = site_labels(xy_m)
    n_sites = int(sites.max()) + 1
    if n_sites == len(xy_m):
        return list(KFold(n_folds, shuffle=True, random_state=seed).split(xy_m))
    folds = fold_count(n_sites, n_folds, len(xy_m))
    fold_of_site = np.random.default_rng(seed).permutation(n_sites) % folds
    fold = fold_of_site[sites]
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(folds)]


def distinct_locations(xy_m: np.ndarray) -> int:
    """How many sites there are: repeated samples at a site share one (:func:`site_labels`)."""
    return int(site_labels(xy_m).max()) + 1 if len(xy_m) else 0


def fold_count(locations: int, n_folds: int, n_points: int) -> int:
    """How many folds points at ``locations`` distinct locations can make: ``n_folds``, or fewer.

    Folds keep a location's samples together, and each must hold a location of its own (k-means asked
    for more spatial blocks than there are distinct locations leaves some empty, and an empty test
    fold cannot be scored). Repeated samples at a few sites therefore get one fold per site; a single
    site cannot be split at all.
    """
    if locations < 2:
        raise InputError(
            f"Cross-validation needs points at 2 or more distinct locations, but all {n_points} points "
            "are at one: no number of cross-validation folds can split them."
        )
    return min(n_folds, locations)


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    return {"R2": float(r2_score(y, pred)), "RMSE": float(np.sqrt(mean_squared_error(y, pred)))}


def classification_metrics(y: np.ndarray, pred: np.ndarray) -> dict:
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced accuracy": float(balanced_accuracy_score(y, pred)),
    }


@dataclass(frozen=True)
class Baseline:
    """What a map that knows nothing scores in cross-validation: ``metric`` at ``score``."""

    metric: str
    score: float
    describe: str  # what that map predicts, for the analyst

    def beaten_by(self, score: CVScore) -> bool:
        """True when ``score`` is better than knowing nothing by more than :data:`SKILL_MARGIN` of the room
        left above it (a field of pure noise scored R² 0.005 with random folds by chance, and its map was
        said to fill gaps between the samples; of the room left, so that a perfect map of a class on 96 %
        of the samples still beats predicting that class)."""
        return score.metrics[self.metric] > self.score + SKILL_MARGIN * (1.0 - self.score)


SKILL_MARGIN = 0.05  # R² or accuracy above knowing nothing by no more than this share of the room left: none


def baseline(y: np.ndarray, classification: bool) -> Baseline:
    """The skill of predicting the samples' mean everywhere (R² 0), or their commonest class
    everywhere (an accuracy of that class's share). A cross-validated score at or below it means
    the map's pattern is noise, however well its colour ramp looks."""
    if not classification:
        return Baseline("R2", 0.0, "the mean of the samples")
    values, counts = np.unique(y, return_counts=True)
    best = int(np.argmax(counts))
    share = float(counts[best] / counts.sum())
    return Baseline("accuracy", share,
                    f"the commonest class of the samples ('{values[best]}', {share:.0%} of them)")


def cross_validate(
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    xy_m: np.ndarray,
    y: np.ndarray,
    scheme: str,
    n_folds: int = 5,
    classification: bool = False,
    seed: int = 0,
    folds: Optional[Sequence[tuple[np.ndarray, np.ndarray]]] = None,
) -> tuple[CVScore, np.ndarray]:
    """Score ``fit_predict(train_idx, test_idx) -> predictions`` over the folds: (score, predictions).
    ``folds``: the scheme's :func:`fold_indices`, when the caller has them already."""
    folds = fold_indices(xy_m, scheme, n_folds, seed) if folds is None else folds
    pred = np.empty(len(y), dtype=y.dtype)
    for train, test in folds:
        pred[test] = fit_predict(train, test)
    metrics = classification_metrics(y, pred) if classification else regression_metrics(y, pred)
    return CVScore(scheme, len(folds), metrics, _fewer_folds_note(xy_m, scheme, n_folds, len(folds))), pred


def _fewer_folds_note(xy_m: np.ndarray, scheme: str, asked: int, made: int) -> str:
    """Why folds are fewer than asked (the points' distinct locations), else ""."""
    if scheme == "loo" or made >= asked:
        return ""
    return f"not {asked}: the points are at only {distinct_locations(xy_m)} distinct locations"
