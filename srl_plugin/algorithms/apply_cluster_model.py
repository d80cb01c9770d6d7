"""Apply a saved k-means cluster model to other embeddings of the same model."""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingOutputNumber, QgsProcessingParameterFile

from .base import SrlAlgorithm
from .cluster import (
    CLUSTER_FIELD,
    add_cluster_outputs,
    cluster_output,
    style_cluster_output,
)
from .embedding_input import EMBEDDINGS_HELP, add_embedding_input_parameters, analysis_input
from .layers import add_embeddings_input
from .params import (
    add_backend_parameters,
    add_threads_parameter,
    backend_from_parameters,
    threads_from_parameters,
)


class ApplyClusterModelAlgorithm(SrlAlgorithm):
    ALG_ID = "apply_cluster_model"
    DISPLAY_NAME = "Apply a saved cluster model"
    GROUP = "Analysis"
    GROUP_ID = "analysis"
    ICON = "cluster"
    HELP = (
        "Gives new embeddings (another area, another date, other points) the classes of a "
        "k-means model saved by 'Cluster embeddings': each embedding goes to the class of the "
        "nearest saved centre, so class numbers mean the same thing everywhere. The "
        "embeddings must come from the same embedding model as those the clusters were "
        "fitted on; the tool refuses to mix models."
    ) + EMBEDDINGS_HELP

    INPUT = "INPUT"
    CLUSTER_MODEL = "CLUSTER_MODEL"
    CLUSTERS = "CLUSTERS"

    def initAlgorithm(self, config=None):  # noqa: N802
        add_embeddings_input(self)
        add_embedding_input_parameters(self)
        self.addParameter(
            QgsProcessingParameterFile(
                self.CLUSTER_MODEL, "Cluster model", fileFilter="SRL cluster model (*.safetensors)"
            )
        )
        add_threads_parameter(self)
        add_cluster_outputs(self)
        add_backend_parameters(self)
        self.addOutput(QgsProcessingOutputNumber(self.CLUSTERS, "Number of clusters"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.analysis.api import apply_clusters

        layer, data = analysis_input(self, parameters, context, "Applying a cluster model")
        model_path = self.parameterAsFile(parameters, self.CLUSTER_MODEL, context)
        key, output = cluster_output(self, parameters, context, layer)
        threads = threads_from_parameters(self, parameters, context)
        result = apply_clusters(model_path, data, output, field_name=CLUSTER_FIELD, progress=progress,
                                threads=threads, **backend_from_parameters(self, parameters, context))
        style_cluster_output(self, context, key, output, layer, result.n_clusters)
        feedback.pushInfo(f"Clusters of embedding model '{result.model.model_id}' applied.")
        result.log_to(feedback.pushInfo, feedback.pushWarning)
        return {key: output, self.CLUSTERS: result.n_clusters}
