"""Distances along the Earth's surface, in one form for all of SRL.

Nearest-neighbour searches run on 3-D unit vectors (a k-d tree measures straight chords through the
sphere, which rank points exactly as great circles do); a chord then converts to the great-circle
distance. The neighbourhood of a layer's points, the distance to water in the location evaluation and a
raster pixel's ground size all use these two functions and one radius.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius


def unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """(n, 3) points on the unit sphere for longitudes and latitudes in degrees."""
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def chord_to_km(chord: np.ndarray) -> np.ndarray:
    """Great-circle distance (km) between unit vectors ``chord`` apart (straight through the sphere)."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.clip(np.asarray(chord, dtype=np.float64) / 2.0, 0.0, 1.0))
