"""How much of an interpolated map lies beyond what its cross-validation measured.

The spatial cross-validation predicts each held-out point from points some distance away; its scores
speak for the map only that far from the samples. Farther out the map extrapolates, and the ensemble's
uncertainty does not grow with the distance (on a plane sampled over 2 x 2 km and mapped over 4 x 4 km,
cells over 800 m beyond the points erred by 13 units where the uncertainty said 1.8). A map mostly out
there looks like a result; the run says so, unless a maximum distance already leaves those cells empty.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree

from ..raster.blocks import Grid
from ..raster.grid import pixel_to_world

EXTRAPOLATED_SHARE = 0.1  # a map with at least this share of its cells beyond the reach is warned of
CELL_SAMPLE = 65_536  # cell centres checked, on a regular lattice over the grid
REACH_PERCENTILE = 95.0  # of the held-out points' distances: what the cross-validation measured


def validated_reach(xy: np.ndarray, folds: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """How far the held-out points of ``folds`` (train, test index pairs) were from the points they were
    predicted from, in the units of ``xy``: the :data:`REACH_PERCENTILE` th percentile, so that a lone
    sample far from the rest (a distant plot, a typo), its own fold, does not set it (its 28 km vouched
    for a whole 22 km map of samples within 2 km)."""
    distances = [cKDTree(xy[train]).query(xy[test], k=1)[0] for train, test in folds]
    return float(np.percentile(np.concatenate(distances), REACH_PERCENTILE))


def cell_centres(grid: Grid, count: int = CELL_SAMPLE) -> np.ndarray:
    """Centres (n, 2) of at most about ``count`` cells of ``grid``, every k-th row and column."""
    step = max(1, math.ceil(math.sqrt(grid.width * grid.height / count)))
    cols, rows = np.meshgrid(np.arange(0, grid.width, step), np.arange(0, grid.height, step))
    return pixel_to_world(grid.geotransform, np.column_stack([cols.ravel(), rows.ravel()]) + 0.5)


def extrapolation_warning(xy: np.ndarray, grid: Grid, folds: Sequence[tuple[np.ndarray, np.ndarray]],
                          units: str) -> Optional[str]:
    """What to do when :data:`EXTRAPOLATED_SHARE` or more of the map lies farther from every sample
    (``xy``, in the grid's CRS) than :func:`validated_reach`, else None."""
    reach = validated_reach(xy, folds)
    distance, _ = cKDTree(xy).query(cell_centres(grid), k=1, distance_upper_bound=np.nextafter(reach, np.inf))
    share = float(np.mean(distance > reach))
    if share < EXTRAPOLATED_SHARE:
        return None
    return (
        f"{share:.0%} of the map lies farther from every sample than the points held out by the spatial "
        f"cross-validation were from the points that predicted them ({reach:.4g} {units}, for 95 % of "
        "them): its scores do not vouch for those cells, and the uncertainty there does not grow with the "
        f"distance. Give a maximum distance to a sample (e.g. {reach:.4g}) to leave them empty, or map a "
        "smaller extent."
    )
