"""Interpolate a point field into prediction and uncertainty rasters, cross-validated."""

from __future__ import annotations

import json
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from srl_core.errors import InputError
from srl_core.names import LAYER_SUFFIX

from .. import styling
from .base import SrlAlgorithm
from .embedding_input import EMBEDDINGS_HELP, add_embedding_input_parameters, embedding_raster
from .layers import dataset_spec, points_source_file, require_stored_field
from .params import add_threads_parameter, advanced, extent_in, threads_from_parameters

TASKS = ("auto", "regression", "classification")


class InterpolateAlgorithm(SrlAlgorithm):
    ALG_ID = "interpolate"
    DISPLAY_NAME = "Interpolate a field"
    GROUP = "Analysis"
    GROUP_ID = "analysis"
    ICON = "interpolate"
    HELP = (
        "Maps a field measured at sample points (a number, or a class) over an area, with an "
        "uncertainty map beside it.\n\n"
        "Each location is described by multi-scale location embeddings (random Fourier "
        "features of the coordinates at scales chosen from the point spacing, as in the "
        "positional encoders of SatCLIP, Klemmer et al. 2023, and GeoCLIP, Vivanco et al. "
        "2023; see also Rahimi & Recht 2007), or, in the advanced settings, by a Space2Vec "
        "(Mai et al. 2020) or Sphere2Vec (Mai et al. 2023) multi-scale encoding at the same "
        "scales, and, optionally, by the tile embedding of an embedding raster under it. "
        "An ensemble of ridge (or logistic) regressions on bootstrap "
        "samples predicts every cell: the prediction is the ensemble mean (or majority class), "
        "the uncertainty the predictive standard deviation (or 1 - probability of the class).\n\n"
        "Every run is cross-validated with random and spatially blocked folds; the scores "
        "(RMSE, MAE, R² or accuracy) are written to the log and returned as outputs. Trust "
        "the spatially blocked score when you will predict away from the samples. A map whose "
        "cross-validated score is no better than predicting the mean of the samples (or their commonest "
        "class) everywhere is noise, however its colours look: the log warns, and so does QGIS when it is "
        "loaded.\n\n"
        "Far from every sample the model extrapolates: the data say nothing there, yet the "
        "maps look as confident as anywhere else (the uncertainty too, which knows only the "
        "ensemble's spread and the out-of-bag error). Set a maximum distance to leave pixels "
        "farther than that from every sample empty (nodata) in both rasters, e.g. the empty "
        "corners of the bounding box of samples along a river; the log says how many were left "
        "empty. 0 means no limit.\n\n"
        "Resolution and maximum distance are in the units of the points' CRS; use a projected "
        "CRS (metres). Left at 0, the resolution is half the median distance between neighbouring "
        "points, rounded, but no finer than gives a million cells (clustered samples would make grids of "
        "hundreds of millions); left empty, the field is the first numeric one that is not an id. "
        "Concentrations (e.g. zinc in ppm) are skewed and never negative: tick the log transform. "
        "The report says how many pixels are predicted below the smallest observed value; a field "
        "that is never negative is never predicted below 0."
    ) + EMBEDDINGS_HELP

    INPUT = "INPUT"
    FIELD = "FIELD"
    TASK = "TASK"
    RESOLUTION = "RESOLUTION"
    EXTENT = "EXTENT"
    MAX_DISTANCE = "MAX_DISTANCE"
    TILE_EMBEDDINGS = "TILE_EMBEDDINGS"
    ENCODING = "ENCODING"
    FOLDS = "FOLDS"
    MEMBERS = "MEMBERS"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    OUTPUT_UNCERTAINTY = "OUTPUT_UNCERTAINTY"
    LOG = "LOG"
    REPORT = "REPORT"
    CV_SCORES = "CV_SCORES"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.INPUT, "Sample points", types=[QgsProcessing.TypeVectorPoint]
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.FIELD,
                "Field to interpolate (default: the first numeric field that is not an id)",
                parentLayerParameterName=self.INPUT,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.TASK,
                "Task",
                options=["auto (text = classes, numbers = values)", "regression", "classification"],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.RESOLUTION,
                "Resolution (CRS units of the points; 0 = half their median spacing)",
                QgsProcessingParameterNumber.Double,
                0.0,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(
                self.LOG, "Log-transform the values (concentrations, other positive skewed values)", False
            )
        )
        self.addParameter(
            QgsProcessingParameterExtent(self.EXTENT, "Extent (default: the points)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.MAX_DISTANCE,
                "Leave pixels farther than this from every sample empty (0 = no limit)",
                QgsProcessingParameterNumber.Double,
                0.0,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterLayer(
                self.TILE_EMBEDDINGS, "Tile embeddings to use as well (embedding raster)", optional=True
            )
        )
        add_embedding_input_parameters(self)
        from srl_core.names import ENCODINGS

        encoding = QgsProcessingParameterEnum(
            self.ENCODING,
            "Location encoding",
            options=list(ENCODINGS),
            defaultValue=ENCODINGS[0],
            usesStaticStrings=True,
        )
        self.addParameter(advanced(encoding))
        for name, text, default, low in (
            (self.FOLDS, "Cross-validation folds", 5, 2),
            (self.MEMBERS, "Ensemble members", 8, 2),
            (self.SEED, "Random seed", 0, 0),
        ):
            param = QgsProcessingParameterNumber(
                name, text, QgsProcessingParameterNumber.Integer, default, minValue=low
            )
            self.addParameter(advanced(param))
        add_threads_parameter(self)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Prediction"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT_UNCERTAINTY, "Uncertainty"))
        self.addOutput(QgsProcessingOutputString(self.REPORT, "Report"))
        self.addOutput(QgsProcessingOutputString(self.CV_SCORES, "Cross-validation scores (JSON)"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.analysis.interpolation import interpolate_points

        points = self.parameterAsSource(parameters, self.INPUT, context)
        if points is None:
            raise InputError("No point layer given, or it could not be opened.")
        path, layer_name, crs = points_source_file(self, parameters, self.INPUT, context, feedback)
        field = self.parameterAsString(parameters, self.FIELD, context) or None
        layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        if field and layer is not None:
            require_stored_field(layer, field, path)
        extent = extent_in(self, parameters, self.EXTENT, context, points.sourceCrs())
        tiles = self.parameterAsRasterLayer(parameters, self.TILE_EMBEDDINGS, context)
        max_distance = self.parameterAsDouble(parameters, self.MAX_DISTANCE, context)
        prediction = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        uncertainty = self.parameterAsOutputLayer(parameters, self.OUTPUT_UNCERTAINTY, context)
        result = interpolate_points(
            f"{path}{LAYER_SUFFIX}{layer_name}" if layer_name else path,  # a layer of a file of several
            field,
            prediction,
            uncertainty,
            self.parameterAsDouble(parameters, self.RESOLUTION, context),
            extent=extent,
            task=TASKS[self.parameterAsEnum(parameters, self.TASK, context)],
            crs=crs,
            tile_raster=embedding_raster(self, parameters, context, dataset_spec(tiles))
            if tiles is not None
            else None,
            n_folds=self.parameterAsInt(parameters, self.FOLDS, context),
            n_members=self.parameterAsInt(parameters, self.MEMBERS, context),
            encoding=self.parameterAsEnumString(parameters, self.ENCODING, context) or "rff",
            seed=self.parameterAsInt(parameters, self.SEED, context),
            max_distance=None if max_distance == 0 else max_distance,  # NaN was read as "no limit"
            log_transform=self.parameterAsBool(parameters, self.LOG, context),
            progress=progress,
            threads=threads_from_parameters(self, parameters, context),
        )
        report = result.report()
        for warning in result.warnings:  # also in the rasters' metadata: the message bar shows it on loading
            feedback.pushWarning(warning)
        feedback.pushInfo(result.details())
        cv = [{"scheme": s.scheme, "folds": s.folds, **s.metrics} for s in result.cv]
        spatial = next((s for s in result.cv if s.scheme == "spatial"), result.cv[-1])
        field = result.field_name
        score = ", ".join(f"{k} {v:.3g}" for k, v in list(spatial.metrics.items())[:2])
        classes = result.task == "classification"
        styling.style_on_load(
            self, context,
            prediction,
            f"{field} predicted ({score}, spatial CV)",
            styling.style_classes if classes else styling.style_prediction,
        )
        styling.style_on_load(self, context, uncertainty, f"{field} uncertainty", styling.style_uncertainty)
        return {
            self.OUTPUT: prediction,
            self.OUTPUT_UNCERTAINTY: uncertainty,
            self.REPORT: report,
            self.CV_SCORES: json.dumps(cv),
        }
