"""Embed point locations with a location encoder (SatCLIP / GeoCLIP style)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorDestination,
)

from srl_core.errors import InputError

from .. import styling
from .base import SrlAlgorithm
from .layers import points_source_file
from .params import (
    add_device_parameter,
    add_model_parameters,
    add_threads_parameter,
    advanced,
    device_from_parameters,
    load_checked_model,
    threads_from_parameters,
)


class EmbedPointsAlgorithm(SrlAlgorithm):
    ALG_ID = "embed_points"
    DISPLAY_NAME = "Embed point locations"
    GROUP = "Embeddings"
    GROUP_ID = "embeddings"
    ICON = "location"
    HELP = (
        "Gives every point a location embedding: a vector that describes the place itself "
        "(climate, land cover, terrain... whatever the encoder learned), computed from its "
        "longitude and latitude alone. Points may be in any CRS; they are converted to WGS84. "
        "The output keeps the input's attributes and adds fields emb_000, emb_001, ... ready "
        "for clustering, similarity search or as features of a model.\n\n"
        "Method: a location encoder is a positional encoding of (lon, lat) followed by a neural "
        "network, as in SatCLIP (Klemmer et al. 2023, 'SatCLIP: Global, general-purpose "
        "location embeddings with satellite imagery', spherical harmonics + SIREN) and GeoCLIP "
        "(Vivanco Cepeda et al. 2023, NeurIPS, random Fourier features), trained contrastively "
        "so that a location's embedding matches what satellite images there look like."
    )

    INPUT = "INPUT"
    BATCH_SIZE = "BATCH_SIZE"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT, "Points (any CRS)", types=[QgsProcessing.TypeVectorPoint]
            )
        )
        add_model_parameters(self, "location")
        add_device_parameter(self)
        add_threads_parameter(self)
        batch = QgsProcessingParameterNumber(
            self.BATCH_SIZE, "Batch size", QgsProcessingParameterNumber.Integer, 4096, minValue=1
        )
        self.addParameter(advanced(batch))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Points with location embeddings", type=QgsProcessing.TypeVectorPoint
            )
        )

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.location import embed_points_file

        points = self.parameterAsSource(parameters, self.INPUT, context)
        if points is None:
            raise InputError("No point layer given, or it could not be opened.")
        path, layer_name = points_source_file(self, parameters, self.INPUT, context, feedback)
        model = load_checked_model(self, parameters, context, "location")
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        styling.style_on_load(
            context, output, f"Location embeddings ({model.id}) of {points.sourceName()}", None
        )
        embed_points_file(
            path,
            output,
            model,
            layer=layer_name or None,
            device=device_from_parameters(self, parameters, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            progress=progress,
            threads=threads_from_parameters(self, parameters, context),
        )
        feedback.pushInfo(
            f"{points.featureCount()} points embedded by '{model.id}' ({model.card.embedding_size}-d)."
        )
        return {self.OUTPUT: output}
