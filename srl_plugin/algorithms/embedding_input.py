"""The analyses' input parameters for embeddings SRL did not make, and reading the input.

"Treat bands as embeddings" lets any multi-band raster be analysed as it is; the advanced
"Embedding product" forces how a raster is decoded (recognised from the file by default).
SRL's own rasters and embedding points need neither.
"""

from __future__ import annotations

from typing import Any

from qgis.core import QgsProcessingParameterBoolean, QgsProcessingParameterEnum

from srl_core.names import AUTO_PRODUCT, PRODUCT_CHOICES

from .layers import dataset_spec, embeddings_layer
from .params import advanced

BANDS_AS_EMBEDDINGS = "BANDS_AS_EMBEDDINGS"
PRODUCT = "PRODUCT"
EMBEDDINGS_HELP = (
    "\n\nEmbeddings you already have: AlphaEarth Satellite Embedding (8-bit or float) and TESSERA "
    "rasters are recognised and decoded; any other multi-band raster is read when 'Treat the bands "
    "... as embeddings' is on, its band values used as they are. The log says how a raster was read."
)


def add_embedding_input_parameters(alg) -> None:
    """BANDS_AS_EMBEDDINGS and the advanced PRODUCT, after the INPUT layer."""
    alg.addParameter(
        QgsProcessingParameterBoolean(
            BANDS_AS_EMBEDDINGS,
            "Treat the bands of a raster SRL did not make as embeddings (values used as they are)",
            defaultValue=False,
        )
    )
    product = QgsProcessingParameterEnum(
        PRODUCT,
        "Embedding product of such a raster (auto: recognised from the file)",
        options=list(PRODUCT_CHOICES),
        defaultValue=AUTO_PRODUCT,
        usesStaticStrings=True,
    )
    alg.addParameter(advanced(product))


def embedding_raster(alg, parameters: dict[str, Any], context, path: str):
    """The raster at ``path``, to be read as the parameters say (an
    :class:`srl_core.embedding_products.EmbeddingRaster`)."""
    from srl_core.embedding_products import EmbeddingRaster

    product = alg.parameterAsEnumString(parameters, PRODUCT, context) or AUTO_PRODUCT
    return EmbeddingRaster(path, product, alg.parameterAsBool(parameters, BANDS_AS_EMBEDDINGS, context))


def analysis_input(alg, parameters: dict[str, Any], context, purpose: str):
    """(layer, srl_core AnalysisInput) of the INPUT layer, read as the parameters say."""
    from srl_core.analysis.api import open_input

    layer = embeddings_layer(alg, parameters, context, purpose)
    source = embedding_raster(alg, parameters, context, dataset_spec(layer))
    return layer, open_input(source.path, source.product, source.bands_as_embeddings)
