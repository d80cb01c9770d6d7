"""Turning Processing layer parameters into the file paths srl_core reads.

srl_core reads files (embedding rasters and GeoPackages carry their model id as metadata),
so an input layer must be file-backed; a memory or database layer gets a clear message.
"""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsMapLayer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorLayer,
)

from srl_core.errors import InputError


def layer_file(layer: QgsMapLayer) -> tuple[str, str]:
    """(file path, layer name or "") of a file-backed layer."""
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or ""
    if not path or not os.path.exists(path):
        raise InputError(
            f"Layer '{layer.name()}' is not stored in a file; save it (e.g. as GeoPackage or GeoTIFF) first."
        )
    return path, parts.get("layerName") or ""


def parameter_layer(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], name: str, context: QgsProcessingContext
) -> QgsMapLayer:
    layer = alg.parameterAsLayer(parameters, name, context)
    if layer is None:
        raise InputError(f"No layer given for '{name}', or it could not be opened.")
    return layer


def is_raster(layer: QgsMapLayer) -> bool:
    return isinstance(layer, QgsRasterLayer)


def is_points(layer: QgsMapLayer) -> bool:
    return isinstance(layer, QgsVectorLayer) and layer.geometryType() == 0  # PointGeometry


def gdal_wkt(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS as WKT GDAL reads (what srl_core takes)."""
    return crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL)
