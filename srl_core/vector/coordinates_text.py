"""Coordinates in messages: fixed notation with their units, never ``6.43e+05``.

An analyst compares a coordinate in a message with the one QGIS shows in its status bar:
metres with 2 decimals (``643,512.35 m``), degrees with 6 (about 0.1 m), whatever the magnitude.
"""

from __future__ import annotations

from typing import Optional

from osgeo import osr

from ..gdal_exceptions import gdal_exceptions


@gdal_exceptions()
def crs_units(crs_wkt: Optional[str]) -> str:
    """'m', 'ft', '°' ... for a CRS given as WKT; '' when unknown."""
    if not crs_wkt:
        return ""
    srs = osr.SpatialReference()
    try:
        srs.ImportFromWkt(crs_wkt)
    except RuntimeError:
        return ""
    if srs.IsGeographic():
        return "°"
    name = (srs.GetLinearUnitsName() or "").lower()
    return {"metre": "m", "meter": "m", "foot": "ft", "us survey foot": "ft (US)"}.get(name, name)


def format_point(x: float, y: float, units: str = "") -> str:
    """'(643,512.35 m, 4,501,003.10 m)' or '(5.731234°, 50.971155°)': fixed notation with units."""
    if units == "°":
        return f"({x:.6f}°, {y:.6f}°)"
    suffix = f" {units}" if units else ""
    return f"({x:,.2f}{suffix}, {y:,.2f}{suffix})"
