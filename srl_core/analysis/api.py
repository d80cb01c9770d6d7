"""One entry point per analysis, for the command line, the plugin and Python alike.

Each of :func:`cluster`, :func:`apply_clusters`, :func:`similarity` and :func:`rgb_view`
takes an input path, decides from the file whether it is an embedding raster or an
embedding point layer, runs the raster (streamed) or the points version, and returns a
result object holding everything a caller shows: outputs, numbers, and the lines to print
or log (:meth:`messages`), among them how a raster SRL did not make was decoded.

Rasters SRL did not make are read when they are a recognised product (AlphaEarth,
TESSERA) or when the caller says their bands are embeddings; see
:mod:`srl_core.embedding_products`.

The raster versions of :func:`cluster`, :func:`apply_clusters` and :func:`similarity` take
``workers`` (a local Dask cluster of that many workers), ``scheduler`` (the address of a
running one) or ``backend`` (any :mod:`srl_core.backends` backend) to write their raster
block by block there, with the same output; points always run here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from osgeo import gdal

from ..atomic import guards_files
from ..backends import Backend
from ..embedding_products import AUTO, EmbeddingRaster, describe_embedding_raster
from ..errors import InputError
from ..gdal_exceptions import gdal_exceptions, quiet
from ..names import QUALITY_WARNING_KEY, file_part
from ..progress import Progress, ensure_progress
from ..raster.geotiff import require_geotiff_path
from ..threads import threaded
from ..vector.points import embedding_origin, require_geopackage_path
from ._common import read_points_with_embeddings
from .clustering import (
    EmbeddingKMeans,
    apply_kmeans_raster,
    cluster_points,
    fit_kmeans_raster,
)
from .similarity import Query, similarity_points, similarity_raster, top_k_points, top_k_raster
from .views import EmbeddingRGB, fit_rgb_view_raster, rgb_view_points, rgb_view_raster

RASTER = "raster"
POINTS = "points"


@dataclass(frozen=True)
class AnalysisInput:
    """An analysis input: its path, whether it is a raster or points, and how to read a raster.

    ``source`` is what raster readers take (it carries the product and the user's choice);
    ``note`` says how a raster SRL did not make is decoded ("" otherwise); ``flagged``: the warning
    stored with the embeddings when they were made (they may mean nothing), "" when none was.
    """

    path: str
    kind: str
    source: Optional[EmbeddingRaster] = None
    note: str = ""
    flagged: str = ""

    @property
    def is_raster(self) -> bool:
        return self.kind == RASTER


@gdal_exceptions()
def _opens_as(path: str, flag: int) -> bool:
    try:
        with quiet():
            return gdal.OpenEx(str(path), flag) is not None
    except RuntimeError:
        return False


@gdal_exceptions()
def open_input(path: str, product: str = AUTO, bands_as_embeddings: bool = False) -> AnalysisInput:
    """Recognise ``path`` as an embedding raster (checked and described) or a point layer.

    ``product`` and ``bands_as_embeddings`` say how to read a raster SRL did not make (see
    :class:`~srl_core.embedding_products.EmbeddingRaster`); they do not apply to points.
    """
    path = str(path)
    if _opens_as(path, gdal.OF_RASTER):
        source = EmbeddingRaster(path, product, bands_as_embeddings)
        _, decoding = describe_embedding_raster(source)
        flagged = gdal.Open(path).GetMetadataItem(QUALITY_WARNING_KEY) or ""
        return AnalysisInput(path, RASTER, source, decoding.note, flagged)
    if _opens_as(file_part(path), gdal.OF_VECTOR):  # a layer of it may be named: FILE|layername=...
        return AnalysisInput(path, POINTS, flagged=embedding_origin(path).warning)
    raise InputError(f"Cannot open {path} as a raster or a vector layer.")


def _as_input(data: AnalysisInput | str) -> AnalysisInput:
    return data if isinstance(data, AnalysisInput) else open_input(data)


def _require_output_format(data: AnalysisInput, output: Optional[str]) -> None:
    """A raster's analysis writes a GeoTIFF, a point layer's a GeoPackage: a name that says otherwise is
    refused before the work (the fit of k-means or of the colour view took minutes, then the name was
    refused)."""
    if output:
        (require_geotiff_path if data.is_raster else require_geopackage_path)(str(output))


def _require_raster_for_dask(data: AnalysisInput, backend: Optional[Backend], workers: Optional[int],
                             scheduler: Optional[str]) -> None:
    """Refuse Dask settings for a point layer, which is analysed in this process: they were ignored
    unsaid, an unreachable scheduler included (a raster with the same address failed)."""
    if not data.is_raster and (backend is not None or workers or scheduler):
        raise InputError("Point layers are analysed in this process: Dask workers and schedulers serve "
                         "embedding rasters only; leave the workers and the scheduler empty.")


def _notes(data: AnalysisInput) -> list[str]:
    return [data.note] if data.note else []


def _flagged(data: AnalysisInput) -> list[str]:
    """The input's own warning, repeated with every result made from it: an analysis of embeddings
    that mean nothing can look fine (a similarity map spread over 0.02-0.05 is not flat)."""
    return [f"The input embeddings were flagged when they were made: {data.flagged}"] if data.flagged else []


class _Warned:
    """What the results share: ``warnings`` (why a result that looks fine means little, with what to do),
    said after the result's own lines, as warnings wherever the caller can tell them apart."""

    warnings: list[str]

    def _lines(self) -> list[str]:
        """The result's own lines (outputs and numbers)."""
        raise NotImplementedError

    def messages(self) -> list[str]:
        """Every line to show, the warnings last and marked."""
        return [*self._lines(), *(f"warning: {w}" for w in self.warnings)]

    def log_to(self, info: Callable[[str], None], warn: Callable[[str], None]) -> None:
        """Each line to ``info``, each warning to ``warn`` (e.g. a Processing log: pushInfo, pushWarning)."""
        for line in self._lines():
            info(line)
        for warning in self.warnings:
            warn(warning)


@dataclass
class ClusterResult(_Warned):
    """Classes written for a raster (Byte, 1..k) or points (a ``cluster`` field)."""

    output: str
    kind: str
    n_clusters: int
    model: Optional[EmbeddingKMeans] = None
    labels: Optional[np.ndarray] = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fitted: bool = True  # False where a saved model was applied: its k was not suggested now

    @property
    def noise(self) -> int:
        """Points HDBSCAN called noise (class 0); 0 for k-means."""
        return int((self.labels == 0).sum()) if self.model is None and self.labels is not None else 0

    def _lines(self) -> list[str]:
        lines = list(self.notes)
        if self.fitted and self.model is not None and self.model.suggestion_ is not None:
            lines.append(self.model.suggestion_.summary())
        if self.model is None:
            lines.append(f"HDBSCAN found {self.n_clusters} clusters; {self.noise} points are noise (0).")
        lines.append(f"{self.n_clusters} clusters written to {self.output}")
        return lines


def _kmeans_result(output: str, data: AnalysisInput, model: EmbeddingKMeans, labels: Optional[np.ndarray],
                   written: list[str], fitted: bool) -> ClusterResult:
    """The result of k-means classes written, with what the input, the model's fit and the classes
    ``written`` warned of; ``fitted``: the model was fitted now (its suggested k is then said)."""
    return ClusterResult(str(output), data.kind, model.k, model, labels, _notes(data),
                         [*_flagged(data), *model.warnings_, *written], fitted)


@gdal_exceptions()
def cluster(
    data: AnalysisInput | str,
    output: str,
    *,
    n_clusters: Optional[int] = None,
    method: str = "kmeans",
    normalize: bool = False,
    sample_size: int = 200_000,
    min_cluster_size: int = 5,
    field_name: str = "cluster",
    seed: int = 0,
    progress: Optional[Progress] = None,
    backend: Optional[Backend] = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    threads: Optional[int] = None,
) -> ClusterResult:
    """k-means classes of embeddings (k suggested when ``n_clusters`` is None); HDBSCAN on points.

    ``threads``: CPU threads for BLAS and OpenMP (default: see :mod:`srl_core.threads`).
    """
    data = _as_input(data)
    _require_output_format(data, output)
    _require_raster_for_dask(data, backend, workers, scheduler)
    progress = ensure_progress(progress)
    written: list[str] = []  # what the classes written warn of
    if data.is_raster:
        if method != "kmeans":
            raise InputError("HDBSCAN is offered for point layers; use k-means for an embedding raster.")
        model = fit_kmeans_raster(
            data.source, n_clusters, sample_size=sample_size, normalize=normalize, seed=seed,
            progress=progress.sub(0.0, 0.4), threads=threads,
        )  # fmt: skip
        apply_kmeans_raster(model, data.source, output, progress=progress.sub(0.4, 1.0), threads=threads,
                            backend=backend, workers=workers, scheduler=scheduler, on_warning=written.append)
        return _kmeans_result(output, data, model, None, written, fitted=True)
    _, labels, model = cluster_points(
        data.path, output, method=method, n_clusters=n_clusters, min_cluster_size=min_cluster_size,
        field=field_name, normalize=normalize, seed=seed, progress=progress, threads=threads,
        on_warning=written.append,
    )  # fmt: skip
    if model is not None:
        return _kmeans_result(output, data, model, labels, written, fitted=True)
    return ClusterResult(str(output), POINTS, int(labels.max()) if len(labels) else 0, None, labels,
                         warnings=[*_flagged(data), *written])


@gdal_exceptions()
def apply_clusters(
    model: EmbeddingKMeans | str,
    data: AnalysisInput | str,
    output: str,
    *,
    field_name: str = "cluster",
    progress: Optional[Progress] = None,
    backend: Optional[Backend] = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    threads: Optional[int] = None,
) -> ClusterResult:
    """The classes of a saved k-means model (or its path) given to other embeddings of the same model.

    ``threads``: as for :func:`cluster`.
    """
    data = _as_input(data)
    _require_output_format(data, output)
    _require_raster_for_dask(data, backend, workers, scheduler)
    model = model if isinstance(model, EmbeddingKMeans) else EmbeddingKMeans.load(model)
    written: list[str] = []  # what the classes written warn of
    if data.is_raster:
        apply_kmeans_raster(model, data.source, output, progress=progress, threads=threads,
                            backend=backend, workers=workers, scheduler=scheduler, on_warning=written.append)
        return _kmeans_result(output, data, model, None, written, fitted=False)
    _, labels, _ = cluster_points(data.path, output, model=model, field=field_name, progress=progress,
                                  threads=threads, on_warning=written.append)
    return _kmeans_result(output, data, model, labels, written, fitted=False)


@dataclass
class SimilarityResult(_Warned):
    """Similarity written for every pixel or point, and optionally the top k as points."""

    output: Optional[str]
    kind: str
    examples: list[str]
    scores: Optional[np.ndarray] = None
    top_k_output: Optional[str] = None
    top_k_scores: Optional[np.ndarray] = None
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def _lines(self) -> list[str]:
        lines = [*self.notes, f"{len(self.examples)} example(s): {'; '.join(sorted(set(self.examples)))}"]
        if self.output:
            lines.append(f"Similarity written to {self.output}")
        if self.top_k_output and self.top_k_scores is not None and len(self.top_k_scores):
            s = self.top_k_scores
            lines.append(
                f"{len(s)} most similar written to {self.top_k_output} (scores {s[0]:.3f} .. {s[-1]:.3f})"
            )
        return lines


@gdal_exceptions()
@guards_files(outputs=["output", "top_k_output"], inputs=["data"])
def similarity(
    data: AnalysisInput | str,
    query: Query,
    output: Optional[str],
    *,
    combine: str = "mean",
    top_k: int = 0,
    top_k_output: Optional[str] = None,
    method: str = "auto",
    field_name: str = "similarity",
    progress: Optional[Progress] = None,
    backend: Optional[Backend] = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    threads: Optional[int] = None,
) -> SimilarityResult:
    """Cosine similarity of every pixel or point to ``query`` (to ``output``, if given), and the
    ``top_k`` most similar as a point layer (to ``top_k_output``); ``method`` is the points' search.
    The two outputs are one run: checked (two different files) before any work, written both or neither.
    ``threads``: CPU threads for BLAS and faiss (default: see :mod:`srl_core.threads`)."""
    data = _as_input(data)
    _require_output_format(data, output)
    _require_raster_for_dask(data, backend, workers, scheduler)
    if top_k and top_k_output:
        require_geopackage_path(top_k_output)  # the most similar pixels too are points
    progress = ensure_progress(progress)
    if top_k_output and not output and (top_k or 0) < 1:  # asked for the most similar, none of them
        raise InputError(f"The number of most similar results must be at least 1, got {top_k}.")
    if not output and not top_k:
        raise InputError("Give an output for the similarity, or a number of most similar results.")
    if top_k and not top_k_output:
        raise InputError("Give an output for the most similar results, or set their number to 0.")
    query.matrix()  # a clear error now if there is no example
    result = SimilarityResult(output, data.kind, list(query.labels), notes=_notes(data),
                              warnings=_flagged(data))
    def warn(warning: str) -> None:  # the map and the top-k check the same sample: said once
        if warning not in result.warnings:
            result.warnings.append(warning)

    split = 0.7 if output and top_k else (1.0 if output else 0.0)
    if output and data.is_raster:
        similarity_raster(data.source, query, output, combine, progress=progress.sub(0.0, split),
                          threads=threads, backend=backend, workers=workers, scheduler=scheduler,
                          on_warning=warn)
    elif output:
        _, result.scores = similarity_points(data.path, query, output, combine, field_name=field_name,
                                             threads=threads, on_warning=warn)
    if top_k and data.is_raster:
        _, _, result.top_k_scores = top_k_raster(
            data.source, query, top_k, top_k_output, combine, progress=progress.sub(split, 1.0),
            threads=threads, on_warning=warn,
        )
    elif top_k:
        _, _, result.top_k_scores = top_k_points(data.path, query, top_k, top_k_output, combine, method,
                                                 threads=threads, on_warning=warn)
    result.top_k_output = top_k_output if top_k else None
    return result


@dataclass
class RgbViewResult(_Warned):
    """The colour view written, and the share of variance its three components explain."""

    output: str
    kind: str
    explained_variance: tuple[float, ...]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def variance_text(self) -> str:
        return ", ".join(f"{v:.3f}" for v in self.explained_variance)

    def _lines(self) -> list[str]:
        return [
            *self.notes,
            f"Share of variance explained by PC1, PC2, PC3: {self.variance_text}",
            f"Colour view written to {self.output}",
        ]


@gdal_exceptions()
@threaded
def rgb_view(
    data: AnalysisInput | str,
    output: str,
    *,
    sample_size: int = 100_000,
    seed: int = 0,
    progress: Optional[Progress] = None,
    threads: Optional[int] = None,
) -> RgbViewResult:
    """PCA colour view: an RGBA raster, or points with a ``colour`` field.

    ``threads``: CPU threads for BLAS (the PCA and its projection; default: see :mod:`srl_core.threads`).
    """
    data = _as_input(data)
    _require_output_format(data, output)
    progress = ensure_progress(progress)
    written: list[str] = []  # what the colours written warn of
    if data.is_raster:
        view = fit_rgb_view_raster(data.source, sample_size, seed, progress.sub(0.0, 0.3))
        rgb_view_raster(data.source, output, progress=progress.sub(0.3, 1.0), view=view)
    else:
        view = EmbeddingRGB(sample_size, seed).fit(read_points_with_embeddings(data.path).usable)
        rgb_view_points(data.path, output, seed, progress, view=view, on_warning=written.append)
    ratio = tuple(float(v) for v in view.explained_variance_ratio)
    return RgbViewResult(str(output), data.kind, ratio, _notes(data),
                         [*_flagged(data), *written, *view.warnings])
