"""A continuous evaluation target for location encoders: distance from a land point to water.

Distance to the sea is what climatologists call continentality (the range of temperatures grows
with it); it is public, global, exact and cheap: water cells of the 1 km GLOBE land mask
(``global-land-mask``) sampled every ``step_degrees`` that touch land form the shoreline, and a
point's distance is the great-circle distance to the nearest of them. No bundled encoder trains
on it (the mask only decides where training points fall, and the sea is one colour in the
imagery); the score is R² of ``log10(1 + km)``.
"""

from __future__ import annotations

import numpy as np

from srl_core.sphere import chord_to_km, unit_vectors

from ..location.sampling import LandMask

TARGET_NAME = "log10(1 + distance to water, km)"


class WaterDistance:
    """Great-circle distance (km) to the nearest shoreline cell of a land mask."""

    def __init__(self, land: LandMask, step_degrees: float = 1.0 / 12.0) -> None:
        from scipy.spatial import cKDTree

        rows, cols = int(round(180.0 / step_degrees)), int(round(360.0 / step_degrees))
        lat = 90.0 - (np.arange(rows) + 0.5) * 180.0 / rows
        lon = -180.0 + (np.arange(cols) + 0.5) * 360.0 / cols
        grid = np.stack([land.is_land(lon, np.full(cols, la)) for la in lat])
        near_land = np.zeros_like(grid)
        near_land[1:] |= grid[:-1]
        near_land[:-1] |= grid[1:]
        near_land |= np.roll(grid, 1, axis=1) | np.roll(grid, -1, axis=1)
        r, c = np.nonzero(~grid & near_land)
        self._tree = cKDTree(unit_vectors(lon[c], lat[r])) if r.size else None

    def km(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Distance in km from each (lon, lat) to the nearest shoreline cell (inf if the mask has none)."""
        points = unit_vectors(lon, lat)
        if self._tree is None:
            return np.full(points.shape[0], np.inf)
        chord, _ = self._tree.query(points)
        return chord_to_km(chord)

    def target(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """The regression target: log10(1 + km)."""
        return np.log10(1.0 + self.km(lon, lat))
