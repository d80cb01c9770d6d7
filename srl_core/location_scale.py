"""Location features at the layer's own scale, and how fine a location model can see.

A global location encoder resolves what its positional encoding resolves: spherical
harmonics of degree L about 20,000 km / L (L = 20: about 1,000 km). Points a few km apart
(the Meuse samples span 4 km) all get the same vector from it: every pair has cosine
>= 0.9999, yet clustering still "finds" clusters. So:

- :func:`resolution_km` says a location model's resolution: its card's
  ``inputs.resolution_km`` when given, else derived from its positional encoding;
- :func:`scale_warning` warns when the points' extent, or the groups they lie in, are far below it;
- :func:`auto_location_model` (model id ``auto``, the default of ``srl:embed_points``) takes
  the first bundled location model, or ``local`` where it would not tell the points apart;
- :class:`LocalLocationFeatures` is the alternative "model" (id ``local``): multi-scale random
  Fourier features with length scales fitted to the points themselves (twice the median
  nearest-neighbour spacing up to their extent, in a local equidistant frame), the encoding
  the interpolation uses (:mod:`srl_core.analysis.location_features`). Fitted to one layer,
  its embeddings are comparable only within that layer: the model id written with them
  names the frame and scales, so analyses refuse to mix them with other layers' embeddings.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional

import numpy as np

from .bundle import BUNDLED_MODELS_DIR, ModelCard, list_bundles
from .errors import InputError, ModelError
from .names import AUTO_LOCATION_MODEL, LOCAL_LOCATION_MODEL, LOCATION_ENCODING_ALIASES, MULTISCALE_NAMES
from .sphere import EARTH_RADIUS_KM, chord_to_km, unit_vectors

LOCAL_MODEL = LOCAL_LOCATION_MODEL  # the model id that asks for features fitted to the layer's own extent
AUTO_MODEL = AUTO_LOCATION_MODEL  # the bundled model, or local features where it cannot tell points apart
HALF_CIRCUMFERENCE_KM = 20_015.1
KM_PER_DEGREE = 111.32
FAR_BELOW = 10.0  # warn when the points span less than resolution / this
NEIGHBOURS = 10  # the points a point's neighbourhood holds (neighbourhood_km)
LOCAL_SCALES = 5
LOCAL_FEATURES_PER_SCALE = 128  # as the interpolation: 5 x 128 = 640 fields
# Farthest point from the local frame's centre (km) before the local features warn. The azimuthal
# equidistant frame stretches distances across the radial direction by (d/R)/sin(d/R): 4% at 3,000 km,
# 11% at 5,000 km, 57% at 10,000 km, and tears apart at the antipode (points 55 km apart there got
# cosine 0.09, against 1.00 at the centre). Points spread that far span 10,000 km or more, ten times
# what the bundled global model resolves (about 1,000 km): the global model suits them.
LOCAL_FRAME_LIMIT_KM = 5_000.0


# The scale parameters' defaults of the encodings (their classes in srl_core.models.location, which import
# torch), for configs that leave them out; tests/test_location_scales.py checks that they agree.
DEFAULT_LEGENDRE_POLYS = 10
DEFAULT_RFF_SIGMA = 1.0
DEFAULT_MIN_RADIUS = 1.0  # degrees, Space2Vec / Sphere2Vec
DEFAULT_GEOCLIP_SIGMAS = (1.0, 16.0, 256.0)
DEFAULT_RBF_KERNEL = 10.0  # degrees
DEFAULT_TILE_CELLS = (36, 18)
DEFAULT_TILE_EXTENT = (-180.0, -90.0, 180.0, 90.0)
DEFAULT_NERF_OCTAVES = 10
# GeoCLIP's scaled Equal Earth coordinates span -1..1 across the map's width: one unit is this many km.
GEOCLIP_SCALE = 66.50336  # GeoCLIP's Equal Earth coordinates are scaled by this / 180
GEOCLIP_UNIT_KM = EARTH_RADIUS_KM * 180.0 / GEOCLIP_SCALE


def encoding_resolution_km(encoding: Mapping[str, Any]) -> Optional[float]:
    """The finest half-wavelength (km) a positional-encoding config can express, None if unknown.

    Spherical harmonics of degree L: half the Earth's circumference / L (L = 20: ~1000 km).
    Random Fourier features with sigma s (srl_core multiplies by 2 pi): a typical frequency has a
    norm of s sqrt(2) cycles per unit across the surface, so half a wave spans unit / (2 sqrt(2) s),
    the unit being the Earth's radius (``rff``, of the unit vector) or GeoCLIP's Equal Earth unit
    (``geoclip``, its finest sigma). Space2Vec / Sphere2Vec: their shortest wavelength
    (``min_radius``, degrees); RBF: its kernel's width; ``tile``: a cell's width; NeRF: half its
    finest octave. A stack resolves what its finest part does. An encoding that leaves its scale out
    has its class's default scale (a card without ``min_radius`` resolves 111 km, and said nothing).
    A scale that is not a positive number (a hand-written card's sigma 0) gives None: no figure,
    rather than a failure that would lose a trained model while its card is written, or stop an
    analysis that only warns with it. Encodings of the raw coordinates (``direct``, ``wrap``,
    ``xyz``) have no scale of their own: None.
    """
    if not isinstance(encoding, Mapping):
        return None
    name = str(encoding.get("name", "")).lower()
    name = LOCATION_ENCODING_ALIASES.get(name, name)
    if name == "stack":
        parts = encoding.get("parts", [])
        known = [km for km in map(encoding_resolution_km, parts if isinstance(parts, list) else [])
                 if km is not None]
        return min(known) if known else None
    if name == "sphericalharmonics":
        degree = _positive(encoding.get("legendre_polys", DEFAULT_LEGENDRE_POLYS))
        return HALF_CIRCUMFERENCE_KM / degree if degree else None
    if name == "rff":
        sigma = _positive(encoding.get("sigma", DEFAULT_RFF_SIGMA))
        return EARTH_RADIUS_KM / (2.0 * 2.0 ** 0.5 * sigma) if sigma else None
    if name == "geoclip":
        sigmas = encoding.get("sigmas", DEFAULT_GEOCLIP_SIGMAS)
        finest = _positive(max(sigmas)) if isinstance(sigmas, (list, tuple)) and sigmas else None
        return GEOCLIP_UNIT_KM / (2.0 * 2.0 ** 0.5 * finest) if finest else None
    if name in MULTISCALE_NAMES:
        radius = _positive(encoding.get("min_radius", DEFAULT_MIN_RADIUS))
        return radius * KM_PER_DEGREE if radius else None
    if name == "rbf":
        width = _positive(encoding.get("kernel_size", DEFAULT_RBF_KERNEL))
        return width * KM_PER_DEGREE if width else None
    if name == "tile":
        return _tile_resolution_km(encoding)
    if name == "nerf":
        octaves = _positive(encoding.get("frequency_num", DEFAULT_NERF_OCTAVES))
        return EARTH_RADIUS_KM * 2.0 ** (1.0 - octaves) if octaves else None
    return None


def _tile_resolution_km(encoding: Mapping[str, Any]) -> Optional[float]:
    """The narrower side (km, at the equator) of a ``tile`` encoding's cells."""
    cells = encoding.get("cells", DEFAULT_TILE_CELLS)
    extent = encoding.get("extent", DEFAULT_TILE_EXTENT)
    try:
        nx, ny = (_positive(c) for c in cells)
        x0, y0, x1, y1 = (float(v) for v in extent)
    except (TypeError, ValueError):
        return None
    width = _positive(min((x1 - x0) / nx, (y1 - y0) / ny)) if nx and ny else None
    return width * KM_PER_DEGREE if width else None


def config_resolution_km(config: Mapping[str, Any]) -> Optional[float]:
    """The finest half-wavelength (km) of a location encoder's config: its encoding's, or its appended
    encoding's when that is finer (an L = 40 basis appended to an L = 4 network resolves 500 km; the
    card said 5,000, and warned of near-identical embeddings for places the basis tells apart)."""
    parts = [config.get("encoding") or {}, *([config["append"]] if config.get("append") else [])]
    return encoding_resolution_km({"name": "stack", "parts": parts})


def _positive(value: Any) -> Optional[float]:
    """``value`` as a positive finite number, or None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def resolution_km(card: ModelCard) -> Optional[float]:
    """The finest distance (km) a location model tells apart: the card's, or from its encoding."""
    stated = card.inputs.get("resolution_km") if isinstance(card.inputs, dict) else None
    if stated is not None:  # a hand-edited card: "abc" was a traceback, a negative value skipped the check
        value = _positive(stated)
        if value is None:
            raise ModelError(f"Model '{card.id}': its card's inputs.resolution_km must be a positive number "
                             f"of km, not {stated!r}.")
        return value
    return config_resolution_km(card.config or {})


def extent_km(lonlat: np.ndarray) -> float:
    """The largest side of the points' bounding box in a local equidistant frame, in km."""
    lonlat = np.asarray(lonlat, np.float64)
    lonlat = lonlat[np.isfinite(lonlat).all(axis=1)]
    if len(lonlat) < 2:
        return 0.0
    from .analysis.location_features import LocalFrame  # imports torch: not at plugin load

    xy = LocalFrame(lonlat).to_metres(lonlat)
    return float(np.ptp(xy, axis=0).max()) / 1000.0


def neighbourhood_km(lonlat: np.ndarray) -> float:
    """The median distance (km, along the sphere) from a point to its :data:`NEIGHBOURS`-th nearest
    neighbour (fewer in a small layer): how far apart the points a model must tell apart lie. The extent
    alone missed layers of a few small groups far apart (Meuse and a copy 1,000 km away: a median
    cosine of 0.999995 within each, unsaid)."""
    from scipy.spatial import cKDTree

    lonlat = np.asarray(lonlat, np.float64)
    lonlat = lonlat[np.isfinite(lonlat).all(axis=1)]
    if len(lonlat) < 2:
        return 0.0
    unit = unit_vectors(lonlat[:, 0], lonlat[:, 1])
    k = min(NEIGHBOURS, len(unit) - 1)
    chord, _ = cKDTree(unit).query(unit, k + 1)
    return float(np.median(chord_to_km(chord[:, k])))


def scale_warning(card: ModelCard, lonlat: np.ndarray) -> Optional[str]:
    """A warning when the points span far less than the model resolves, or lie in groups that do
    (their nearest neighbours far closer than it resolves); None otherwise."""
    resolution = resolution_km(card)
    if not resolution or len(lonlat) < 2:
        return None
    span = extent_km(lonlat)
    if span * FAR_BELOW < resolution:
        return (f"The points span {span:,.1f} km, but model '{card.id}' resolves about {resolution:,.0f} "
                "km: their embeddings will be nearly identical and clusters or similarities between them "
                f"mean little. Use the location features fitted to the layer's own extent (model "
                f"'{LOCAL_MODEL}').")
    near = neighbourhood_km(lonlat)
    if near * FAR_BELOW >= resolution:
        return None
    return (f"The points lie in groups: half of them have their {NEIGHBOURS} nearest neighbours within "
            f"{near:,.1f} km, but model '{card.id}' resolves about {resolution:,.0f} km, so within a group "
            "their embeddings will be nearly identical and clusters or similarities there mean little. Use "
            f"the location features fitted to the layer (model '{LOCAL_MODEL}'), or embed each group apart.")


class LocalLocationFeatures:
    """Multi-scale random Fourier features fitted to a set of points (see the module docstring)."""

    def __init__(self, lonlat: np.ndarray, n_scales: int = LOCAL_SCALES,
                 features_per_scale: int = LOCAL_FEATURES_PER_SCALE, seed: int = 0) -> None:
        from .analysis.location_features import FourierFeatures, LocalFrame, choose_scales

        lonlat = np.asarray(lonlat, np.float64)
        lonlat = lonlat[np.isfinite(lonlat).all(axis=1)]
        if len(lonlat) < 3:
            raise InputError("Local location features need at least 3 points at distinct locations.")
        self.frame = LocalFrame(lonlat)
        xy = self.frame.to_metres(lonlat)
        self.scales = choose_scales(xy, n_scales)
        self.reach_km = float(np.hypot(xy[:, 0], xy[:, 1]).max()) / 1000.0  # farthest point from the centre
        self.features = FourierFeatures(self.scales, features_per_scale, seed)
        self.seed = seed

    @property
    def embedding_size(self) -> int:
        return self.features.size

    @property
    def model_id(self) -> str:
        """Names the frame, scales and draw: embeddings of other layers get another id."""
        return (f"{LOCAL_MODEL}-rff@{self.frame.lon0:.5f},{self.frame.lat0:.5f}"
                f"/{self.scales.min_scale_m:.0f}-{self.scales.max_scale_m:.0f}m/{self.embedding_size}d"
                f"/seed{self.seed}")

    def describe(self) -> str:
        return (f"Local location features ({self.embedding_size}-d): {self.scales.describe()}")

    def warning(self) -> Optional[str]:
        """A warning when the points reach farther from the frame's centre than it stays faithful
        (:data:`LOCAL_FRAME_LIMIT_KM`): their features then distort, and tear at the far side of the
        Earth, where neighbouring points get unrelated embeddings. None otherwise."""
        if self.reach_km <= LOCAL_FRAME_LIMIT_KM:
            return None
        return (f"The points reach {self.reach_km:,.0f} km from the centre of the local features' flat "
                f"frame (lon {self.frame.lon0:.1f}, lat {self.frame.lat0:.1f}); beyond about "
                f"{LOCAL_FRAME_LIMIT_KM:,.0f} km it distorts distances more and more and tears apart at the "
                "opposite side of the Earth, where points close together get unrelated embeddings. Use "
                f"a global location model for points spread this far (model '{AUTO_MODEL}' picks the "
                "bundled one).")

    def __call__(self, lonlat: np.ndarray) -> np.ndarray:
        """(N, D) float32 features of (lon, lat) degrees; NaN rows for non-finite coordinates."""
        lonlat = np.asarray(lonlat, np.float64)
        out = np.full((len(lonlat), self.embedding_size), np.nan, np.float32)
        rows = np.flatnonzero(np.isfinite(lonlat).all(axis=1))
        # by blocks: the float64 work on all N points at once held 13 kB a point (13 GB for a million)
        for start in range(0, len(rows), LOCAL_BLOCK):
            block = rows[start:start + LOCAL_BLOCK]
            out[block] = self.features(self.frame.to_metres(lonlat[block]))
        return out


LOCAL_BLOCK = 16_384  # points whose local features are computed at once


def auto_location_model(lonlat: np.ndarray) -> tuple[str, str]:
    """``(model id, one sentence saying why)``: the first bundled location model, unless the points
    span far less than it resolves (or none is installed): then ``local``."""
    cards = [(card, folder.parent == BUNDLED_MODELS_DIR) for card, folder in list_bundles()
             if card.kind == "location"]
    cards.sort(key=lambda pair: not pair[1])  # bundled first
    if not cards:
        return LOCAL_MODEL, "Model: local location features fitted to the points (no location model found)."
    card = cards[0][0]
    resolution = resolution_km(card)
    about = f" (resolves about {resolution:,.0f} km)" if resolution else ""
    finite = np.asarray(lonlat, np.float64)
    finite = finite[np.isfinite(finite).all(axis=1)]
    if len(np.unique(finite, axis=0)) < 3:  # local features need 3 places: 1 or 2 failed in 'local'
        return card.id, f"Model: '{card.id}'{about}, as local features need at least 3 places."
    span = extent_km(finite)
    if resolution and span * FAR_BELOW < resolution:
        return LOCAL_MODEL, (f"Model: local location features fitted to the points, as they span "
                             f"{span:,.1f} km and '{card.id}' resolves about {resolution:,.0f} km.")
    near = neighbourhood_km(finite)
    if resolution and near * FAR_BELOW < resolution and LocalLocationFeatures(finite).warning() is None:
        return LOCAL_MODEL, (f"Model: local location features fitted to the points, as half of them have "
                             f"their {NEIGHBOURS} nearest neighbours within {near:,.1f} km and '{card.id}' "
                             f"resolves about {resolution:,.0f} km.")
    return card.id, f"Model: '{card.id}'{about}."


def is_auto(model: object) -> bool:
    """True when ``model`` asks for the automatic choice (the id ``auto``, any case)."""
    return isinstance(model, str) and model.strip().lower() == AUTO_MODEL


def is_local(model: object) -> bool:
    """True when ``model`` asks for the local features (the id ``local``, any case)."""
    return isinstance(model, str) and model.strip().lower() == LOCAL_MODEL

