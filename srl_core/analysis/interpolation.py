"""Maps from sample points: a model on location embeddings (plus, optionally, tile embeddings).

The analyst gives a point layer with a numeric field (regression) or a categorical one
(classification). Each point is described by location embeddings at the data's own scale
(:mod:`.location_features`) and, when an embedding raster is given, by the tile embedding
under it. An ensemble of linear models (ridge regression / logistic regression), each on
its own random feature draw and bootstrap sample, predicts on a grid: the prediction
raster is the ensemble mean (or majority class), the uncertainty raster the predictive
standard deviation (ensemble spread combined with out-of-bag error) or, for classes,
1 - the probability of the predicted class. Every run is cross-validated with random and
spatially blocked folds and the scores are reported with the maps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from scipy.spatial import cKDTree
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.preprocessing import StandardScaler

from ..atomic import guards_files
from ..checks import check_seed, finite_float, int_in_range
from ..embedding_products import RasterInput
from ..errors import InputError, ModelError
from ..gdal_exceptions import gdal_exceptions
from ..names import (
    CLASSES_KEY,
    CV_KEY,
    ENCODINGS,
    INTERPOLATION_KIND,
    KIND_KEY,
    MAX_DISTANCE_KEY,
    QUALITY_WARNING_KEY,
    SCALES_KEY,
)
from ..progress import Progress, ensure_progress
from ..raster.blocks import BlockWriter, EmbeddingRasterReader, Grid, block_windows
from ..raster.geotiff import require_geotiff_path
from ..raster.grid import pixel_to_world, world_to_pixel
from ..threads import threaded
from ..vector.coordinates_text import crs_units
from ..vector.crs import CRSLike, to_lonlat
from ..vector.points import PointTable, read_points
from ._common import transform_xy
from .clustering import class_colours
from .extrapolation import extrapolation_warning
from .interpolation_defaults import (
    MAX_DEFAULT_CELLS,
    TargetScale,
    class_code_note,
    default_field,
    default_resolution,
)
from .location_features import LocalFrame, ScaleChoice, choose_scales, location_features
from .validation import (
    SCHEME_NAMES,
    SKILL_MARGIN,
    CVScore,
    baseline,
    cross_validate,
    distinct_locations,
    fold_indices,
    site_centres,
    site_labels,
)

TASKS = ("auto", "regression", "classification")
RIDGE_ALPHAS = np.logspace(-4, 3, 30)
MAX_CLASSES = 255


PREDICT_BYTES = 128 * 1024 * 1024  # what predicting one window of the map may hold
PREDICT_BLOCK = 64  # side of the blocks the map's windows are made of


def site_means(xy_m: np.ndarray, y: np.ndarray, extra: Optional[np.ndarray]
               ) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    """``(xy, y, extra, weights)`` with the samples at one site (:func:`site_labels`) merged into their
    mean at the site's centre, weighted by their count; the inputs unchanged, with no weights, when every
    site has one sample."""
    sites = site_labels(xy_m)
    if int(sites.max()) + 1 == len(xy_m):
        return xy_m, y, extra, None
    first = np.unique(sites, return_index=True)[1]
    counts = np.bincount(sites)
    means = np.bincount(sites, weights=y) / counts
    return (site_centres(xy_m, sites), means, (extra[first] if extra is not None else None),
            counts.astype(np.float64))


class EmbeddingInterpolator:
    """Ensemble of linear models on location (and optional tile) embeddings; fit / predict.

    Coordinates are local metres (see :class:`LocalFrame`); ``scales`` fixes the location
    encoding's length scales (``None``: chosen from the training points). ``encoding`` is
    "rff" (multi-scale random Fourier features, the default) or a Space2Vec / Sphere2Vec name
    from :mod:`srl_core.models.location` ("theory", "spherecplus", ...), which needs ``frame``.
    """

    def __init__(
        self,
        classification: bool = False,
        n_members: int = 8,
        n_scales: int = 5,
        features_per_scale: int = 128,
        scales: Optional[ScaleChoice] = None,
        seed: int = 0,
        encoding: str = "rff",
        frame: Optional[LocalFrame] = None,
    ) -> None:
        self.classification = classification
        self.encoding = encoding
        self.frame = frame
        self.n_members = n_members
        self.n_scales = n_scales
        self.features_per_scale = features_per_scale
        self.scales = scales
        self.seed = seed
        self._members: list = []
        self.classes_: Optional[np.ndarray] = None
        self.residual_std_: float = float("nan")

    @staticmethod
    def _features(encode, scaler, xy_m: np.ndarray, extra: Optional[np.ndarray]) -> np.ndarray:
        feats = encode(xy_m)
        if extra is None:
            return feats
        # Standardised tile embeddings, weighted so they count as much as one location scale block.
        tile = scaler.transform(extra) / math.sqrt(extra.shape[1])
        return np.hstack([feats, tile.astype(np.float32)])

    def fit(
        self, xy_m: np.ndarray, y: np.ndarray, extra: Optional[np.ndarray] = None
    ) -> EmbeddingInterpolator:
        """Fit on points ``xy_m`` (N, 2) metres with targets ``y`` (N,) and optional (N, D) ``extra``.

        Repeated samples at one location (replicates) are fitted as their site's mean, weighted by
        their number (:func:`site_means`): as rows of their own, the ridge's leave-one-out choice of
        regularisation always found a copy of the left-out point in the rest, chose almost none, and
        the map overfitted (pure noise mapped with values ten times its spread)."""
        scales = self.scales or choose_scales(xy_m, self.n_scales)
        rng = np.random.default_rng(self.seed)
        weights = None
        if not self.classification:
            xy_m, y, extra, weights = site_means(xy_m, y, extra)
        n = len(y)
        if self.classification:
            self.classes_, y_index = np.unique(y, return_inverse=True)
        oob_sum, oob_count = np.zeros(n), np.zeros(n)
        self._members = []
        for m in range(self.n_members):
            boot = rng.integers(0, n, n) if self.n_members > 1 else np.arange(n)
            if self.classification and len(np.unique(y_index[boot])) < 2:
                boot = np.arange(n)  # a resample with a single class cannot fit a classifier
            encode = location_features(
                self.encoding, scales, self.frame, self.features_per_scale, seed=self.seed * 1000 + m
            )
            scaler = StandardScaler().fit(extra[boot]) if extra is not None else None
            x = self._features(encode, scaler, xy_m, extra)
            if self.classification and len(np.unique(y_index[boot])) < 2:
                # every training point has one class (a cross-validation fold without the others)
                model = DummyClassifier(strategy="most_frequent").fit(x[boot], y_index[boot])
            elif self.classification:
                model = LogisticRegression(C=10.0, max_iter=2000).fit(x[boot], y_index[boot])
            else:
                # each resampled row once, weighted by how often it was drawn: as repeated rows, the
                # ridge's leave-one-out found a copy of the left-out row in the rest (as with replicates),
                # chose almost no regularisation, and a member extrapolated wildly (blocked R² -24)
                rows, drawn = np.unique(boot, return_counts=True)
                model = RidgeCV(alphas=RIDGE_ALPHAS).fit(
                    x[rows], y[rows], sample_weight=drawn * (1.0 if weights is None else weights[rows]))
                out = np.setdiff1d(np.arange(n), boot)
                if len(out):
                    oob_sum[out] += model.predict(x[out])
                    oob_count[out] += 1
            self._members.append((encode, scaler, model))
        if not self.classification:
            seen = oob_count > 0
            if seen.any():
                self.residual_std_ = float(np.sqrt(np.mean((y[seen] - oob_sum[seen] / oob_count[seen]) ** 2)))
            else:
                self.residual_std_ = 0.0
        return self

    def feature_count(self, extra_dims: int = 0) -> int:
        """Values per predicted point (location features and ``extra_dims`` tile values): what a window of
        the map costs in memory, per pixel."""
        if not self._members:
            raise ModelError("The interpolation model has not been fitted yet.")
        return int(self._members[0][0](np.zeros((1, 2))).shape[1]) + int(extra_dims)

    def predict(self, xy_m: np.ndarray, extra: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """(prediction, uncertainty) at ``xy_m``; classes come back as labels from the training values."""
        if not self._members:
            raise ModelError("The interpolation model has not been fitted yet.")
        if self.classification:
            proba = np.zeros((len(xy_m), len(self.classes_)))
            for encode, scaler, model in self._members:
                proba[:, model.classes_] += model.predict_proba(self._features(encode, scaler, xy_m, extra))
            proba /= len(self._members)
            best = proba.argmax(axis=1)
            return self.classes_[best], 1.0 - proba[np.arange(len(best)), best]
        preds = np.stack([model.predict(self._features(e, s, xy_m, extra)) for e, s, model in self._members])
        spread = preds.std(axis=0)
        return preds.mean(axis=0), np.sqrt(spread**2 + self.residual_std_**2)


@dataclass
class InterpolationResult:
    """What an interpolation run produced and how far to trust it."""

    prediction: str
    uncertainty: str
    task: str
    scales: ScaleChoice
    cv: list[CVScore]
    n_points: int
    classes: Optional[list] = None
    notes: list[str] = field(default_factory=list)
    field_name: str = ""  # the field mapped (chosen by default when none was given)
    warnings: list[str] = field(default_factory=list)  # the maps may mean nothing: said first

    def report(self) -> str:
        """The warnings, first, then :meth:`details`."""
        return "\n".join([*self.warnings, self.details()])

    def details(self) -> str:
        """What was done and how it scored, without the warnings."""
        lines = [
            f"Interpolated {self.n_points} points ({self.task}).",
            self.scales.describe(),
            "Cross-validation: " + "; ".join(s.describe() for s in self.cv),
            *self.notes,
            f"Prediction: {self.prediction}",
            f"Uncertainty: {self.uncertainty}",
        ]
        return "\n".join(lines)


def field_values(table: PointTable, name: str, task: str) -> tuple[np.ndarray, bool]:
    """Target values of field ``name`` and whether the task is classification; clear errors otherwise."""
    if task not in TASKS:
        raise InputError(f"Unknown task {task!r}; use one of {', '.join(TASKS)}.")
    if name not in table.attributes:
        raise InputError(f"The point layer has no field '{name}' (fields: {', '.join(table.attributes)}).")
    col = table.attributes[name]
    is_text = isinstance(col, list)
    missing = [i for i, v in enumerate(col) if v is None or (isinstance(v, float) and math.isnan(v))]
    if missing:
        raise InputError(  # by feature id, as QGIS shows them: a row number pointed at the next feature
            f"{len(missing)} points have no value in field '{name}' (first: feature id "
            f"{table.fids[missing[0]]}); remove or fill them first."
        )
    if is_text and task != "classification" and _numbers_stored_as_text(col, name, task, table.fids):
        col, is_text = [float(str(v).strip()) for v in col], False
    classification = task == "classification" or (task == "auto" and is_text)
    if classification:
        values = np.asarray([str(v) for v in col]) if is_text else np.asarray(col)
        if not is_text and values.dtype.kind == "f" and not np.all(values == np.round(values)):
            raise InputError(  # scikit-learn's "continuous is not supported" after the work, "a bug in SRL"
                f"Field '{name}' holds measurements (such as {values[values != np.round(values)][0]:g}), not "
                "classes: choose the regression task, or a field of class names or codes.")
        n_classes = len(np.unique(values))
        if n_classes < 2:
            raise InputError(f"Field '{name}' has a single class; classification needs at least two.")
        if n_classes > MAX_CLASSES:
            numbers = is_text and not _unreadable_numbers(col)
            raise InputError(f"Field '{name}' has {n_classes} classes; at most {MAX_CLASSES} are supported."
                             + (" Its values are numbers stored as text: to map them as amounts, choose the "
                                "regression task." if numbers else ""))
        return values, True
    values = np.asarray(col, dtype=np.float64)
    if not np.isfinite(values).all():
        raise InputError(f"Field '{name}' has infinite values.")
    if np.ptp(values) == 0:  # cross-validation would score its flat map R² 1
        raise InputError(f"Field '{name}' has the single value {values[0]:g} at every point: there is "
                         "nothing to map. Choose a field that varies.")
    return values, False


def _unreadable_numbers(col: list) -> list[tuple[int, object]]:
    """(row, value) of the values of a text field that do not read as a finite number ('nan' reads
    as a float but is no measurement; an empty value is none)."""
    bad = []
    for row, value in enumerate(col):
        try:
            number = float(str(value).strip())
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            bad.append((row, value))
    return bad


def _numbers_stored_as_text(col: list, name: str, task: str, fids: np.ndarray) -> bool:
    """Whether a text field is to be mapped as numbers: under the regression task, when every value
    reads as one. Refused when regression is asked for and some do not, and when most values are
    numbers and a few are not (whatever the task but classification): lab results with markers
    ('NA', '<0.5', a decimal comma) were mapped as 129 classes that looked like a result. A text
    field of numbers only stays classes under auto (codes kept as text are categories)."""
    bad = _unreadable_numbers(col)
    if not bad:  # under auto, decimals are measurements (60 of them were 60 classes of one sample each)
        return task == "regression" or (task == "auto" and any(float(v) != round(float(v)) for v in col))
    if len(bad) >= len(col) / 2:  # words: classes, unless regression was asked for
        if task == "regression":
            raise InputError(f"Field '{name}' is not numeric ('{bad[0][1]}', feature id {fids[bad[0][0]]}); "
                             "choose a numeric field, or the classification task.")
        return False
    shown = ", ".join(f"'{value}' (feature id {fids[row]})" for row, value in bad[:3])
    raise InputError(
        f"Field '{name}' holds text, and {len(bad)} of its {len(col)} values do not read as numbers: "
        f"{shown}{' and more' if len(bad) > 3 else ''}. To map it as numbers, correct those values or "
        "remove their points (detection limits as numbers, decimal points not commas); to map classes, "
        "choose the classification task."
    )


def skill_warning(cv: Sequence[CVScore], y: np.ndarray, classification: bool,
                  max_distance: Optional[float]) -> Optional[str]:
    """A warning when the cross-validated maps are no better than knowing nothing (:func:`baseline`):
    in every scheme (the map is noise), or with spatially blocked folds only (it fills gaps between
    samples but does not extrapolate); None when they are better. A map of pure noise is still
    drawn with a full colour ramp and looks as convincing as a real one."""
    base = baseline(y, classification)
    if not any(base.beaten_by(s) for s in cv):
        scores = " and ".join(f"{s.metrics[base.metric]:.2f} with {SCHEME_NAMES[s.scheme]}" for s in cv)
        return (f"The map is no better than {base.describe}: its cross-validated {base.metric} is {scores}, "
                f"against {base.score:.2f} for predicting that everywhere (better by less than "
                f"{SKILL_MARGIN:.0%} of the room above it is no skill). Its pattern is noise, however its "
                "colours look: the field may vary at a finer scale than the samples are spaced, or not "
                "in space at all.")
    spatial = next((s for s in cv if s.scheme == "spatial"), None)
    if spatial is None or base.beaten_by(spatial):
        return None
    others = "; ".join(f"{s.metrics[base.metric]:.2f} with {SCHEME_NAMES[s.scheme]}"
                       for s in cv if s is not spatial)
    advice = (f"Keep the maximum distance to a sample ({max_distance:g}) short." if max_distance is not None
              else "Set a maximum distance to a sample to leave the pixels far from every sample empty.")
    return (f"The map does not extrapolate beyond the samples: with spatially blocked folds its "
            f"{base.metric} is {spatial.metrics[base.metric]:.2f}, no better than predicting {base.describe} "
            f"({base.score:.2f}), though {others}. It fills gaps between samples but says nothing away from "
            f"them. {advice}")


def output_grid(
    xy: np.ndarray, crs_wkt: str, resolution: float, extent: Optional[Sequence[float]] = None
) -> Grid:
    """North-up grid at ``resolution`` over ``extent`` (xmin, ymin, xmax, ymax; default: the points)."""
    resolution = finite_float(resolution, "The resolution (cell size)", positive=True)
    if extent is None:
        xmin, ymin = xy.min(axis=0) - resolution / 2
        xmax, ymax = xy.max(axis=0) + resolution / 2
    else:
        xmin, ymin, xmax, ymax = (finite_float(v, "Each extent coordinate") for v in extent)
    if xmax <= xmin or ymax <= ymin:
        raise InputError(f"Empty extent ({xmin}, {ymin}, {xmax}, {ymax}).")
    width, height = math.ceil((xmax - xmin) / resolution), math.ceil((ymax - ymin) / resolution)
    if width * height > 400_000_000:
        raise InputError(f"A {width} x {height} grid is too large; use a coarser resolution.")
    return Grid(width, height, (xmin, resolution, 0.0, ymax, 0.0, -resolution), crs_wkt)


class _TileSampler:
    """Tile embeddings under map points of another CRS (NaN rows outside the raster or on nodata)."""

    def __init__(self, raster: RasterInput, points_crs: str) -> None:
        self.reader = EmbeddingRasterReader(raster)
        self.points_crs = points_crs

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        return self.reader.sample_at(transform_xy(xy, self.points_crs, self.reader.info.crs_wkt))


class _Rescaled:
    """A fitted regression interpolator whose predictions come back in the field's units (see
    :class:`TargetScale`), counted as the grid is predicted."""

    classification = False
    classes_ = None

    def __init__(self, model: EmbeddingInterpolator, scale: TargetScale) -> None:
        self.model, self.scale = model, scale
        self.feature_count = model.feature_count

    def predict(self, xy_m: np.ndarray, extra: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        return self.scale.inverse(*self.model.predict(xy_m, extra), count=True)


@guards_files(outputs=["prediction_path", "uncertainty_path"], inputs=["points", "tile_raster"])
@gdal_exceptions()
@threaded
def interpolate_points(
    points: str,
    field_name: Optional[str],
    prediction_path: str,
    uncertainty_path: str,
    resolution: Optional[float] = None,
    *,
    extent: Optional[Sequence[float]] = None,
    task: str = "auto",
    tile_raster: Optional[RasterInput] = None,
    n_folds: int = 5,
    n_members: int = 8,
    n_scales: int = 5,
    encoding: str = "rff",
    seed: int = 0,
    max_distance: Optional[float] = None,
    log_transform: bool = False,
    crs: Optional[CRSLike] = None,
    x_field: Optional[str] = None,
    y_field: Optional[str] = None,
    progress: Optional[Progress] = None,
    threads: Optional[int] = None,
) -> InterpolationResult:
    """Fit on a point layer's field, cross-validate, and write prediction + uncertainty rasters.

    Defaults (:mod:`.interpolation_defaults`), each said in the report: ``field_name`` None or
    empty: the first numeric non-identifier field; ``resolution`` None or 0: half the median
    nearest-neighbour spacing, rounded. ``log_transform``: fit on log(values) (concentrations and
    other positive, skewed values). Predictions below the smallest observed value are counted in
    the report; those below 0 of a field that is never negative are set to 0.

    The grid is in the points' CRS, at ``resolution`` (its units) over ``extent`` (default: the
    points' bounding box). With ``tile_raster`` the tile embeddings under each point join the
    location embeddings, and grid cells without a tile embedding are left nodata.

    ``max_distance`` (in the points' CRS units, like ``resolution``; ``None``: no limit) leaves
    nodata in both rasters wherever a cell's centre is farther than that from every sample
    point. Far from the samples the model extrapolates: the data say nothing there, yet the
    prediction (and even the uncertainty, which only knows the ensemble's spread and the
    out-of-bag error) looks as confident as anywhere else -- e.g. in the empty corners of the
    bounding box of samples along a river. The report says how many cells were left empty.

    When the cross-validated maps score no better than predicting the samples' mean (or commonest
    class) everywhere, or do so with spatially blocked folds only, the result's ``warnings`` say so
    (first in its report, and in both rasters' metadata): :func:`skill_warning`. A field with a single
    value is refused.

    ``crs`` overrides the CRS the points' file declares, and ``x_field``/``y_field`` name the coordinate
    fields of a table without geometry (as in :func:`~srl_core.vector.points.read_points`).
    ``threads``: CPU threads for BLAS and OpenMP (the ridge and logistic fits, the map's features;
    default: see :mod:`srl_core.threads`).
    """
    progress = ensure_progress(progress)
    for path in (prediction_path, uncertainty_path):  # refused now, not after the fits
        require_geotiff_path(str(path))
    if encoding not in ENCODINGS:
        raise InputError(f"Unknown location encoding {encoding!r}; use one of {', '.join(ENCODINGS)}.")
    max_distance = _check_max_distance(max_distance)
    check_seed(seed)
    # one member has no spread: its uncertainty raster was 0 everywhere
    n_members = int_in_range(n_members, "The ensemble size (members)", 2, 1000)
    n_folds = int_in_range(n_folds, "The number of cross-validation folds", 2, 1000)
    table = read_points(points, crs=crs, x_field=x_field, y_field=y_field)
    chosen = []
    if not field_name:
        field_name = default_field(table)
        chosen.append(f"Field: {field_name} (the first numeric field that is not an identifier).")
    y, classification = field_values(table, field_name, task)
    if isinstance(table.attributes[field_name], list) and not classification and task == "auto":
        chosen.append(f"Field '{field_name}' is text holding decimal numbers only: mapped as amounts "
                      "(choose the classification task to map its values as classes).")
    chosen += [] if classification else class_code_note(y, field_name)
    sites = distinct_locations(table.xy)
    if sites < len(y):
        chosen.append(f"{len(y)} points at {sites} distinct locations: the samples at one location are "
                      "fitted as their mean and cross-validated together.")
    map_xy = _map_xy(table.xy, table.crs_wkt, extent)
    if not resolution:
        resolution, coarsened = default_resolution(map_xy, extent)
        chosen.append(f"Resolution: {resolution:g} " + (
            f"(coarser than half the median spacing between the points, so that the default grid has at "
            f"most {MAX_DEFAULT_CELLS:,} cells; give a resolution for a finer map)." if coarsened else
            "(half the median spacing between the points, rounded)."))
    if classification and log_transform:
        raise InputError(f"Field '{field_name}' holds classes; a log transform applies to numbers only.")
    scale = None if classification else TargetScale(y, field_name, log_transform)
    y_fit = y if scale is None else scale.forward(y)
    if len(y) < n_folds:
        raise InputError(
            f"Only {len(y)} points for {n_folds} cross-validation folds; use fewer folds or more points."
        )
    _check_grid_against_points(map_xy, table.crs_wkt, resolution, extent, max_distance)
    grid = output_grid(map_xy, table.crs_wkt, resolution, extent)
    if max_distance is not None:
        _check_reach(map_xy, grid, max_distance, _units(table.crs_wkt))
    frame = LocalFrame(table.lonlat)
    xy_m = frame.to_metres(table.lonlat)
    scales = choose_scales(xy_m, n_scales)
    sampler = _TileSampler(tile_raster, table.crs_wkt) if tile_raster else None
    extra = sampler(table.xy) if sampler else None
    if extra is not None and not np.isfinite(extra).all():
        bad = np.flatnonzero(~np.isfinite(extra).all(axis=1))
        shown = ", ".join(str(int(table.fids[i])) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise InputError(
            f"{len(bad)} points fall outside the tile embedding raster or on its nodata (feature ids "
            f"{shown}); remove them."
        )

    def make() -> EmbeddingInterpolator:
        return EmbeddingInterpolator(
            classification, n_members, n_scales, scales=scales, seed=seed, encoding=encoding, frame=frame
        )

    folds_done = [0]

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        progress.check()
        folds_done[0] += 1
        progress.report(0.1 + 0.4 * (folds_done[0] - 1) / (2 * n_folds), f"CV fold {folds_done[0]}")
        sub = extra[train] if extra is not None else None
        model = make().fit(xy_m[train], y_fit[train], sub)
        pred = model.predict(xy_m[test], extra[test] if extra is not None else None)[0]
        return pred if scale is None else scale.inverse(pred)[0]

    cv, folds = [], {}
    for i, scheme in enumerate(("random", "spatial")):
        progress.report(0.1 + 0.2 * i, f"cross-validation ({scheme})")
        folds[scheme] = fold_indices(xy_m, scheme, n_folds, seed)
        cv.append(cross_validate(fit_predict, xy_m, y, scheme, n_folds, classification, seed,
                                 folds[scheme])[0])
    warnings = [w for w in [skill_warning(cv, y, classification, max_distance),
                            _flat_frame_warning(xy_m, encoding)] if w]
    if max_distance is None:  # with one, the cells far from every sample are left empty
        beyond = extrapolation_warning(map_xy, grid, folds["spatial"], _units(table.crs_wkt))
        warnings += [beyond] if beyond else []
    progress.report(0.5, "fitting")
    model = make().fit(xy_m, y_fit, extra)
    if scale is not None:
        scale.log_residual_std = model.residual_std_
    reach = _Reach(map_xy, max_distance) if max_distance is not None else None  # the grid's longitudes
    without_tile = _write_maps(
        model if scale is None else _Rescaled(model, scale),
        None if classification else map_dtype(y),
        grid,
        frame,
        sampler,
        prediction_path,
        uncertainty_path,
        cv,
        scales,
        progress.sub(0.55, 1.0),
        reach,
        " ".join(warnings) or None,
    )
    return InterpolationResult(
        prediction_path,
        uncertainty_path,
        "classification" if classification else "regression",
        scales,
        cv,
        len(y),
        classes=[c.item() for c in model.classes_] if classification else None,
        notes=chosen + [f"Location encoding: {encoding}."] + (scale.describe() if scale is not None else [])
        + ([f"Tile embeddings from {tile_raster} were used too."] if tile_raster else [])
        + ([sampler.reader.decoding.note] if sampler and sampler.reader.decoding.note else [])
        + ([reach.describe(grid.width * grid.height)] if reach is not None else [])
        + ([_without_tile_note(without_tile, grid.width * grid.height)] if without_tile else []),
        field_name=field_name,
        warnings=warnings,
    )


FLAT_FRAME_KM = 3000.0  # points this far from their centre: one flat map of them stretches the far side


def _flat_frame_warning(xy_m: np.ndarray, encoding: str) -> Optional[str]:
    """Why a flat encoding maps points over a continent or more poorly, and what to use instead; else None.
    rff encodes the points in one flat map centred on them: 2,000 sites round the globe scored a spatially
    blocked R² of -0.22 with it and 0.99 with spherecplus, and the map showed streaks from the point
    opposite their centre, under no other word than 'does not extrapolate' (an audit of the defaults)."""
    reach_km = float(np.hypot(*np.asarray(xy_m, np.float64).T).max()) / 1000.0 if len(xy_m) else 0.0
    if encoding != "rff" or reach_km < FLAT_FRAME_KM:
        return None
    return (f"The points reach {reach_km:,.0f} km from their centre, and the 'rff' encoding works in "
            "one flat map centred on them, which stretches the far side of the Earth: for points over a "
            "continent or more, use a spherical encoding (--encoding spherecplus; in QGIS, the advanced "
            "parameter 'Location encoding').")


def _units(crs_wkt: str) -> str:
    """The points' CRS units as a report says them."""
    return crs_units(crs_wkt) or "the points' CRS units"


def _wraps_longitude(crs_wkt: str) -> bool:
    """Whether the grid's x is a longitude in degrees (its cell centres past 180° are wrapped)."""
    return crs_units(crs_wkt) == "°"


def _map_xy(xy: np.ndarray, crs_wkt: str, extent: Optional[Sequence[float]]) -> np.ndarray:
    """The points as the map lays them out: with longitudes 0..360 when points in degrees straddle the
    antimeridian and no extent is given (their bounding box spanned the globe, and distances across the
    line were measured the long way round); with an extent, each longitude on the turn of the globe
    nearest the extent's centre (an extent 179.5..180.5 compared its eastern cells with samples at
    -179.9, 359 degrees away: a maximum distance left them empty); else as they are."""
    if not _wraps_longitude(crs_wkt):
        return xy
    if extent is not None:
        centre = (float(extent[0]) + float(extent[2])) / 2
        return np.column_stack([xy[:, 0] + 360.0 * np.round((centre - xy[:, 0]) / 360.0), xy[:, 1]])
    east = np.column_stack([np.mod(xy[:, 0], 360.0), xy[:, 1]])
    return east if np.ptp(east[:, 0]) < np.ptp(xy[:, 0]) else xy


def _check_grid_against_points(xy: np.ndarray, crs_wkt: str, resolution: float,
                               extent: Optional[Sequence[float]], max_distance: Optional[float]) -> None:
    """Refuse, before any fitting, a resolution, extent or maximum distance that cannot be in the points'
    CRS units: 50 (metres meant) on points in degrees made a map of four 50° pixels over two continents;
    an extent 100 km off the points (or in degrees for points in metres) mapped only extrapolation, a
    narrow range a colour ramp shows as a pattern; 300 (metres meant) as degrees masked nothing."""
    units = _units(crs_wkt)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = hi - lo
    if resolution > span.max() > 0:
        raise InputError(
            f"The resolution {resolution:g} is larger than the points' whole extent ({span[0]:g} x "
            f"{span[1]:g} {units}): it is in the points' CRS units ({units}); give a smaller one."
        )
    if extent is not None:
        pad = np.maximum(span * 0.5, resolution)
        xmin, ymin, xmax, ymax = (finite_float(v, "Each extent coordinate") for v in extent)
        if xmax < lo[0] - pad[0] or xmin > hi[0] + pad[0] or ymax < lo[1] - pad[1] or ymin > hi[1] + pad[1]:
            raise InputError(
                f"The extent ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies away from the points ({lo[0]:g}, "
                f"{lo[1]:g}, {hi[0]:g}, {hi[1]:g} in {units}): its map would be extrapolation only. Give an "
                "extent over the points, in their CRS."
            )
    if max_distance is not None and units == "°" and max_distance > 180:
        raise InputError(
            f"The maximum distance {max_distance:g} is in degrees for these points (their CRS is "
            "geographic), and no two places are more than 180° apart: give it in degrees, or leave it out."
        )


def _check_reach(xy: np.ndarray, grid: Grid, max_distance: float, units: str) -> None:
    """Refuse, before any fitting, a maximum distance that leaves every cell of the map empty: both rasters
    came out all nodata and the run reported success (the one line saying so lay inside its report).
    A sample's nearest cell centre is that of the cell it lies in (of the nearest edge cell, outside)."""
    cells = np.clip(np.floor(world_to_pixel(grid.geotransform, xy)), 0, [grid.width - 1, grid.height - 1])
    nearest = float(np.min(np.hypot(*(pixel_to_world(grid.geotransform, cells + 0.5) - xy).T)))
    if nearest > max_distance:
        raise InputError(
            f"The maximum distance {max_distance:g} leaves every cell of the map empty: the cell centre "
            f"nearest to a sample lies {nearest:g} {units} from it. Give a larger maximum distance (in the "
            "points' CRS units), or a finer resolution."
        )


def _without_tile_note(count: int, cells: int) -> str:
    return (f"{count} of {cells} pixels ({count / cells:.1%}) have no tile embedding (outside the tile "
            "raster or on its nodata) and were left empty (nodata).")


def _check_max_distance(max_distance: Optional[float]) -> Optional[float]:
    """``max_distance`` as a float, or ``None``; an error unless it is a positive, finite distance."""
    if max_distance is None:
        return None
    try:
        value = float(max_distance)
    except (TypeError, ValueError) as exc:
        raise InputError(f"The maximum distance must be a number, got {max_distance!r}.") from exc
    if not (math.isfinite(value) and value > 0):
        raise InputError(
            f"The maximum distance to the nearest sample must be a positive, finite distance "
            f"(in the points' CRS units), got {max_distance}; leave it out for no limit."
        )
    return value


class _Reach:
    """Which map points lie within ``max_distance`` of a sample (a k-d tree on the samples)."""

    def __init__(self, xy: np.ndarray, max_distance: float) -> None:
        self.tree = cKDTree(np.asarray(xy, dtype=np.float64))
        self.max_distance = max_distance
        self.n_masked = 0

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """True where ``xy`` (N, 2), in the samples' CRS, is at most ``max_distance`` from a sample."""
        # The bound prunes the search; points beyond it come back with an infinite distance.
        dist, _ = self.tree.query(xy, k=1, distance_upper_bound=np.nextafter(self.max_distance, np.inf))
        near = dist <= self.max_distance
        self.n_masked += int(len(near) - np.count_nonzero(near))
        return near

    def describe(self, n_cells: int) -> str:
        share = self.n_masked / n_cells if n_cells else 0.0
        text = (
            f"Maximum distance to a sample {self.max_distance:g}: {self.n_masked} of {n_cells} pixels "
            f"({share:.1%}) are farther from every sample and were left empty (nodata) in both rasters."
        )
        if n_cells and self.n_masked == n_cells:
            text += " That is all of them: raise the maximum distance."
        return text


def map_dtype(values: np.ndarray) -> np.dtype:
    """The maps' data type: Float32 where it holds the values to a ten-thousandth of their spread, else
    Float64. Float32 steps by 64 near 1e9 and overflows past 3.4e38: a field of 1e9 + a few tens, whose
    cross-validation (in float64) scored R² 0.98, was mapped as a single value, and one of 1e39 as inf."""
    top = float(np.max(np.abs(values)))
    if top >= float(np.finfo(np.float32).max) / 10.0:
        return np.dtype(np.float64)
    fine = float(np.spacing(np.float32(top))) <= 1e-4 * float(np.ptp(values))
    return np.dtype(np.float32 if fine else np.float64)


def _write_maps(
    model: EmbeddingInterpolator,
    dtype: Optional[np.dtype],
    grid: Grid,
    frame: LocalFrame,
    sampler: Optional[_TileSampler],
    prediction_path: str,
    uncertainty_path: str,
    cv: list[CVScore],
    scales: ScaleChoice,
    progress: Progress,
    reach: Optional[_Reach] = None,
    warning: Optional[str] = None,
) -> int:
    """Predict window by window over ``grid`` and write both rasters (atomically, together); return how
    many pixels in reach had no tile embedding (left nodata: the report says so, a map 93 % empty did not).
    ``dtype``: a regression's maps' (:func:`map_dtype`); None for classes.

    With ``reach``, pixels whose centre is beyond its distance from every sample stay nodata
    (and are neither sampled nor predicted); it counts them as the windows go. ``warning`` (the
    maps mean nothing, :func:`skill_warning`) is kept in both rasters' metadata, as embed-raster
    keeps its own: whoever loads them is told.
    """
    meta = {
        KIND_KEY: INTERPOLATION_KIND,
        SCALES_KEY: scales.describe(),
        CV_KEY: "; ".join(s.describe() for s in cv),
    }
    if reach is not None:
        meta[MAX_DISTANCE_KEY] = f"{reach.max_distance:g}"
    kept = sampler.reader.warnings(warning) if sampler is not None else [warning] if warning else []
    if kept:  # the tile embeddings' own flag first: maps made from them mean as little
        meta[QUALITY_WARNING_KEY] = " ".join(kept)
    if sampler is not None:
        meta.update(sampler.reader.decoding.metadata())
    if model.classification:
        classes = list(model.classes_)
        pred_kw = dict(
            dtype=np.uint8,
            nodata=0,
            color_table=class_colours(len(classes)),
            metadata={**meta, CLASSES_KEY: json.dumps([str(c) for c in classes])},
            band_names=["class"],
        )
        unc_name = "1 - probability of the predicted class"
    else:
        pred_kw = dict(dtype=dtype, nodata=float("nan"), metadata=meta, band_names=["prediction"])
        unc_name = "predictive standard deviation"
    unc_dtype = dtype or np.dtype(np.float32)  # a probability; else in the values' units
    gt = grid.geotransform
    # windows sized by what predicting a pixel holds (its features as float64, twice over, and the members'
    # predictions), not by the 4-byte output: 1-million-pixel windows held about 10 GB of features
    extra_dims = sampler.reader.info.size if sampler is not None else 0
    per_pixel = 16 * model.feature_count(extra_dims) + 8 * 64
    pixels = max(PREDICT_BLOCK ** 2, PREDICT_BYTES // per_pixel)
    windows = block_windows(grid.width, grid.height, PREDICT_BLOCK, PREDICT_BLOCK, bands=1,
                            max_bytes=pixels * 4)
    wrap = _wraps_longitude(grid.crs_wkt)
    without_tile = 0
    with (
        BlockWriter(prediction_path, grid, **pred_kw) as pred_out,
        BlockWriter(
            uncertainty_path, grid, unc_dtype, nodata=float("nan"), metadata=meta, band_names=[unc_name]
        ) as unc_out,
    ):
        for i, win in enumerate(windows):
            progress.check()
            rows, cols = np.mgrid[win.yoff : win.yoff + win.height, win.xoff : win.xoff + win.width]
            xy = pixel_to_world(gt, np.column_stack([cols.ravel(), rows.ravel()]) + 0.5)
            ok = reach(xy) if reach is not None else np.ones(len(xy), bool)  # in the grid's longitudes
            if wrap:  # a cell centre past 180° (the grid's padding by the antimeridian) is the one past
                # -180°: the conversion refused it, after all the fitting
                xy[:, 0] = (xy[:, 0] + 180.0) % 360.0 - 180.0
                np.clip(xy[:, 1], -90.0, 90.0, out=xy[:, 1])
            extra = None
            if sampler is not None and ok.any():
                # tile embeddings only for pixels in reach; those without one stay nodata too
                idx = np.flatnonzero(ok)
                extra = sampler(xy[idx])
                has_tile = np.isfinite(extra).all(axis=1)
                ok[idx[~has_tile]] = False
                without_tile += int(len(has_tile) - np.count_nonzero(has_tile))
                extra = extra[has_tile]
            pred = np.zeros(len(xy), np.uint8) if model.classification else np.full(len(xy), np.nan, dtype)
            unc = np.full(len(xy), np.nan, unc_dtype)
            if ok.any():
                xy_m = frame.to_metres(to_lonlat(xy[ok], grid.crs_wkt))
                p, u = model.predict(xy_m, extra)
                pred[ok] = np.searchsorted(model.classes_, p) + 1 if model.classification else p
                unc[ok] = u
            pred_out.write(win, pred.reshape(win.height, win.width))
            unc_out.write(win, unc.reshape(win.height, win.width))
            progress.report((i + 1) / len(windows), "predicting the grid")
    return without_tile
