"""Embedding RGB view: the first three principal components as red, green and blue."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputString,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
)

from .. import styling
from .base import SrlAlgorithm
from .layers import add_embeddings_input, embeddings_layer, is_raster, layer_file


class RgbViewAlgorithm(SrlAlgorithm):
    ALG_ID = "rgb_view"
    DISPLAY_NAME = "Embedding RGB view"
    GROUP = "Analysis"
    GROUP_ID = "analysis"
    ICON = "rgb_view"
    HELP = (
        "Shows embeddings as colours: a principal component analysis (Pearson 1901; Hotelling "
        "1933) fitted on a sample finds the three directions along which the embeddings vary "
        "most, and the first, second and third components become red, green and blue, each "
        "stretched between its 2nd and 98th percentile. Areas (or points) of similar colour "
        "have similar embeddings, a quick look at what the model sees before clustering or "
        "searching. The share of variance each component explains is written to the log."
    )

    INPUT = "INPUT"
    SAMPLE_SIZE = "SAMPLE_SIZE"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    OUTPUT_POINTS = "OUTPUT_POINTS"
    VARIANCE = "VARIANCE"

    def initAlgorithm(self, config=None):  # noqa: N802
        add_embeddings_input(self)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.SAMPLE_SIZE,
                "PCA sample (pixels)",
                QgsProcessingParameterNumber.Integer,
                100_000,
                minValue=3,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(self.SEED, "Random seed", QgsProcessingParameterNumber.Integer, 0)
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT, "RGB view (raster input)", optional=True, createByDefault=True
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT_POINTS,
                "RGB view (point input)",
                type=QgsProcessing.TypeVectorPoint,
                optional=True,
                createByDefault=True,
            )
        )
        self.addOutput(QgsProcessingOutputString(self.VARIANCE, "Variance explained by the 3 components"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from osgeo import gdal

        from srl_core.analysis.views import rgb_view_points, rgb_view_raster

        layer = embeddings_layer(self, parameters, context, "The RGB view")
        path, _ = layer_file(layer)
        seed = self.parameterAsInt(parameters, self.SEED, context)
        name = f"Embedding RGB view of {layer.name()}"
        if is_raster(layer):
            output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
            styling.style_on_load(context, output, name, styling.style_embedding_view)
            sample = self.parameterAsInt(parameters, self.SAMPLE_SIZE, context)
            rgb_view_raster(path, output, sample_size=sample, seed=seed, progress=progress)
            variance = gdal.Open(output).GetMetadataItem("SRL_PCA_VARIANCE") or ""
            key = self.OUTPUT
        else:
            output = self.parameterAsOutputLayer(parameters, self.OUTPUT_POINTS, context)
            styling.style_on_load(context, output, name, styling.style_point_colours)
            rgb_view_points(path, output, seed=seed)
            variance = ""
            key = self.OUTPUT_POINTS
        if variance:
            feedback.pushInfo(f"Share of variance explained by PC1, PC2, PC3: {variance}")
        progress.report(1.0, "Done")
        return {key: output, self.VARIANCE: variance}
