"""Location embeddings at the data's own scale, for interpolation.

A global location encoder resolves hundreds of kilometres; a field 5 km across needs
length scales between the sample spacing and the field's extent. The points are put in a
local equidistant frame (metres, centred on them), and the scales are chosen from the
points themselves: the shortest length scale is twice the median nearest-neighbour spacing
(nothing shorter can be resolved from the samples), the longest is the extent. The encoding
is multi-scale random Fourier features (Rahimi & Recht 2007) — a linear model on them is
a Gaussian-kernel regression mixing those length scales, i.e. what kriging does with a
variogram, but learnt with ridge regression and cheap to evaluate on any grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..errors import InputError
from ..vector.crs import from_lonlat


@dataclass(frozen=True)
class ScaleChoice:
    """Length scales (metres) of the location encoding and the point statistics they came from."""

    min_scale_m: float
    max_scale_m: float
    n_scales: int
    spacing_m: float
    extent_m: float

    @property
    def scales(self) -> np.ndarray:
        return np.geomspace(self.min_scale_m, self.max_scale_m, self.n_scales)

    def describe(self) -> str:
        return (
            f"Location encoding scales chosen from the points: {self.n_scales} length scales from "
            f"{self.min_scale_m:,.0f} m (2 x median nearest-neighbour spacing {self.spacing_m:,.0f} m) "
            f"to {self.max_scale_m:,.0f} m (extent of the points)."
        )


class LocalFrame:
    """Azimuthal equidistant projection centred on a set of points: (lon, lat) -> metres."""

    def __init__(self, lonlat: np.ndarray) -> None:
        lon0, lat0 = np.asarray(lonlat, np.float64).mean(axis=0)
        self.lon0, self.lat0 = float(lon0), float(lat0)
        self.proj = f"+proj=aeqd +lat_0={self.lat0:.8f} +lon_0={self.lon0:.8f} +datum=WGS84 +units=m +no_defs"

    def to_metres(self, lonlat: np.ndarray) -> np.ndarray:
        return from_lonlat(np.asarray(lonlat, np.float64), self.proj)


def choose_scales(xy_m: np.ndarray, n_scales: int = 5) -> ScaleChoice:
    """Scales from the points' spacing and extent (see the module docstring)."""
    xy_m = np.asarray(xy_m, np.float64)
    unique = np.unique(xy_m, axis=0)
    if len(unique) < 3:
        raise InputError("Interpolation needs at least 3 points at distinct locations.")
    dist, _ = cKDTree(unique).query(unique, 2)
    spacing = float(np.median(dist[:, 1]))
    extent = float(np.ptp(unique, axis=0).max())
    lo = 2.0 * spacing
    hi = max(extent, lo * 1.01)
    return ScaleChoice(lo, hi, n_scales, spacing, extent)


class FourierFeatures:
    """Multi-scale random Fourier features of local coordinates; one random draw per ``seed``.

    Frequencies for length scale l are drawn from N(0, 1/l^2): the features' inner product
    approximates a Gaussian kernel exp(-d^2 / 2l^2) summed over the scales.
    """

    def __init__(self, scales: ScaleChoice, features_per_scale: int = 128, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        m = features_per_scale
        self._weights = np.concatenate([rng.normal(size=(2, m)) / s for s in scales.scales], axis=1)
        self._phase = rng.uniform(0.0, 2.0 * np.pi, self._weights.shape[1])
        self._norm = np.sqrt(2.0 / m)

    @property
    def size(self) -> int:
        return self._weights.shape[1]

    def __call__(self, xy_m: np.ndarray) -> np.ndarray:
        """Features (N, n_scales * features_per_scale), float32."""
        return (self._norm * np.cos(np.asarray(xy_m) @ self._weights + self._phase)).astype(np.float32)
