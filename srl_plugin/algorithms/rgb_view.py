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
from .embedding_input import EMBEDDINGS_HELP, add_embedding_input_parameters, analysis_input
from .layers import add_embeddings_input
from .params import add_threads_parameter, output_for_input, threads_from_parameters


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
    ) + EMBEDDINGS_HELP

    INPUT = "INPUT"
    SAMPLE_SIZE = "SAMPLE_SIZE"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    OUTPUT_POINTS = "OUTPUT_POINTS"
    VARIANCE = "VARIANCE"

    def initAlgorithm(self, config=None):  # noqa: N802
        add_embeddings_input(self)
        add_embedding_input_parameters(self)
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
        add_threads_parameter(self)
        self.addOutput(QgsProcessingOutputString(self.VARIANCE, "Variance explained by the 3 components"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.analysis.api import rgb_view

        layer, data = analysis_input(self, parameters, context, "The RGB view")
        seed = self.parameterAsInt(parameters, self.SEED, context)
        name = f"Embedding RGB view of {layer.name()}"
        # a model step whose optional output is neither kept nor used gets no path
        key, output = output_for_input(self, parameters, context, data.is_raster, "the RGB view")
        style = styling.style_embedding_view if data.is_raster else styling.style_point_colours
        styling.style_on_load(self, context, output, name, style)
        sample = self.parameterAsInt(parameters, self.SAMPLE_SIZE, context)
        result = rgb_view(data, output, sample_size=sample, seed=seed, progress=progress,
                          threads=threads_from_parameters(self, parameters, context))
        result.log_to(feedback.pushInfo, feedback.pushWarning)
        progress.report(1.0, "Done")
        return {key: output, self.VARIANCE: result.variance_text}
