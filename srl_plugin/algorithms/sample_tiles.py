"""Embed the tile centred at each point of a layer: tile embeddings as point attributes."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
)

from srl_core.errors import InputError

from .. import styling
from .base import SrlAlgorithm
from .embed_raster import add_band_and_tile_parameters, bands_tile_normalisation
from .layers import dataset_spec, points_source_file
from .params import (
    add_device_parameter,
    add_precision_parameter,
    add_threads_parameter,
    add_tile_model_parameters,
    device_from_parameters,
    precision_from_parameters,
    threads_from_parameters,
    tile_model_from_parameters,
)


class SampleTilesAtPointsAlgorithm(SrlAlgorithm):
    ALG_ID = "sample_tiles_at_points"
    DISPLAY_NAME = "Sample tile embeddings at points"
    GROUP = "Embeddings"
    GROUP_ID = "embeddings"
    ICON = "embed"
    HELP = (
        "For each point, embeds the raster tile centred on it with a tile encoder (Tile2Vec, "
        "Jean et al. 2019) and writes the points with the embedding as fields emb_000, "
        "emb_001, ... and a field emb_valid (0 where the tile runs off the raster or is "
        "mostly nodata; its embedding fields are then empty). Points may be in any CRS.\n\n"
        "Use it to train a classifier or regressor on labelled points, or to feed points to "
        "clustering and similarity search without embedding the whole raster."
    )

    INPUT = "INPUT"
    POINTS = "POINTS"
    OUTPUT = "OUTPUT"
    VALID = "VALID"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster"))
        self.addParameter(
            QgsProcessingParameterFeatureSource(self.POINTS, "Points", types=[QgsProcessing.TypeVectorPoint])
        )
        add_band_and_tile_parameters(self)
        add_tile_model_parameters(self)
        add_device_parameter(self)
        add_precision_parameter(self)
        add_threads_parameter(self)
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT, "Points with tile embeddings", type=QgsProcessing.TypeVectorPoint
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.VALID, "Points embedded"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.tile_points import embed_tile_points_file

        raster = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        points = self.parameterAsSource(parameters, self.POINTS, context)
        if raster is None or points is None:
            raise InputError("Give a raster and a point layer.")
        raster_path = dataset_spec(raster)
        points_path, layer_name, crs = points_source_file(self, parameters, self.POINTS, context, feedback)
        model = tile_model_from_parameters(self, parameters, context)
        bands, tile, normalisation = bands_tile_normalisation(self, parameters, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        result = embed_tile_points_file(
            raster_path,
            points_path,
            output,
            model,
            layer=layer_name or None,
            crs=crs,
            bands=bands,
            tile_size=tile,
            normalisation=normalisation,
            device=device_from_parameters(self, parameters, context),
            precision=precision_from_parameters(self, parameters, context),
            progress=progress,
            labels=(points.sourceName(), raster.name(),
                    "choose 'Points' over the raster, or another 'Raster'"),
            threads=threads_from_parameters(self, parameters, context),
        )
        for warning in result.warnings:  # also in the layer's metadata, for whoever uses the points later
            feedback.pushWarning(warning)
        n_valid = result.embedded
        if n_valid < result.points:
            feedback.pushWarning(
                f"{result.points - n_valid} of {result.points} points have no embedding "
                "(tile off the raster or mostly nodata)."
            )
        name = f"Tile embeddings ({result.model_id}) at {points.sourceName()}"
        styling.style_on_load(self, context, output, name, None)
        return {self.OUTPUT: output, self.VALID: n_valid}
