"""Embed raster tiles with a tile encoder (Tile2Vec) into an embedding raster."""

from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from srl_core.errors import InputError
from srl_core.names import DEFAULT_NORMALISATION, NORMALISATIONS

from .. import styling
from .base import SrlAlgorithm
from .layers import dataset_spec, mask_spec
from .params import (
    add_backend_parameters,
    add_device_parameter,
    add_precision_parameter,
    add_threads_parameter,
    add_tile_model_parameters,
    advanced,
    backend_from_parameters,
    device_from_parameters,
    extent_in,
    precision_from_parameters,
    threads_from_parameters,
    tile_model_from_parameters,
)

NORMALISATION_LABELS = {
    "model": "The model's training statistics (same sensor and units as its training imagery)",
    "raster": "This raster's own statistics (another sensor, processing level or scaling)",
    "auto": "Automatic: the raster's own statistics when it looks unlike the model's training data",
}


def add_band_and_tile_parameters(alg) -> None:
    """BANDS (model's order), TILE_SIZE and NORMALISATION, shared with 'Sample tile embeddings at points'."""
    alg.addParameter(
        QgsProcessingParameterBand(
            "BANDS",
            "Bands, in the model's band order (default: chosen from the raster's band names)",
            parentLayerParameterName="INPUT",
            optional=True,
            allowMultiple=True,
        )
    )
    alg.addParameter(
        QgsProcessingParameterNumber(
            "TILE_SIZE",
            "Tile size in pixels (0 = the model's)",
            QgsProcessingParameterNumber.Integer,
            0,
            minValue=0,
        )
    )
    alg.addParameter(
        QgsProcessingParameterEnum(
            "NORMALISATION",
            "Standardise each band with",
            [NORMALISATION_LABELS[name] for name in NORMALISATIONS],
            defaultValue=NORMALISATIONS.index(DEFAULT_NORMALISATION),
        )
    )


def bands_tile_normalisation(alg, parameters, context) -> tuple[list[int] | None, int | None, str]:
    """The BANDS, TILE_SIZE and NORMALISATION parameters as :func:`srl_core.tiles.embed_raster` takes them."""
    from srl_core.raster.source import parse_bands

    raw = parameters.get("BANDS")
    if isinstance(raw, str) and raw.strip():  # qgis_process passes BANDS=1,2,3 as one string ("a": band 0)
        bands = parse_bands(raw) or None
    else:
        bands = [int(b) for b in alg.parameterAsInts(parameters, "BANDS", context)] or None
    tile = alg.parameterAsInt(parameters, "TILE_SIZE", context) or None
    return bands, tile, NORMALISATIONS[alg.parameterAsEnum(parameters, "NORMALISATION", context)]


class EmbedRasterAlgorithm(SrlAlgorithm):
    ALG_ID = "embed_raster"
    DISPLAY_NAME = "Embed raster tiles"
    GROUP = "Embeddings"
    GROUP_ID = "embeddings"
    ICON = "embed"
    HELP = (
        "Cuts a raster into square tiles and turns each tile into an embedding vector with a "
        "tile encoder, writing an embedding raster: one pixel per tile (at the tile centre), "
        "one band per embedding dimension, NaN where a tile is mostly nodata or outside the "
        "mask. The embedding raster is the input of clustering, similarity search, "
        "interpolation and the RGB view, and can be kept and reopened.\n\n"
        "Method: Tile2Vec (Jean et al. 2019, 'Tile2Vec: Unsupervised representation learning "
        "for spatially distributed data', AAAI), a residual network trained so that nearby "
        "tiles get similar embeddings and distant ones different embeddings.\n\n"
        "Model 'auto' (the default): a learned model whose bands the raster has (found by the "
        "raster's band names, else by their number), else the training-free MOSAIKS random "
        "features (Rolf et al. 2021), which fit any sensor and band count. The training-free "
        "models (mosaiks-rcf, bandstats) are fitted to each raster and always standardise by "
        "its own statistics.\n\n"
        "Bands: the raster bands to feed the model, in the model's band order (see its card in "
        "'List and describe models'); left empty, they are chosen from the raster's band names "
        "(e.g. 'B3 red') or colour interpretation, else the first ones, and the log says which. "
        "Stride: distance between tile origins in pixels (default: "
        "the tile size, no overlap; smaller gives a finer embedding raster and takes longer).\n\n"
        "Standardise each band with: the model's training statistics when the raster comes from "
        "the sensor and processing level in the model's card; otherwise this raster's own "
        "statistics (e.g. an 8-bit export, reflectance instead of digital numbers, another "
        "satellite). Automatic (the default) picks the raster's own when its band means are far "
        "from the model's training data. The choices are written to the log and into the "
        "output's metadata; a warning says when the embeddings come out degenerate (nearly all alike)."
    )

    INPUT = "INPUT"
    EXTENT = "EXTENT"
    STRIDE = "STRIDE"
    MASK = "MASK"
    BATCH_SIZE = "BATCH_SIZE"
    FLOAT16 = "FLOAT16"
    MAX_NODATA = "MAX_NODATA"
    OUTPUT = "OUTPUT"
    TILES = "TILES"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Raster"))
        add_band_and_tile_parameters(self)
        add_tile_model_parameters(self)
        self.addParameter(
            QgsProcessingParameterNumber(
                self.STRIDE,
                "Stride in pixels (0 = tile size)",
                QgsProcessingParameterNumber.Integer,
                0,
                minValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterExtent(self.EXTENT, "Extent (default: whole raster)", optional=True)
        )
        self.addParameter(
            QgsProcessingParameterMapLayer(
                self.MASK,
                "Mask (raster, non-zero = inside; or polygons)",
                optional=True,
                types=[QgsProcessing.TypeRaster, QgsProcessing.TypeVectorPolygon],
            )
        )
        add_device_parameter(self)
        add_precision_parameter(self)
        add_threads_parameter(self)
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    self.BATCH_SIZE,
                    "Batch size (0 = 64 on the CPU, 1024 on a CUDA GPU)",
                    QgsProcessingParameterNumber.Integer,
                    0,
                    minValue=0,
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    self.MAX_NODATA,
                    "Largest nodata fraction of an embedded tile",
                    QgsProcessingParameterNumber.Double,
                    0.5,
                    minValue=0.0,
                    maxValue=1.0,
                )
            )
        )
        self.addParameter(
            advanced(QgsProcessingParameterBoolean(self.FLOAT16, "Store as float16 (half the size)", False))
        )
        add_backend_parameters(self)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Embeddings"))
        self.addOutput(QgsProcessingOutputNumber(self.TILES, "Tiles embedded"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.tiles import embed_raster

        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise InputError("No raster given, or it could not be opened.")
        path = dataset_spec(layer)
        model = tile_model_from_parameters(self, parameters, context)
        bands, tile, normalisation = bands_tile_normalisation(self, parameters, context)
        extent = extent_in(self, parameters, self.EXTENT, context, layer.crs())
        mask = mask_spec(self, parameters, self.MASK, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        result = embed_raster(
            path,
            output,
            model,
            bands=bands,
            tile_size=tile,
            stride=self.parameterAsInt(parameters, self.STRIDE, context) or None,
            extent=extent,
            mask_path=mask,
            device=device_from_parameters(self, parameters, context),
            precision=precision_from_parameters(self, parameters, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context) or None,
            dtype="float16" if self.parameterAsBool(parameters, self.FLOAT16, context) else "float32",
            max_nodata_fraction=self.parameterAsDouble(parameters, self.MAX_NODATA, context),
            normalisation=normalisation,
            progress=progress,
            threads=threads_from_parameters(self, parameters, context),
            **backend_from_parameters(self, parameters, context),
        )
        for choice in result.choices:
            feedback.pushInfo(choice)
        for warning in result.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(
            f"{result.tiles_embedded} of {result.tiles_total} tiles embedded by '{result.model_id}' on "
            f"{result.device} in {result.seconds:.1f} s: {result.width} x {result.height} px, "
            f"{result.embedding_size} bands."
        )
        styling.style_on_load(
            self, context,
            output,
            f"Embeddings of {layer.name()} ({result.model_id}, {result.tile_size} px tiles)",
            styling.style_embeddings,
        )
        return {self.OUTPUT: output, self.TILES: result.tiles_embedded}
