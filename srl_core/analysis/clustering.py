"""Unsupervised classes from embeddings: k-means (fit once, apply anywhere) and HDBSCAN for points.

k-means is fitted on a sample (mini-batch beyond a few tens of thousands of rows), so its
cost does not grow with the raster; applying it is one nearest-centre search per pixel,
done block by block. The fitted model is a small safetensors file (centres plus JSON
metadata with the embedding model id), never a pickle, and refuses embeddings of
another model.
"""

from __future__ import annotations

import colorsys
import functools
import json
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file
from sklearn.cluster import HDBSCAN, KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import silhouette_score
from threadpoolctl import threadpool_limits

from ..atomic import atomic_output, guards_files
from ..backends import Backend, using_backend
from ..checks import check_seed
from ..embedding_recipe import Recipe, compare
from ..errors import InputError, ModelError, OutputError
from ..names import CLUSTER_METHODS, CLUSTERS_KEY, CLUSTERS_KIND, KIND_KEY, MODEL_ID_KEY, QUALITY_WARNING_KEY
from ..progress import Progress, ensure_progress
from ..raster.block_tasks import map_blocks
from ..raster.blocks import SAMPLE_READ_BYTES, BlockWriter, EmbeddingBlock, EmbeddingRasterReader
from ..threads import threaded
from ..vector.points import write_points
from ._common import (
    NEGLIGIBLE_VARIANCE,
    EmbeddingPoints,
    as_embeddings,
    l2_normalize,
    read_points_with_embeddings,
    relative_variance,
    subsample,
)

_log = logging.getLogger(__name__)

FORMAT = "srl-kmeans"
MODEL_SUFFIX = ".safetensors"
PREDICT_BYTES = 8 * 1024 * 1024  # scores of one block of rows against all centres, float32
FORMAT_VERSION = 1
MAX_CLASSES = 255  # class rasters are Byte with 0 = nodata
DEFAULT_K_VALUES = tuple(range(2, 13))
SUGGEST_SAMPLE = 3000
# A best silhouette at or below this: no k separates the embeddings into groups (the bundled tile model on
# the bundled scene scores 0.4-0.6; location embeddings of scattered points 0.14-0.3).
LOW_SILHOUETTE = 0.1
# One class holding at least this share of what was classified: the other classes are a few outliers more
# often than groups (0.5 % of undeclared fill pixels took a class of their own, at a silhouette of 1.0).
DOMINANT_SHARE = 0.95


@dataclass(frozen=True)
class KSuggestion:
    """Scores of candidate k on a sample: silhouette (higher is better) and inertia (elbow)."""

    k_values: list[int]
    silhouette: list[float]
    inertia: list[float]
    best_k: int

    def summary(self) -> str:
        rows = [
            f"  k={k:3d}  silhouette={s:.3f}  inertia={i:.4g}"
            for k, s, i in zip(self.k_values, self.silhouette, self.inertia)
        ]
        return "\n".join([f"Suggested k = {self.best_k} (highest silhouette on a sample):", *rows])

    def warning(self) -> Optional[str]:
        """Why the suggested k means little, when even the best silhouette is about 0, else None."""
        best = max(self.silhouette)
        if best > LOW_SILHOUETTE:
            return None
        return (
            f"The embeddings show no clear groups: the best silhouette over k = {self.k_values[0]}.."
            f"{self.k_values[-1]} is {best:.3f} (near 0: the clusters overlap). The {self.best_k} classes "
            "cut a continuum at arbitrary places; read them as such, or try cosine clustering or other "
            "embeddings."
        )


def _check_k(k: int, n_rows: int) -> None:
    if not 2 <= k <= MAX_CLASSES:
        raise InputError(f"The number of clusters must be between 2 and {MAX_CLASSES}, got {k}.")
    if k > n_rows:
        raise InputError(f"Cannot make {k} clusters from only {n_rows} embeddings; choose a smaller k.")


def _fit_quietly(estimator: KMeans | MiniBatchKMeans, x: np.ndarray) -> KMeans | MiniBatchKMeans:
    """``estimator.fit(x)`` without scikit-learn's ConvergenceWarning (fewer distinct points than
    clusters): it names a site-packages file and no remedy; :func:`_empty_clusters_warning` says what
    it means for the classes instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(x)


LARGEST_VALUE = 1e18  # squares of larger values overflow the float32 distances of k-means (3.4e38)


def _refuse_huge(x: np.ndarray) -> None:
    """Refuse embeddings whose squared distances overflow float32: the fit then put every pixel in one
    class and advised a smaller k (values of 1e29, well within float32)."""
    largest = float(np.abs(x).max()) if x.size else 0.0
    if largest > LARGEST_VALUE:
        raise InputError(
            f"The embeddings hold values as large as {largest:.3g}, whose squares overflow the float32 "
            f"distances k-means uses: rescale them below {LARGEST_VALUE:.0e} first (e.g. gdal_translate "
            "-scale), or declare a fill value as no data."
        )


def _refuse_constant(x: np.ndarray) -> None:
    """Refuse embeddings that are all one vector: every class would hold all of them, or none."""
    if len(x) and not np.ptp(x, axis=0).any():
        raise InputError(
            f"All {len(x)} embeddings to fit the clusters on are the same vector: there is nothing to "
            "cluster. Check the embeddings: the raster may be uniform, or its embeddings degenerate "
            "(re-embed it, e.g. standardised by its own band statistics)."
        )


def _empty_clusters_warning(x: np.ndarray, empty: Sequence[int], k: int) -> Optional[str]:
    """Why some of the ``k`` classes got no member of the fit sample ``x`` (``empty``), else None: the
    output then has classes that are never used, though it says k."""
    if not empty:
        return None
    used = k - len(empty)
    distinct = len(np.unique(x, axis=0))
    reason = (f"the {len(x):,} embeddings fitted on (all, or a sample) hold only {distinct} distinct values"
              if distinct < k else "k is too large")
    return (
        f"Only {used} of the {k} clusters have members: {reason}. The other classes are empty; "
        f"choose k = {used} or fewer."
    )


def _no_variance_warning(x: np.ndarray) -> Optional[str]:
    """Why classes of embeddings that barely vary mean nothing, else None: k-means still splits them
    and the silhouette can look fine, but the split is of rounding noise (one vector plus 1e-4 of its
    length gave 'Suggested k = 4' without a word, where the colour view and similarity warned)."""
    relative = relative_variance(x)
    if relative >= NEGLIGIBLE_VARIANCE:
        return None
    return (
        f"The embeddings barely vary (total variance {relative:.1e} of their mean squared length): the "
        "classes split rounding noise, not the ground. Check the embeddings: the raster may be uniform, or "
        "its embeddings degenerate (re-embed it, e.g. standardised by its own band statistics)."
    )


def class_share_warnings(counts: np.ndarray, what: str, empty_known: Sequence[int] = ()) -> list[str]:
    """Why the classes written mean less than their number says: classes 1..k (``counts``, of ``what``:
    pixels or points) that got no member (besides ``empty_known``, which the fit said were empty), or one
    class holding nearly all of them."""
    total, k = int(counts.sum()), len(counts)
    if total == 0:
        return []
    found = []
    known = set(empty_known)
    empty = [str(i + 1) for i in np.flatnonzero(counts == 0) if i + 1 not in known]
    if empty:
        found.append(
            f"Class{'es' if len(empty) > 1 else ''} {', '.join(empty)} of the {k} got no {what}: only "
            f"{k - len(empty)} {'class is' if k - len(empty) == 1 else 'classes are'} used. The clusters "
            "may have been fitted on other embeddings, or k is too large."
        )
    top = int(np.argmax(counts))
    share = counts[top] / total
    if DOMINANT_SHARE <= share < 1:
        found.append(
            f"Class {top + 1} holds {share:.1%} of the {total} {what}; the other classes share the rest. "
            f"Such small classes are often outliers rather than groups (a fill value the file does not "
            f"declare as no data, clouds, or {what} unlike those the clusters were fitted on): look at them, "
            "or set k."
        )
    return found


def suggest_k(
    x: np.ndarray,
    k_values: Sequence[int] = DEFAULT_K_VALUES,
    sample_size: int = SUGGEST_SAMPLE,
    seed: int = 0,
) -> KSuggestion:
    """Fit k-means for each candidate k on a sample; the best silhouette wins."""
    x = subsample(as_embeddings(x), sample_size, seed)
    k_values = sorted({int(k) for k in k_values if 2 <= int(k) < len(x)})
    if not k_values:
        raise InputError(f"Too few embeddings ({len(x)}) to suggest a number of clusters.")
    sil, inertia = [], []
    for k in k_values:
        # Small problems: one thread avoids OpenMP oversubscription on busy machines (10x slower).
        with threadpool_limits(1):
            km = _fit_quietly(KMeans(n_clusters=k, n_init=2, max_iter=100, random_state=seed), x)
        inertia.append(float(km.inertia_))
        labels = km.labels_
        sil.append(float(silhouette_score(x, labels)) if len(set(labels)) > 1 else -1.0)
    return KSuggestion(k_values, sil, inertia, k_values[int(np.argmax(sil))])


def class_colours(k: int) -> dict[int, tuple[int, int, int, int]]:
    """A colour table for classes 1..k (evenly spaced hues, alternating lightness); 0 is transparent."""
    table = {0: (0, 0, 0, 0)}
    for i in range(k):
        hue = (i * 0.618033988749895) % 1.0
        light = 0.45 if i % 2 == 0 else 0.62
        r, g, b = colorsys.hls_to_rgb(hue, light, 0.75)
        table[i + 1] = (int(r * 255), int(g * 255), int(b * 255), 255)
    return table


def require_model_file_name(path: str, what: str) -> None:
    """Refuse a cluster model path that does not end in ``.safetensors``, before any work: the model was
    saved under any name ('km', 'km.pkl'), which *Apply a saved cluster model* then refused without saying
    why. ``what`` names the setting (a CLI option, a dialog's field)."""
    if not str(path).endswith(MODEL_SUFFIX):
        raise InputError(f"{what} must end in {MODEL_SUFFIX} (a cluster model is a safetensors file), "
                         f"not '{Path(path).name}'.")


class EmbeddingKMeans:
    """k-means on embeddings in scikit-learn's estimator style: ``fit`` then ``predict``.

    ``n_clusters=None`` picks k from ``k_values`` by silhouette on a sample (kept in
    ``suggestion_``). ``normalize=True`` clusters directions (cosine) instead of vectors.
    """

    def __init__(
        self,
        n_clusters: Optional[int] = None,
        *,
        k_values: Sequence[int] = DEFAULT_K_VALUES,
        sample_size: int = 200_000,
        normalize: bool = False,
        seed: int = 0,
        batch_size: int = 4096,
        full_batch_below: int = 20_000,
    ) -> None:
        self.n_clusters = n_clusters
        self.k_values = tuple(k_values)
        self.sample_size = sample_size
        self.normalize = normalize
        self.seed = check_seed(seed)
        self.batch_size = batch_size
        self.full_batch_below = full_batch_below
        self.cluster_centers_: Optional[np.ndarray] = None
        self.model_id: str = "unknown"
        self.recipe_: Optional[Recipe] = None  # how the embeddings fitted were made (None: not known)
        self.suggestion_: Optional[KSuggestion] = None
        self.inertia_: float = float("nan")
        self.n_fit_samples_: int = 0
        self.warnings_: list[str] = []  # why the fitted classes mean less than they seem (saved with it)
        self.empty_in_fit_: list[int] = []  # classes (1..k) the fit left without members: warnings_ says so

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return l2_normalize(x) if self.normalize else x

    def fit(self, x: np.ndarray, model_id: str = "unknown",
            recipe: Optional[Recipe] = None) -> EmbeddingKMeans:
        """Fit on (a sample of) ``x`` (N, D); ``model_id`` is the embedding model it belongs to, ``recipe``
        how the embeddings were made (compared where the model is applied)."""
        x = self._prepare(subsample(as_embeddings(x), self.sample_size, self.seed))
        _refuse_huge(x)
        _refuse_constant(x)
        if self.n_clusters is None:
            self.suggestion_ = suggest_k(x, self.k_values, seed=self.seed)
            k = self.suggestion_.best_k
        else:
            k = int(self.n_clusters)
        _check_k(k, len(x))
        if len(x) < self.full_batch_below:
            km = KMeans(n_clusters=k, n_init=4, random_state=self.seed)
        else:
            km = MiniBatchKMeans(
                n_clusters=k,
                batch_size=self.batch_size,
                n_init=3,
                random_state=self.seed,
                max_no_improvement=20,
            )
        _fit_quietly(km, x)
        self.cluster_centers_ = km.cluster_centers_.astype(np.float32)
        self.inertia_ = float(km.inertia_)
        self.n_fit_samples_ = len(x)
        self.model_id = model_id
        self.recipe_ = recipe
        self.empty_in_fit_ = [int(c) + 1 for c in np.setdiff1d(np.arange(k), km.labels_)]
        empty = _empty_clusters_warning(x, self.empty_in_fit_, k)
        groups = (self.suggestion_.warning() if self.suggestion_  # the suggestion's silhouettes say it
                  else _overlap_warning(x, km.labels_, f"The {k} classes", self.seed))
        found = [_no_variance_warning(x), groups, empty]
        self.warnings_ = [w for w in found if w]
        return self

    @property
    def k(self) -> int:
        return len(self._centres())

    def _centres(self) -> np.ndarray:
        if self.cluster_centers_ is None:
            raise ModelError("This clustering model has not been fitted yet.")
        return self.cluster_centers_

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Index (0..k-1, int32) of the nearest centre for each row of ``x``, in blocks of rows
        whose scores fit :data:`PREDICT_BYTES` (memory does not grow with ``x``)."""
        centres = self._centres()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != centres.shape[1]:
            raise InputError(
                f"These embeddings have {x.shape[-1]} dimensions; "
                f"the clusters were fitted on {centres.shape[1]}."
            )
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every centre. Measured from the centres'
        # mean, not the origin: embeddings far from the origin for their spread made the float32 terms
        # cancel, and the classes written differed from the fit's (8 clusters written, 6 used).
        offset = centres.mean(axis=0)
        centred = centres - offset
        half_norms = 0.5 * (centred * centred).sum(axis=1)[None, :]
        labels = np.empty(len(x), dtype=np.int32)
        rows = max(1, PREDICT_BYTES // (4 * len(centres)))
        for start in range(0, len(x), rows):
            scores = (self._prepare(x[start : start + rows]) - offset) @ centred.T
            np.subtract(half_norms, scores, out=scores)
            labels[start : start + rows] = np.argmin(scores, axis=1)
        return labels

    def fit_predict(self, x: np.ndarray, model_id: str = "unknown") -> np.ndarray:
        return self.fit(x, model_id).predict(x)

    def save(self, path: str) -> Path:
        """Write centres and metadata as one safetensors file (atomic)."""
        require_model_file_name(path, "The cluster model file")
        centres = self._centres()
        meta = {
            "format": FORMAT,
            "format_version": str(FORMAT_VERSION),
            "model_id": self.model_id,
            "normalize": json.dumps(self.normalize),
            "seed": str(self.seed),
            "inertia": repr(self.inertia_),
            "n_fit_samples": str(self.n_fit_samples_),
            "suggestion": json.dumps(asdict(self.suggestion_)) if self.suggestion_ else "",
            "warnings": json.dumps(self.warnings_),
            "empty_in_fit": json.dumps(self.empty_in_fit_),
            "recipe": self.recipe_.to_json() if self.recipe_ is not None else "",
        }
        with atomic_output(path) as tmp:
            try:
                save_file({"centers": np.ascontiguousarray(centres)}, str(tmp), metadata=meta)
            except (SafetensorError, OSError) as exc:  # a full disk was "a bug in SRL"
                raise OutputError(f"Could not write the cluster model {path}: {exc}. Check the free space "
                                  "and permissions of its folder.") from exc
        return Path(path)

    @classmethod
    def load(cls, path: str) -> EmbeddingKMeans:
        """Read a model written by :meth:`save`; anything else, or a damaged one, is refused as such (a NaN
        centre put every pixel in one class, 300 centres wrapped past the byte's 255 classes, a missing key
        was "a bug in SRL")."""
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
            centres = load_file(str(path)).get("centers")
        except (OSError, SafetensorError) as exc:
            raise ModelError(f"{path} is not a clustering model saved by SRL: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise ModelError(f"{path} is not a clustering model saved by SRL (format {meta.get('format')!r})")
        if centres is None:
            raise ModelError(f"{path} is a damaged SRL clustering model (it holds no centres).")
        try:
            return cls._from_saved(centres, meta)
        except (KeyError, ValueError, TypeError) as exc:  # JSON's errors are ValueErrors
            raise ModelError(f"{path} is a damaged SRL clustering model ({type(exc).__name__}: {exc}); "
                             "save it again from the clusters it was fitted for.") from exc

    @classmethod
    def _from_saved(cls, centres: np.ndarray, meta: dict[str, str]) -> EmbeddingKMeans:
        version = int(meta.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(f"format version {version}, newer than this SRL's {FORMAT_VERSION}")
        if centres.ndim != 2 or not 2 <= len(centres) <= MAX_CLASSES or not centres.shape[1]:
            raise ValueError(f"centres of shape {centres.shape}, not 2 to {MAX_CLASSES} vectors")
        if not np.isfinite(centres).all():
            raise ValueError("centres that are not finite numbers")
        normalize = json.loads(meta["normalize"])
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize {meta['normalize']!r}, not true or false")
        model = cls(n_clusters=len(centres), normalize=normalize, seed=int(meta["seed"]))
        model.cluster_centers_ = centres.astype(np.float32)
        model.model_id = str(meta["model_id"])
        model.recipe_ = Recipe.from_json(meta["recipe"]) if meta.get("recipe") else None  # saved since 28 Nov
        model.inertia_ = float(meta["inertia"])
        model.n_fit_samples_ = int(meta["n_fit_samples"])
        if meta.get("suggestion"):
            model.suggestion_ = KSuggestion(**json.loads(meta["suggestion"]))
        # what the fit warned of holds wherever the model is applied (models saved before had none)
        model.warnings_ = [str(w) for w in json.loads(meta.get("warnings") or "[]")]
        model.empty_in_fit_ = [int(c) for c in json.loads(meta.get("empty_in_fit") or "[]")]
        return model


@threaded
def fit_kmeans_raster(
    raster: str,
    n_clusters: Optional[int] = None,
    *,
    sample_size: int = 200_000,
    normalize: bool = False,
    seed: int = 0,
    progress: Optional[Progress] = None,
    threads: Optional[int] = None,
) -> EmbeddingKMeans:
    """Fit k-means on a random sample of an embedding raster's valid pixels.

    ``threads``: CPU threads for BLAS and OpenMP (default: see :mod:`srl_core.threads`).
    """
    progress = ensure_progress(progress)
    with EmbeddingRasterReader(raster) as reader:
        sample = reader.sample(sample_size, seed, progress.sub(0.0, 0.7), min_read_bytes=SAMPLE_READ_BYTES)
        model = EmbeddingKMeans(n_clusters, sample_size=sample_size, normalize=normalize, seed=seed)
        progress.report(0.7, "fitting k-means")
        model.fit(sample, reader.model_id, reader.recipe)
    progress.report(1.0, f"{model.k} clusters")
    return model


class _CountingWriter:
    """A class raster's writer that counts each class's pixels as the blocks pass (map_blocks writes
    through it, here or from a backend's parts)."""

    def __init__(self, writer: BlockWriter, k: int) -> None:
        self.writer, self.path = writer, writer.path
        self.counts = np.zeros(k + 1, np.int64)

    def write(self, window, array: np.ndarray) -> None:  # noqa: ANN001
        classes = np.asarray(array, np.uint8).ravel()
        self.counts += np.bincount(classes, minlength=len(self.counts))[: len(self.counts)]
        self.writer.write(window, array)


def _classes(model: EmbeddingKMeans, block: EmbeddingBlock) -> np.ndarray:
    """Classes 1..k of one block's valid pixels, 0 elsewhere."""
    classes = np.zeros(block.valid.shape, dtype=np.uint8)
    if block.valid.any():
        classes[block.valid] = model.predict(block.valid_vectors()) + 1
    return classes


@guards_files(outputs=["output"], inputs=["raster"])
@threaded
def apply_kmeans_raster(
    model: EmbeddingKMeans,
    raster: str,
    output: str,
    progress: Optional[Progress] = None,
    *,
    threads: Optional[int] = None,
    backend: Optional[Backend] = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    on_warning: Optional[Callable[[str], None]] = None,
) -> str:
    """Class raster (Byte, 1..k, 0 = nodata, with a colour table) on the grid of ``raster``.

    ``threads``: as for :func:`fit_kmeans_raster`.
    ``workers``, ``scheduler`` or ``backend``: block by block on Dask (see :mod:`srl_core.backends`);
    local worker processes use ``threads`` each when it is given, else one.
    Classes that got no pixel, or one class with nearly all (:func:`class_share_warnings`), are said to
    ``on_warning`` and kept in the output's metadata with the fit's own warnings.
    """
    progress = ensure_progress(progress)
    with using_backend(backend, workers, scheduler, threads) as runner, \
            EmbeddingRasterReader(raster) as reader:
        unlike = compare(model.model_id, model.recipe_, reader.recipe, "the classes")
        meta = {KIND_KEY: CLUSTERS_KIND, MODEL_ID_KEY: reader.model_id, CLUSTERS_KEY: model.k,
                **reader.decoding.metadata()}  # fmt: skip
        with BlockWriter(output, reader.info, np.uint8, nodata=0, color_table=class_colours(model.k),
                         metadata=meta, band_names=["cluster"]) as writer:  # fmt: skip
            counting = _CountingWriter(writer, model.k)
            map_blocks(reader, functools.partial(_classes, model), counting, progress, runner)
            shares = [*unlike, *class_share_warnings(counting.counts[1:], "pixels", model.empty_in_fit_)]
            kept = reader.warnings(*model.warnings_, *shares)
            if kept:
                writer.set_metadata_item(QUALITY_WARNING_KEY, " ".join(kept))
    for warning in shares:
        (on_warning or _log.warning)(warning)
    return str(output)


def fit_kmeans_points(points: str, n_clusters: Optional[int] = None, *, normalize: bool = False,
                      seed: int = 0) -> EmbeddingKMeans:
    """The k-means :func:`cluster_points` fits, without writing classes: on every point that has an
    embedding (k suggested when ``n_clusters`` is None)."""
    return _fit_points(read_points_with_embeddings(points), n_clusters, normalize, seed)


def _fit_points(read: EmbeddingPoints, n_clusters: Optional[int], normalize: bool,
                seed: int) -> EmbeddingKMeans:
    """k-means fitted on the points that have an embedding, with how those were made."""
    model = EmbeddingKMeans(n_clusters, normalize=normalize, seed=seed)
    return model.fit(read.usable, read.model_id, read.recipe)


@guards_files(outputs=["output"], inputs=["points"])
@threaded
def cluster_points(
    points: str,
    output: str,
    *,
    method: str = "kmeans",
    n_clusters: Optional[int] = None,
    model: Optional[EmbeddingKMeans] = None,
    min_cluster_size: int = 5,
    field: str = "cluster",
    normalize: bool = False,
    seed: int = 0,
    progress: Optional[Progress] = None,
    threads: Optional[int] = None,
    on_warning: Optional[Callable[[str], None]] = None,
) -> tuple[str, np.ndarray, Optional[EmbeddingKMeans]]:
    """Add a class field to an embedding point layer; return (output, labels, fitted k-means).

    ``method="kmeans"`` fits (or applies ``model``) and numbers classes 1..k;
    ``method="hdbscan"`` finds density clusters 1..n and marks noise 0.
    ``threads``: as for :func:`fit_kmeans_raster`. Points without an embedding (see
    :class:`~srl_core.analysis._common.EmbeddingPoints`) get no class: NULL, masked in ``labels``.
    What the classes written warn of (:func:`class_share_warnings`, :func:`hdbscan_warning`) is kept in the
    layer's metadata with the fit's warnings, and given to ``on_warning`` when there is one.
    """
    if method not in CLUSTER_METHODS:
        raise InputError(f"Unknown clustering method {method!r}; use one of {', '.join(CLUSTER_METHODS)}.")
    read = read_points_with_embeddings(points)
    emb, left_out = read.usable, [w for w in [read.warning("their class is empty (NULL)")] if w]
    if method == "kmeans":
        if model is None:
            model = _fit_points(read, n_clusters, normalize, seed)
        else:
            left_out += compare(model.model_id, model.recipe_, read.recipe, "the classes")
        classes = model.predict(emb) + 1
        counts = np.bincount(classes, minlength=model.k + 1)[1:]
        found = [*left_out, *class_share_warnings(counts, "points", model.empty_in_fit_)]
        own = [*model.warnings_, *found]
    else:
        classes = hdbscan_labels(emb, min_cluster_size, normalize=normalize)
        clustered = classes > 0
        overlap = _overlap_warning(l2_normalize(emb[clustered]) if normalize else emb[clustered],
                                   classes[clustered], f"The {classes.max()} density clusters", seed)
        found = [*left_out, *[w for w in [hdbscan_warning(classes, min_cluster_size), overlap] if w]]
        own = found
    labels = read.spread(classes.astype(np.int32))
    attributes = dict(read.table.attributes)
    attributes[field] = labels
    write_points(
        output, read.table.xyz, read.table.crs_wkt, attributes, embeddings=read.embeddings,
        model_id=read.model_id, progress=progress, fids=read.table.fids, kind=read.origin.kind,
        metadata=read.origin.recipe,
        warnings=read.origin.warnings(*own),
    )
    for warning in found if on_warning is not None else ():
        on_warning(warning)
    return str(output), labels, model


def _overlap_warning(x: np.ndarray, labels: np.ndarray, what: str, seed: int) -> Optional[str]:
    """Said when classes asked for (a given k, HDBSCAN's clusters) overlap: their silhouette on a sample of
    :data:`SUGGEST_SAMPLE` is at most :data:`LOW_SILHOUETTE`. Only a suggested k was checked, so k = 5 on
    pure noise, or HDBSCAN's 227 "clusters" of uniformly spread points, came out as confident classes."""
    if len(np.unique(labels)) < 2:
        return None
    rows = np.random.default_rng(seed).permutation(len(x))[:SUGGEST_SAMPLE]
    if not 2 <= len(np.unique(labels[rows])) < len(rows):  # the silhouette needs 2 to n - 1 classes (k = n)
        return None
    score = float(silhouette_score(x[rows], labels[rows]))
    if score > LOW_SILHOUETTE:
        return None
    return (f"{what} show no clear groups: their silhouette is {score:.3f} (near 0: they overlap), so they "
            "cut a continuum at arbitrary places; read them as such, or try fewer classes, cosine clustering "
            "or other embeddings.")


def hdbscan_warning(labels: np.ndarray, min_cluster_size: int) -> Optional[str]:
    """What to change when HDBSCAN found no cluster (every label 0, noise), else None: a layer of
    class 0 only looks like a result."""
    if len(labels) == 0 or labels.max() > 0:
        return None
    return (
        f"HDBSCAN found no cluster: all {len(labels)} points are noise (0). Lower the minimum cluster size "
        f"(now {min_cluster_size}), or use k-means."
    )


def hdbscan_labels(x: np.ndarray, min_cluster_size: int = 5, normalize: bool = False) -> np.ndarray:
    """HDBSCAN density clusters numbered 1..n (int32), 0 for points it calls noise."""
    x = as_embeddings(x)
    if int(min_cluster_size) < 2:  # scikit-learn's own refusal read as "a bug in SRL"
        raise InputError(f"The minimum cluster size of HDBSCAN must be at least 2, got {min_cluster_size}.")
    if len(x) < max(2, min_cluster_size):
        raise InputError(f"HDBSCAN needs at least {max(2, min_cluster_size)} points, got {len(x)}.")
    if normalize:
        x = l2_normalize(x)
    labels = HDBSCAN(min_cluster_size=min_cluster_size).fit_predict(x)
    return (labels + 1).astype(np.int32)
