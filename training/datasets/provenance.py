"""Where a raster written from the data packages came from, recorded in the raster itself.

A training raster given by ``package:NAME/...`` names its package in the card; one written from a
package first (the Köppen task's equal-area Blue Marble scene and its land mask, by
``evaluate-tiles --write-scene``) would otherwise be only a path in ``.cache``. The writer records
a JSON object (``source``, ``packages``) as a GDAL metadata item, which travels with the file and
through connection strings such as ``vrt://scene.tif?bands=3,2,1``; the card reads it back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from osgeo import gdal

from srl_core.gdal_exceptions import gdal_exceptions

METADATA_ITEM = "SRL_PROVENANCE"


@gdal_exceptions()
def record_provenance(path: Path, provenance: Mapping[str, Any]) -> None:
    """Store ``provenance`` (a JSON object) in the raster at ``path``, a file this run wrote."""
    ds = gdal.Open(str(path), gdal.GA_Update)
    ds.SetMetadataItem(METADATA_ITEM, json.dumps(dict(provenance), ensure_ascii=False))
    ds = None  # flushes the metadata to the file


@gdal_exceptions()
def recorded_provenance(spec: str) -> dict[str, Any]:
    """The provenance recorded in raster ``spec`` (a path or GDAL connection string), or ``{}`` when
    it records none or cannot be opened (the card then names the path alone)."""
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:  # a polygon mask or a stack of single-band files ('a.tif+b.tif') is no raster GDAL opens
        ds = gdal.Open(spec)
        text = ds.GetMetadataItem(METADATA_ITEM) if ds is not None else None
    except RuntimeError:
        text = None
    finally:
        gdal.PopErrorHandler()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
