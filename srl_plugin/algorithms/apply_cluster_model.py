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
from .layers import add_embeddings_input, embeddings_layer, is_raster, layer_file
from .params import add_backend_parameters, backend_from_parameters


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
    )

    INPUT = "INPUT"
    CLUSTER_MODEL = "CLUSTER_MODEL"
    CLUSTERS = "CLUSTERS"

    def initAlgorithm(self, config=None):  # noqa: N802
        add_embeddings_input(self)
        self.addParameter(
            QgsProcessingParameterFile(
                self.CLUSTER_MODEL, "Cluster model", fileFilter="SRL cluster model (*.safetensors)"
            )
        )
        add_cluster_outputs(self)
        add_backend_parameters(self)
        self.addOutput(QgsProcessingOutputNumber(self.CLUSTERS, "Number of clusters"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.analysis.clustering import EmbeddingKMeans, apply_kmeans_raster, cluster_points

        layer = embeddings_layer(self, parameters, context, "Applying a cluster model")
        model = EmbeddingKMeans.load(self.parameterAsFile(parameters, self.CLUSTER_MODEL, context))
        path, _ = layer_file(layer)
        key, output = cluster_output(self, parameters, context, layer)
        if is_raster(layer):
            apply_kmeans_raster(model, path, output, progress=progress,
                                **backend_from_parameters(self, parameters, context))
        else:
            cluster_points(path, output, model=model, field=CLUSTER_FIELD)
        style_cluster_output(context, key, output, layer, model.k)
        feedback.pushInfo(f"{model.k} clusters of model '{model.model_id}' applied; written to {output}")
        return {key: output, self.CLUSTERS: model.k}
