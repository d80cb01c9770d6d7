"""Turning Processing layer parameters into the file paths srl_core reads.

srl_core reads files (embedding rasters and GeoPackages carry their model id as metadata),
so an input layer must be file-backed; a memory or database layer gets a clear message.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeatureRequest,
    QgsFields,
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingParameterMapLayer,
    QgsProviderRegistry,
    QgsRasterLayer,
    QgsVectorLayer,
    QgsWkbTypes,
)

from srl_core.errors import InputError
from srl_core.names import LAYER_SUFFIX, SUBSET_SUFFIX, UNDEFINED_CRS_NAMES


def decoded_source(layer: QgsMapLayer) -> dict:
    """QGIS's reading of a layer's source: ``path`` (the file), ``layerName`` and the like."""
    return QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())


def require_saved_edits(layer: QgsMapLayer) -> None:
    """Refuse a vector layer with unsaved edits: srl_core reads the layer's file, so points deleted,
    moved or added in QGIS's edit buffer would be left out of the result without a word."""
    if isinstance(layer, QgsVectorLayer) and layer.isEditable() and layer.isModified():
        raise InputError(
            f"Layer '{layer.name()}' has unsaved edits, which SRL would not see (it reads the layer's "
            "file): save them, or roll them back, first."
        )


def require_file_crs(layer: QgsMapLayer) -> None:
    """Refuse a layer whose CRS was set in QGIS over its file's (a shapefile without .prj, a wrong one):
    srl_core reads the file, so its outputs would be placed by the file's CRS (a UTM zone away), or the
    run would fail asking for a CRS the analyst has already given."""
    provider = layer.dataProvider()
    if layer.crs() == provider.crs():
        return
    shown = layer.crs().userFriendlyIdentifier()
    stored = provider.crs().userFriendlyIdentifier() if provider.crs().isValid() else "none"
    fix = ("assign the CRS to the file (Raster > Projections > Assign Projection) or save the layer as a "
           "new file" if is_raster(layer) else "export the layer (Export > Save Features As, in the CRS it "
           "has in QGIS) and use the copy")
    raise InputError(
        f"Layer '{layer.name()}' has a CRS set in QGIS ({shown}) that its file does not have ({stored}), "
        f"and SRL reads the file: {fix}."
    )


def require_file_state(layer: QgsRasterLayer) -> None:
    """Refuse a raster layer whose QGIS settings change what it holds: srl_core reads the file, so a
    CRS assigned in QGIS, a no-data value set there (its pixels were embedded and clustered as data),
    the file's no-data value turned off there (pixels shown as data, left out) or GDAL open options in
    its source would be lost without a word, or fail obscurely."""
    provider = layer.dataProvider()
    require_file_crs(layer)
    if any(provider.userNoDataValues(band) for band in range(1, layer.bandCount() + 1)):
        raise InputError(
            f"Layer '{layer.name()}' has a no-data value set in QGIS (Layer Properties > Transparency), "
            "which SRL would not see as it reads the file: write it to the file (gdal_edit -a_nodata) or "
            "save the layer as a new file with it."
        )
    ignored = [band for band in range(1, layer.bandCount() + 1)
               if provider.sourceHasNoDataValue(band) and not provider.useSourceNoDataValue(band)]
    if ignored:
        raise InputError(
            f"Layer '{layer.name()}' has its file's no-data value turned off in QGIS (Layer Properties > "
            f"Transparency, band {ignored[0]}), so QGIS shows those pixels as data, but SRL reads the file "
            "and would leave them out: remove the no-data value from the file (gdal_edit -unsetnodata) or "
            "turn the setting back on."
        )
    options = decoded_source(layer).get("openOptions")
    if options:
        raise InputError(
            f"Layer '{layer.name()}' is opened with GDAL open options ({', '.join(options)}), which SRL "
            "cannot pass on: add the file again without them."
        )


def layer_file(layer: QgsMapLayer) -> tuple[str, str]:
    """(file path, layer name or "") of a file-backed layer (its unsaved edits refused)."""
    parts = decoded_source(layer)
    path = parts.get("path") or ""
    if not path or not os.path.exists(path):
        raise InputError(
            f"Layer '{layer.name()}' is not stored in a file; save it (e.g. as GeoPackage or GeoTIFF) first."
        )
    require_saved_edits(layer)
    return path, parts.get("layerName") or ""


def dataset_spec(layer: QgsMapLayer) -> str:
    """What srl_core opens for ``layer``: for a raster, the GDAL dataset name QGIS opened (a table of
    a GeoPackage, a NetCDF variable, a file inside a zip: not only the file, which GDAL cannot open
    as a raster or opens as another one); for a vector layer, its file, the layer chosen within it
    and the filter QGIS shows it with (only the features shown count)."""
    path, name = layer_file(layer)
    if is_raster(layer):
        require_file_state(layer)
        return layer.source() if layer.providerType() == "gdal" else path
    if layer.providerType() != "ogr":  # a delimited-text layer's points are QGIS's, not in the file
        raise InputError(
            f"Layer '{layer.name()}' is read by QGIS's {layer.providerType()} provider, which SRL cannot "
            "read as it does: export it (Export > Save Features As, GeoPackage) and use the copy."
        )
    require_file_crs(layer)
    spec = f"{path}{LAYER_SUFFIX}{name}" if name else path
    return f"{spec}{SUBSET_SUFFIX}{layer.subsetString()}" if layer.subsetString() else spec


def mask_spec(alg: QgsProcessingAlgorithm, parameters: dict[str, Any], name: str,
              context: QgsProcessingContext) -> Optional[str]:
    """What srl_core opens for an optional mask parameter (see :func:`dataset_spec`), None without one.
    Only the selected polygons of a layer (a script's or a model's "selected features only") cannot
    be passed on by file: refused by name, where the whole layer was used without a word (a model
    trained on the whole raster, its card saying no mask at all)."""
    value = parameters.get(name)
    if isinstance(value, QgsProcessingFeatureSourceDefinition) and value.selectedFeaturesOnly:
        description = alg.parameterDefinition(name).description()
        raise InputError(f"'{description}' is given as selected features only, which SRL cannot read from "
                         "the layer's file: save the selected polygons as a layer (Export > Save Selected "
                         "Features As) and give that.")
    layer = alg.input_layer(parameters, name, context)  # a feature source definition too
    return dataset_spec(layer) if layer is not None else None


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
    return isinstance(layer, QgsVectorLayer) and layer.geometryType() == QgsWkbTypes.PointGeometry


def gdal_wkt(crs: QgsCoordinateReferenceSystem) -> str:
    """A CRS as WKT GDAL reads (what srl_core takes)."""
    return crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED_GDAL)


def defined_crs_wkt(crs: QgsCoordinateReferenceSystem) -> str:
    """:func:`gdal_wkt` of a layer's CRS, or '' when it has none. A GeoPackage written without a CRS has
    GDAL's 'Undefined geographic SRS', which QGIS takes as valid: a plot grid in metres was embedded as
    degrees, and every analysis then refused the output."""
    return gdal_wkt(crs) if crs.isValid() and crs.description() not in UNDEFINED_CRS_NAMES else ""


POINT_FORMATS = ["gpkg", "shp", "geojson"]


def points_source_file(
    alg: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
    feedback,
) -> tuple[str, str, str]:
    """(path, layer name, CRS as WKT) srl_core can read for a point input layer.

    The layer's own file when OGR reads it; otherwise (memory, database or text layers, or
    only the selected features) Processing writes a temporary GeoPackage copy first. The layer
    name is '' where the file holds one layer (QGIS names none).
    The CRS is the one the layer has in QGIS, which the analyst may have set over a missing or
    wrong one in the file (a shapefile without .prj): srl_core must use it, not the file's.
    An empty input (or an empty selection) is refused naming the layer, not the temporary copy,
    and so is a layer with no CRS, and one with unsaved edits read from its file.
    """
    source = alg.parameterAsSource(parameters, name, context)
    if source is not None and source.featureCount() == 0:
        definition = parameters.get(name)
        selected = bool(getattr(definition, "selectedFeaturesOnly", False))
        raise InputError(
            f"Layer '{source.sourceName()}' has no {'selected ' if selected else ''}features"
            + (": select some, or untick 'Selected features only'." if selected else ".")
        )
    path, layer_name = alg.parameterAsCompatibleSourceLayerPathAndLayerName(
        parameters, name, context, POINT_FORMATS, "gpkg", feedback
    )
    if not path or source is None:
        raise InputError(f"No point layer given for '{name}', or it could not be read.")
    layer = alg.parameterAsVectorLayer(parameters, name, context)
    if layer is not None and reads_file(layer, path):  # a copy Processing wrote holds the edits
        require_saved_edits(layer)
    elif layer is None or not reads_file(layer, path):
        _record_source_fids(source, path, layer_name or "")
    wkt = defined_crs_wkt(source.sourceCrs())
    if not wkt:
        raise InputError(f"Layer '{source.sourceName()}' has no coordinate reference system: set it in "
                         "Layer Properties > Source (Assigned coordinate reference system).")
    return path, layer_name or "", wkt


def _record_source_fids(source, copy: str, layer_name: str) -> None:
    """Give the copy Processing wrote of a layer (its selected features, a memory layer) the layer's own
    feature ids in the field ``source_fid`` (``source_fid_1`` where the layer has one of its own, an
    earlier SRL output's), where the copy numbered them anew: a shapefile's selected
    features 1, 2, 4, 5 came out as 1, 2, 3, 4, and a join back matched other features (an audit). The
    copy holds the source's features in the order the source gives them, as listed here."""
    from osgeo import ogr

    from srl_core.vector.points import SOURCE_FID_FIELD, free_name

    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setNoAttributes()
    ids = [feature.id() for feature in source.getFeatures(request)]
    ds = ogr.Open(copy, 1)
    if ds is None:
        return
    lyr = ds.GetLayerByName(layer_name) if layer_name else ds.GetLayer(0)
    copied = [feature.GetFID() for feature in lyr]
    names = [lyr.GetLayerDefn().GetFieldDefn(i).GetName() for i in range(lyr.GetLayerDefn().GetFieldCount())]
    if copied == ids or len(copied) != len(ids):
        return  # the ids came through (a GeoPackage's), or the copy is not what was listed: nothing to add
    taken = {name.lower() for name in names}
    field = SOURCE_FID_FIELD if SOURCE_FID_FIELD not in taken else free_name(SOURCE_FID_FIELD, taken)
    lyr.CreateField(ogr.FieldDefn(field, ogr.OFTInteger64))
    lyr.StartTransaction()
    for fid, original in zip(copied, ids):
        feature = lyr.GetFeature(fid)
        feature.SetField(field, int(original))
        lyr.SetFeature(feature)
    lyr.CommitTransaction()
    ds = None


def require_stored_field(layer: QgsVectorLayer, field: str, path: str) -> None:
    """Refuse a joined or virtual (expression) field read from the layer's own file, which lacks it:
    srl_core said only that the file has no such field, naming the file's fields."""
    index = layer.fields().indexOf(field)
    origin = layer.fields().fieldOrigin(index) if index >= 0 else None
    if origin in (QgsFields.OriginJoin, QgsFields.OriginExpression) and reads_file(layer, path):
        kind = "joined" if origin == QgsFields.OriginJoin else "virtual"
        raise InputError(
            f"Field '{field}' of layer '{layer.name()}' is a {kind} field, which is not in the layer's "
            "file that SRL reads: export the layer (Export > Save Features As) and use the copy."
        )


def reads_file(layer: QgsMapLayer, path: str) -> bool:
    """True when ``layer`` reads the file ``path`` (its own file, not a copy Processing wrote). Layers
    without a file (memory, database) never do: a memory layer's long source is no path to test."""
    own = decoded_source(layer).get("path") or ""
    try:
        return bool(own) and os.path.exists(own) and os.path.exists(path) and os.path.samefile(own, path)
    except OSError:  # a path the system cannot take ('File name too long')
        return False


def add_embeddings_input(alg) -> None:
    """INPUT: an embedding raster or embedding point layer (the analyses' common input)."""
    alg.addParameter(
        QgsProcessingParameterMapLayer(
            "INPUT",
            "Embeddings (embedding raster or embedding points)",
            types=[QgsProcessing.TypeRaster, QgsProcessing.TypeVectorPoint],
        )
    )


def embeddings_layer(alg, parameters, context, purpose: str) -> QgsMapLayer:
    """The INPUT layer, refused unless it is a raster or a point layer (``purpose`` names the tool)."""
    layer = parameter_layer(alg, parameters, "INPUT", context)
    if not (is_raster(layer) or is_points(layer)):
        raise InputError(f"{purpose} needs an embedding raster or an embedding point layer.")
    return layer
