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

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from scipy.spatial import cKDTree

from ..errors import InputError
from ..models.location.encoder import build_encoding
from ..names import ENCODINGS, MULTISCALE_NAMES
from ..vector.crs import from_lonlat, to_lonlat
from .validation import site_centres, site_labels


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


def wrap_longitude(lon: np.ndarray) -> np.ndarray:
    """Longitudes (or their differences) in degrees brought into [-180, 180)."""
    return (np.asarray(lon, np.float64) + 180.0) % 360.0 - 180.0


def mean_longitude(lon: np.ndarray) -> float:
    """The mean of longitudes in degrees, taken across the antimeridian where they straddle it.

    The plain mean of 179.8 and -179.8 is 0, the far side of the Earth from both. The
    longitudes are taken as differences (wrapped to [-180, 180)) from their circular mean (the
    mean direction, 180 here), so the mean lies among them; elsewhere it is the plain mean.
    """
    lon = np.asarray(lon, np.float64)
    rad = np.radians(lon)
    reference = np.degrees(np.arctan2(np.sin(rad).mean(), np.cos(rad).mean()))
    return float(wrap_longitude(reference + wrap_longitude(lon - reference).mean()))


class LocalFrame:
    """Azimuthal equidistant projection centred on a set of points: (lon, lat) -> metres.

    The centre is the circular mean of the longitudes, so that points on both sides of the
    antimeridian get a frame among them, not one on the other side of the Earth.
    """

    def __init__(self, lonlat: np.ndarray) -> None:
        lonlat = np.asarray(lonlat, np.float64)
        self.lon0, self.lat0 = mean_longitude(lonlat[:, 0]), float(lonlat[:, 1].mean())
        self.proj = f"+proj=aeqd +lat_0={self.lat0:.8f} +lon_0={self.lon0:.8f} +datum=WGS84 +units=m +no_defs"

    def to_metres(self, lonlat: np.ndarray) -> np.ndarray:
        return from_lonlat(np.asarray(lonlat, np.float64), self.proj)

    def to_lonlat(self, xy_m: np.ndarray) -> np.ndarray:
        """(lon, lat) of local coordinates, the longitudes within 180 degrees of the centre's.

        They then run on continuously across the antimeridian (181 rather than -179), as the
        metres do: the multi-scale encodings of a field there see one field, not two halves
        360 degrees apart.
        """
        lonlat = to_lonlat(np.asarray(xy_m, np.float64), self.proj)
        lonlat[:, 0] = self.lon0 + wrap_longitude(lonlat[:, 0] - self.lon0)
        return lonlat


def choose_scales(xy_m: np.ndarray, n_scales: int = 5) -> ScaleChoice:
    """Scales from the points' spacing and extent (see the module docstring), over sites: replicates of
    one site (:func:`~srl_core.analysis.validation.site_labels`) are one point."""
    xy_m = np.asarray(xy_m, np.float64)
    unique = site_centres(xy_m, site_labels(xy_m)) if len(xy_m) else xy_m
    if len(unique) < 3:
        raise InputError(
            "Location features fitted to the points' own scale need at least 3 points at distinct "
            f"locations; these points are at {len(unique)}."
        )
    dist, _ = cKDTree(unique).query(unique, 2)
    spacing = float(np.median(dist[:, 1]))
    extent = float(np.ptp(unique, axis=0).max())
    lo = 2.0 * spacing
    hi = max(extent, lo * 1.01)
    return ScaleChoice(lo, hi, n_scales, spacing, extent)


class FourierFeatures:
    """Multi-scale random Fourier features of local coordinates; one random draw per ``seed``.

    Frequencies for length scale l are drawn from N(0, 1/l^2): the features' inner product
    approximates a sum over the scales of Gaussian kernels exp(-d^2 / 2l^2), each weighted by
    sqrt(l_min / l). Down-weighting the long scales (a rough-to-smooth prior, like a power-law
    variogram) keeps predictions away from the samples near the local mean instead of letting
    long waves run wild; on Meuse it lifts the spatially blocked R2 from 0.16 to 0.25.
    """

    def __init__(self, scales: ScaleChoice, features_per_scale: int = 128, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        m = features_per_scale
        self._weights = np.concatenate([rng.normal(size=(2, m)) / s for s in scales.scales], axis=1)
        self._phase = rng.uniform(0.0, 2.0 * np.pi, self._weights.shape[1])
        amplitude = np.sqrt(scales.scales[0] / scales.scales)
        self._norm = np.repeat(np.sqrt(2.0 / m) * amplitude, m)

    @property
    def size(self) -> int:
        return self._weights.shape[1]

    def __call__(self, xy_m: np.ndarray) -> np.ndarray:
        """Features (N, n_scales * features_per_scale), float32."""
        return (self._norm * np.cos(np.asarray(xy_m) @ self._weights + self._phase)).astype(np.float32)


METRES_PER_DEGREE = 111_320.0  # along a meridian; the multi-scale encodings take radii in degrees


class MultiScaleFeatures:
    """A Space2Vec / Sphere2Vec encoding of :mod:`srl_core.models.location` at the data's scales.

    Its ``min_radius`` / ``max_radius`` (degrees) are the chosen length scales converted from
    metres, so the same encodings that serve global models resolve a field a few km across.
    """

    def __init__(self, name: str, scales: ScaleChoice, frame: LocalFrame, frequency_num: int = 16) -> None:
        self._frame = frame
        self._encoding = build_encoding(
            {
                "name": name,
                "frequency_num": frequency_num,
                "min_radius": 2 * math.pi * scales.min_scale_m / METRES_PER_DEGREE,
                "max_radius": 2 * math.pi * scales.max_scale_m / METRES_PER_DEGREE,
            }
        )

    def __call__(self, xy_m: np.ndarray) -> np.ndarray:
        lonlat = torch.from_numpy(self._frame.to_lonlat(xy_m))
        with torch.no_grad():
            return self._encoding(lonlat).numpy().astype(np.float32)


def location_features(
    encoding: str, scales: ScaleChoice, frame: Optional[LocalFrame], features_per_scale: int, seed: int
) -> Callable[[np.ndarray], np.ndarray]:
    """The feature function ``xy_m -> (N, F)`` for ``encoding`` ('rff' or a multi-scale name)."""
    if encoding == "rff":
        return FourierFeatures(scales, features_per_scale, seed)
    if encoding not in MULTISCALE_NAMES:
        raise InputError(f"Unknown location encoding {encoding!r}; use one of {', '.join(ENCODINGS)}.")
    if frame is None:
        raise InputError(f"The {encoding} encoding needs the points' local frame (their longitude/latitude).")
    return MultiScaleFeatures(encoding, scales, frame)
