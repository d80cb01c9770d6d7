"""Embed point locations with a location encoder (SatCLIP / GeoCLIP style)."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterVectorDestination,
)

from srl_core.atomic import output_run
from srl_core.errors import InputError

from .. import styling
from .base import SrlAlgorithm
from .layers import points_source_file
from .params import (
    MODEL,
    add_backend_parameters,
    add_device_parameter,
    add_model_parameters,
    add_threads_parameter,
    advanced,
    backend_from_parameters,
    device_from_parameters,
    load_checked_model,
    threads_from_parameters,
)


def points_model_id(path: str) -> str:
    """The SRL_MODEL_ID an embedding points file was written with."""
    from osgeo import ogr

    from srl_core.embedding_format import MODEL_ID_KEY

    ds = ogr.Open(str(path))
    return (ds.GetLayer(0).GetMetadataItem(MODEL_ID_KEY) if ds else None) or "unknown"


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
        "so that a location's embedding matches what satellite images there look like.\n\n"
        "Scale: a global model resolves what its card says (the bundled one: about 1000 km); "
        "points spread over a few km all get nearly the same vector from it, and the log warns. "
        "For such layers choose the model 'local': multi-scale random Fourier features with "
        "length scales fitted to the layer's own extent (from twice the median spacing of the "
        "points to their extent), the encoding 'Interpolate a field' uses. They describe "
        "position within this layer only, so they cannot be compared with another layer's."
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
        from srl_core.names import AUTO_LOCATION_MODEL as AUTO_MODEL
        from srl_core.names import LOCAL_LOCATION_MODEL as LOCAL_MODEL

        model = self.parameterDefinition(MODEL)
        model.setOptions([AUTO_MODEL, *model.options(), LOCAL_MODEL])
        model.setDefaultValue(AUTO_MODEL)
        add_device_parameter(self)
        add_threads_parameter(self)
        batch = QgsProcessingParameterNumber(
            self.BATCH_SIZE, "Batch size", QgsProcessingParameterNumber.Integer, 4096, minValue=1
        )
        self.addParameter(advanced(batch))
        add_backend_parameters(self)
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Points with location embeddings", type=QgsProcessing.TypeVectorPoint
            )
        )

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.location import embed_points_file
        from srl_core.location_scale import is_auto, is_local

        points = self.parameterAsSource(parameters, self.INPUT, context)
        if points is None:
            raise InputError("No point layer given, or it could not be opened.")
        path, layer_name, crs = points_source_file(self, parameters, self.INPUT, context, feedback)
        chosen = self.parameterAsEnumString(parameters, MODEL, context)
        by_name = (is_auto(chosen) or is_local(chosen)) and not parameters.get("MODEL_FOLDER")
        model = chosen if by_name else load_checked_model(self, parameters, context, "location")
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        # The model id is read back from the output (with "auto" the points choose the model, and
        # "local" features are named after them), so the file must be in place before this run ends.
        with output_run([output], together=False):
            embed_points_file(
                path,
                output,
                model,
                layer=layer_name or None,
                crs=crs,
                device=device_from_parameters(self, parameters, context),
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                progress=progress,
                threads=threads_from_parameters(self, parameters, context),
                on_message=feedback.pushWarning,
                **backend_from_parameters(self, parameters, context),
            )
        model_id = points_model_id(output).split("@")[0]
        name = f"Location embeddings ({model_id}) of {points.sourceName()}"
        styling.style_on_load(self, context, output, name, None)
        feedback.pushInfo(f"{points.featureCount()} points embedded by '{model_id}'.")
        return {self.OUTPUT: output}
