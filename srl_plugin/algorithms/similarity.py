"""Similarity search: where else do the embeddings look like these examples?"""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterNumber,
    QgsProcessingParameterPoint,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsWkbTypes,
)

from srl_core.errors import InputError
from srl_core.names import COMBINE_MODES

from .. import styling
from .base import SrlAlgorithm
from .embedding_input import EMBEDDINGS_HELP, add_embedding_input_parameters, analysis_input
from .layers import add_embeddings_input, dataset_spec, defined_crs_wkt, is_points, is_raster
from .params import (
    add_backend_parameters,
    add_threads_parameter,
    advanced,
    backend_from_parameters,
    threads_from_parameters,
)

SCORE_FIELD = "similarity"


class SimilarityAlgorithm(SrlAlgorithm):
    ALG_ID = "similarity"
    DISPLAY_NAME = "Similarity search"
    GROUP = "Analysis"
    GROUP_ID = "analysis"
    ICON = "similarity"
    HELP = (
        "Finds what looks like your examples. Examples are embeddings taken from the input at "
        "query points (the pixel containing each point), inside query polygons (mean embedding "
        "of the pixels whose centres fall inside), at a clicked coordinate, or, for embedding "
        "points, the features listed by id or the (selected) features of a query embedding "
        "point layer.\n\n"
        "Every pixel or point is scored by cosine similarity (-1..1) to the examples: to their "
        "mean direction (prototype, as in prototypical networks, Snell et al. 2017) or to the "
        "best-matching example (max). This is the similarity search over learned embeddings "
        "used with Tile2Vec (Jean et al. 2019) and Geo-SAM-style cached encoders.\n\n"
        "Top-k optionally writes the k most similar tiles (as tile-centre points) or points, "
        "ranked, with their scores."
    ) + EMBEDDINGS_HELP

    INPUT = "INPUT"
    QUERY_LAYER = "QUERY_LAYER"
    QUERY_POINT = "QUERY_POINT"
    QUERY_FIDS = "QUERY_FIDS"
    COMBINE = "COMBINE"
    TOP_K = "TOP_K"
    OUTPUT = "OUTPUT"
    OUTPUT_POINTS = "OUTPUT_POINTS"
    OUTPUT_TOP_K = "OUTPUT_TOP_K"

    def initAlgorithm(self, config=None):  # noqa: N802
        add_embeddings_input(self)
        add_embedding_input_parameters(self)
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.QUERY_LAYER,
                "Query features (points or polygons; or embedding points)",
                types=[QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterPoint(self.QUERY_POINT, "Query coordinate", optional=True))
        self.addParameter(
            QgsProcessingParameterString(
                self.QUERY_FIDS, "Query feature ids of the input points (comma separated)", optional=True
            )
        )
        combine = QgsProcessingParameterEnum(
            self.COMBINE,
            "Combine several examples",
            options=["mean (prototype)", "max (best match)"],
            defaultValue=0,
        )
        self.addParameter(advanced(combine))
        add_threads_parameter(self)
        add_backend_parameters(self)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TOP_K,
                "Number of most similar results to list (0 = none)",
                QgsProcessingParameterNumber.Integer,
                0,
                minValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                self.OUTPUT, "Similarity (raster input)", optional=True, createByDefault=True
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT_POINTS,
                "Similarity (point input)",
                type=QgsProcessing.TypeVectorPoint,
                optional=True,
                createByDefault=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT_TOP_K,
                "Most similar",
                type=QgsProcessing.TypeVectorPoint,
                optional=True,
                createByDefault=False,
            )
        )

    def _query(self, parameters, context, layer, path: str):
        from srl_core.analysis.similarity import Query

        query = Query()
        fids = self.parameterAsString(parameters, self.QUERY_FIDS, context).strip()
        if fids:
            if not is_points(layer):
                raise InputError("Query feature ids are for embedding point layers.")
            try:
                ids = [int(f) for f in fids.replace(";", ",").split(",") if f.strip()]
            except ValueError as exc:
                raise InputError(
                    f"Query feature ids must be whole numbers separated by commas: {fids}"
                ) from exc
            if not ids:  # "," reached the query as an empty table of embeddings, in those words
                raise InputError(f"'Query feature ids' holds no feature id: {fids!r}.")
            query.add_points(path, ids)
        if parameters.get(self.QUERY_POINT):
            point = self.parameterAsPoint(parameters, self.QUERY_POINT, context)
            crs = self.parameterAsPointCrs(parameters, self.QUERY_POINT, context)
            if not is_raster(layer):
                raise InputError("A query coordinate needs an embedding raster; for points give feature ids.")
            query.add_pixels(path, [[point.x(), point.y()]], defined_crs_wkt(crs) or None)
        source = self.parameterAsSource(parameters, self.QUERY_LAYER, context)
        if source is not None:
            self._add_source(query, source, parameters, context, layer, path)
        return query

    def _add_source(self, query, source, parameters, context, layer, path) -> None:
        features = list(source.getFeatures())
        if not features:
            raise InputError("The query layer has no (selected) features.")
        names = source.fields().names()
        if any(n.startswith("emb_") for n in names):
            # the layer chosen in its file, also when only its selected features are given
            query_layer = self.input_layer(parameters, self.QUERY_LAYER, context)
            query.add_points(dataset_spec(query_layer), [f.id() for f in features])
            return
        if not is_raster(layer):
            raise InputError("Query geometries need an embedding raster; for points use embedding points.")
        wkt = defined_crs_wkt(source.sourceCrs())  # none: the raster's, as the drawing tools take it
        xy = []
        for feature in features:
            geometry = feature.geometry()
            if geometry.type() == QgsWkbTypes.PolygonGeometry:
                query.add_polygon(path, geometry.asWkt(), wkt)
            else:
                xy += [[p.x(), p.y()] for p in geometry.vertices()]
        if xy:
            query.add_pixels(path, xy, wkt)

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.analysis.api import similarity

        layer, data = analysis_input(self, parameters, context, "Similarity search")
        if not any(parameters.get(name) for name in (self.QUERY_LAYER, self.QUERY_POINT, self.QUERY_FIDS)):
            raise InputError(
                "Nothing to compare with: give a 'Query coordinate' (a point on the embedding raster), "
                "'Query features' (points or polygons) or 'Query feature ids' of embedding points; "
                "or use the Similarity map tool and click on the map."
            )
        query = self._query(parameters, context, layer, data.source or data.path)
        combine = COMBINE_MODES[self.parameterAsEnum(parameters, self.COMBINE, context)]
        top_k = self.parameterAsInt(parameters, self.TOP_K, context)
        threads = threads_from_parameters(self, parameters, context)
        name = f"Similarity to {len(query.vectors)} example(s) in {layer.name()}"
        results: dict[str, Any] = {}
        key = self.OUTPUT if data.is_raster else self.OUTPUT_POINTS
        output = self.parameterAsOutputLayer(parameters, key, context)
        if data.is_raster:
            styling.style_on_load(self, context, output, name, styling.style_similarity)
        else:
            styling.style_on_load(
                self, context, output, name, lambda lyr: styling.style_point_values(lyr, SCORE_FIELD)
            )
        results[key] = output
        top_output = self.parameterAsOutputLayer(parameters, self.OUTPUT_TOP_K, context) if top_k else None
        if top_output:
            styling.style_on_load(
                self, context,
                top_output,
                f"Top {top_k} most similar in {layer.name()}",
                lambda lyr: styling.style_point_values(lyr, "score"),
            )
            results[self.OUTPUT_TOP_K] = top_output
        result = similarity(
            data, query, output, combine=combine, top_k=top_k, top_k_output=top_output,
            field_name=SCORE_FIELD, progress=progress, threads=threads,
            **backend_from_parameters(self, parameters, context),
        )  # fmt: skip
        result.log_to(feedback.pushInfo, feedback.pushWarning)
        progress.report(1.0, "Done")
        return results
