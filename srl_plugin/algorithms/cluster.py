"""Cluster embeddings (raster or points) into classes, optionally saving the fitted model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
)

from srl_core.errors import InputError
from srl_core.names import CLUSTER_METHODS

from .. import styling
from .base import SrlAlgorithm
from .embedding_input import EMBEDDINGS_HELP, add_embedding_input_parameters, analysis_input
from .layers import add_embeddings_input, is_raster
from .params import (
    add_backend_parameters,
    add_threads_parameter,
    advanced,
    backend_from_parameters,
    output_for_input,
    threads_from_parameters,
)

if TYPE_CHECKING:  # srl_core's analyses load scikit-learn: imported when a run needs them
    from srl_core.analysis.api import AnalysisInput
    from srl_core.analysis.clustering import EmbeddingKMeans
    from srl_core.progress import Progress

CLUSTER_FIELD = "cluster"


def add_cluster_outputs(alg) -> None:
    """OUTPUT (class raster, for raster input) and OUTPUT_POINTS (for point input)."""
    alg.addParameter(
        QgsProcessingParameterRasterDestination(
            "OUTPUT", "Clusters (raster input)", optional=True, createByDefault=True
        )
    )
    alg.addParameter(
        QgsProcessingParameterVectorDestination(
            "OUTPUT_POINTS",
            "Clusters (point input)",
            type=QgsProcessing.TypeVectorPoint,
            optional=True,
            createByDefault=True,
        )
    )


def cluster_output(alg, parameters, context, layer) -> tuple[str, str]:
    """(output key, path) of the destination matching the input's kind."""
    return output_for_input(alg, parameters, context, is_raster(layer), "the clusters")


def style_cluster_output(alg, context, key: str, path: str, layer, k: int) -> None:
    """Name the class layer after its input and give it a paletted/categorised legend."""
    name = f"Clusters (k={k}) of {layer.name()}"
    if key == "OUTPUT":
        styling.style_on_load(alg, context, path, name, styling.style_classes)
    else:
        styling.style_on_load(
            alg, context, path, name, lambda lyr: styling.style_point_classes(lyr, CLUSTER_FIELD)
        )


class ClusterAlgorithm(SrlAlgorithm):
    ALG_ID = "cluster"
    DISPLAY_NAME = "Cluster embeddings"
    GROUP = "Analysis"
    GROUP_ID = "analysis"
    ICON = "cluster"
    HELP = (
        "Groups embeddings into classes without labels: pixels of an embedding raster (one per "
        "tile) or features of an embedding point layer.\n\n"
        "k-means (Lloyd 1982; mini-batch k-means, Sculley 2010, on large samples) puts each "
        "embedding in the class of the nearest of k centres, fitted on a random sample. Leave "
        "k at 0 to let the tool suggest one: it tries k = 2..12 on a sample and keeps the "
        "highest silhouette score (Rousseeuw 1987); the scores are written to the log. Save the "
        "fitted model to apply the same classes to other embeddings of the same model later.\n\n"
        "HDBSCAN (Campello et al. 2013) finds dense groups of points and marks outliers as 0; "
        "it is offered for point layers.\n\n"
        "Cosine: cluster directions rather than vectors (embeddings scaled to unit length)."
    ) + EMBEDDINGS_HELP

    INPUT = "INPUT"
    METHOD = "METHOD"
    K = "K"
    NORMALIZE = "NORMALIZE"
    MIN_CLUSTER_SIZE = "MIN_CLUSTER_SIZE"
    SAMPLE_SIZE = "SAMPLE_SIZE"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    OUTPUT_POINTS = "OUTPUT_POINTS"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    CLUSTERS = "CLUSTERS"
    SCORES = "SCORES"

    def initAlgorithm(self, config=None):  # noqa: N802
        add_embeddings_input(self)
        add_embedding_input_parameters(self)
        self.addParameter(
            QgsProcessingParameterEnum(
                self.METHOD, "Method", options=["k-means", "HDBSCAN (points only)"], defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.K,
                "Number of clusters (0 = suggest)",
                QgsProcessingParameterNumber.Integer,
                defaultValue=0,
                minValue=0,
                maxValue=255,
            )
        )
        self.addParameter(QgsProcessingParameterBoolean(self.NORMALIZE, "Cosine (cluster directions)", False))
        advanced_parameters = [
            QgsProcessingParameterNumber(
                self.MIN_CLUSTER_SIZE,
                "HDBSCAN minimum cluster size",
                QgsProcessingParameterNumber.Integer,
                5,
                minValue=2,
            ),
            QgsProcessingParameterNumber(
                self.SAMPLE_SIZE,
                "k-means fit sample (pixels)",
                QgsProcessingParameterNumber.Integer,
                200_000,
                minValue=100,
            ),
            QgsProcessingParameterNumber(self.SEED, "Random seed", QgsProcessingParameterNumber.Integer, 0),
        ]
        for param in advanced_parameters:
            self.addParameter(advanced(param))
        add_threads_parameter(self)
        add_backend_parameters(self)
        add_cluster_outputs(self)
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_MODEL,
                "Save the cluster model",
                fileFilter="SRL cluster model (*.safetensors)",
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.CLUSTERS, "Number of clusters"))
        self.addOutput(QgsProcessingOutputString(self.SCORES, "k suggestion scores"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        layer, data = analysis_input(self, parameters, context, "Clustering")
        method = CLUSTER_METHODS[self.parameterAsEnum(parameters, self.METHOD, context)]
        model_path = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        # a model step whose class output is neither kept nor used gets no path: saving the model is
        # then the whole point of the step
        key, output = output_for_input(self, parameters, context, data.is_raster, "the clusters",
                                       required=not model_path, or_else="a file to save the cluster model to")
        if model_path and method != "kmeans":
            raise InputError("Only k-means models can be saved; HDBSCAN does not apply to new data.")
        if model_path:
            from srl_core.analysis.clustering import require_model_file_name

            require_model_file_name(model_path, "Save the cluster model")
        if output:
            model, n_clusters = self._write_clusters(parameters, context, feedback, progress, data, output)
            style_cluster_output(self, context, key, output, layer, n_clusters)
            results: dict[str, Any] = {key: output}
        else:
            model = self._fit_model(parameters, context, feedback, progress, data)
            n_clusters, results = model.k, {}
        suggestion = model.suggestion_ if model is not None else None
        results[self.SCORES] = suggestion.summary() if suggestion is not None else ""
        if model_path:
            model.save(model_path)
            results[self.OUTPUT_MODEL] = model_path
            feedback.pushInfo(f"Cluster model saved to {model_path}")
        results[self.CLUSTERS] = n_clusters
        progress.report(1.0, "Done")
        return results

    def _write_clusters(
        self, parameters, context, feedback, progress, data: AnalysisInput, output: str
    ) -> tuple[Optional[EmbeddingKMeans], int]:
        """Fit and write the classes; (k-means model or None for HDBSCAN, number of clusters)."""
        from srl_core.analysis import api

        result = api.cluster(
            data, output, n_clusters=self.parameterAsInt(parameters, self.K, context) or None,
            method=CLUSTER_METHODS[self.parameterAsEnum(parameters, self.METHOD, context)],
            normalize=self.parameterAsBool(parameters, self.NORMALIZE, context),
            sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
            min_cluster_size=self.parameterAsInt(parameters, self.MIN_CLUSTER_SIZE, context),
            field_name=CLUSTER_FIELD, seed=self.parameterAsInt(parameters, self.SEED, context),
            progress=progress, threads=threads_from_parameters(self, parameters, context),
            **backend_from_parameters(self, parameters, context),
        )  # fmt: skip
        result.log_to(feedback.pushInfo, feedback.pushWarning)
        return result.model, result.n_clusters

    def _fit_model(self, parameters, context, feedback, progress, data: AnalysisInput) -> EmbeddingKMeans:
        """Fit k-means only, for a run that saves the model and writes no classes."""
        model = fit_kmeans(
            data, self.parameterAsInt(parameters, self.K, context) or None,
            normalize=self.parameterAsBool(parameters, self.NORMALIZE, context),
            sample_size=self.parameterAsInt(parameters, self.SAMPLE_SIZE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            progress=progress, threads=threads_from_parameters(self, parameters, context),
        )  # fmt: skip
        if data.note:
            feedback.pushInfo(data.note)
        if model.suggestion_ is not None:
            feedback.pushInfo(model.suggestion_.summary())
        feedback.pushInfo(f"{model.k} clusters fitted; no class layer was asked for.")
        for warning in model.warnings_:
            feedback.pushWarning(warning)
        return model


def fit_kmeans(
    data: AnalysisInput, n_clusters: Optional[int], *, normalize: bool, sample_size: int, seed: int,
    progress: Progress, threads: Optional[int],
) -> EmbeddingKMeans:
    """The k-means model "Cluster embeddings" would fit, without writing classes: the same fit as
    ``srl_core.analysis.api.cluster`` (a pixel sample of a raster; all points, as for their classes),
    so that saving the model alone gives the model a full run would have saved."""
    from srl_core.analysis.clustering import fit_kmeans_points, fit_kmeans_raster
    from srl_core.threads import limit_threads

    if data.is_raster:
        return fit_kmeans_raster(
            data.source, n_clusters, sample_size=sample_size, normalize=normalize, seed=seed,
            progress=progress, threads=threads,
        )  # fmt: skip
    with limit_threads(threads):
        return fit_kmeans_points(data.path, n_clusters, normalize=normalize, seed=seed)
