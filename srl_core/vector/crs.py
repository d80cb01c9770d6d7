"""Coordinate reference systems: turning any CRS into (lon, lat) WGS84 and back, once, at the edge.

The public API of srl_core speaks (lon, lat) in degrees WGS84. Layers come in any CRS, so the
conversion happens here with osgeo.osr. Every SpatialReference is put in the *traditional GIS
axis order* (x = easting/longitude, y = northing/latitude): since GDAL 3 an EPSG:4326 object
otherwise expects (lat, lon), which silently swaps coordinates.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional, Union

import numpy as np
from osgeo import gdal, osr

from ..errors import InputError
from ..gdal_exceptions import gdal_exceptions
from ..names import UNDEFINED_CRS_NAMES
from .coordinates_text import crs_units, format_point

CRSLike = Union[str, int, osr.SpatialReference]
MAX_MAP_COORDINATE = 1e9  # metres, feet or degrees: the Earth is 4e7 m round
WGS84_EPSG = 4326


@contextlib.contextmanager
def _quiet_gdal() -> Iterator[None]:
    """Silence GDAL's console messages for transforms whose failures we report ourselves."""
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()


@gdal_exceptions()
def spatial_reference(crs: CRSLike) -> osr.SpatialReference:
    """An osr.SpatialReference in (x, y) = (lon, lat) axis order from EPSG code, 'EPSG:n', WKT or PROJ."""
    if isinstance(crs, osr.SpatialReference):
        srs = crs.Clone()
    else:
        srs = osr.SpatialReference()
        text = f"EPSG:{crs}" if isinstance(crs, (int, np.integer)) else str(crs).strip()
        if not text:
            raise InputError("No coordinate reference system given.")
        try:
            srs.SetFromUserInput(text)
        except RuntimeError as exc:
            raise InputError(f"Unknown coordinate reference system '{text[:80]}': {exc}") from exc
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def layer_crs(srs: Optional[osr.SpatialReference]) -> Optional[osr.SpatialReference]:
    """A layer's CRS, or None when it has none, including GeoPackage's 'undefined' ones (taken as
    WGS84 degrees, points in metres were placed silently; a mask gave PROJ noise)."""
    return None if srs is None or srs.GetName() in UNDEFINED_CRS_NAMES else srs


def wgs84() -> osr.SpatialReference:
    """WGS84 geographic, longitude first."""
    return spatial_reference(WGS84_EPSG)


def crs_to_wkt(crs: CRSLike) -> str:
    """WKT of any accepted CRS description (what layers and files store)."""
    return spatial_reference(crs).ExportToWkt()


def _as_xy(coords: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(coords, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"{what} must be an (N, 2) array, got shape {arr.shape}.")
    return arr


def first_bad_row(mask: np.ndarray) -> int:
    """Index of the first True in a boolean mask (callers only ask when there is one)."""
    return int(np.flatnonzero(mask)[0])


def invalid_lonlat(lonlat: np.ndarray) -> np.ndarray:
    """Boolean (N,) mask of rows that are not finite (lon, lat) within [-180, 180] x [-90, 90]."""
    lon, lat = lonlat[:, 0], lonlat[:, 1]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180.0) & (np.abs(lat) <= 90.0)
    return ~ok


def check_lonlat(lonlat: np.ndarray, what: str = "coordinates") -> np.ndarray:
    """Return ``lonlat`` as float64 (N, 2); raise InputError naming the first invalid row."""
    arr = _as_xy(lonlat, what)
    bad = invalid_lonlat(arr)
    if bad.any():
        i = first_bad_row(bad)
        raise InputError(
            f"Invalid {what} at row {i}: (lon, lat) = {format_point(arr[i, 0], arr[i, 1], '°')}. "
            "Longitude must be within [-180, 180] and latitude within [-90, 90] degrees (WGS84)."
        )
    return arr


@gdal_exceptions()
def _transform(xy: np.ndarray, src: osr.SpatialReference, dst: osr.SpatialReference) -> np.ndarray:
    if len(xy) == 0 or src.IsSame(dst):
        return xy.copy()
    with _quiet_gdal():
        try:
            ct = osr.CoordinateTransformation(src, dst)
        except RuntimeError as exc:
            raise InputError(f"Cannot transform between these coordinate systems: {exc}") from exc
        try:
            out = np.asarray(ct.TransformPoints(xy), dtype=np.float64)[:, :2]
        except RuntimeError:
            # Some PROJ pipelines refuse the whole batch when one point fails: go point by point.
            out = np.full_like(xy, np.inf)
            for i, (x, y) in enumerate(xy):
                with contextlib.suppress(RuntimeError):
                    out[i] = ct.TransformPoint(float(x), float(y))[:2]
    return out


def map_coordinates(xy: np.ndarray) -> np.ndarray:
    """``xy`` as float64 (N, 2); raise InputError naming the first row that is not a map coordinate
    (not a number, or beyond any CRS's range), which no transformation would make one."""
    arr = _as_xy(xy, "Point coordinates")
    # Beyond 1e9 (in any unit) a point is off the Earth; PROJ then returns made-up angles, or hangs.
    finite = np.isfinite(arr).all(axis=1) & (np.abs(arr) <= MAX_MAP_COORDINATE).all(axis=1)
    if not finite.all():
        i = first_bad_row(~finite)
        raise InputError(
            f"Point at row {i} has no valid coordinates ({arr[i, 0]}, {arr[i, 1]}): not numbers, or "
            f"beyond +-{MAX_MAP_COORDINATE:g} in any unit; check the coordinate fields and the CRS."
        )
    return arr


def to_crs(xy: np.ndarray, source: CRSLike, target: CRSLike) -> np.ndarray:
    """Transform (N, 2) coordinates from ``source`` to ``target``, float64, without going through lon/lat.

    Points and a raster in one local (engineering) CRS, a site grid with no tie to the Earth, have no
    lon/lat at all, and are the same coordinates: they are returned as they are. Raises InputError
    naming the first row that is not a number or that ``target`` cannot hold.
    """
    arr = map_coordinates(xy)
    return _held(_transform(arr, spatial_reference(source), spatial_reference(target)), arr, "({}, {})")


def _held(out: np.ndarray, arr: np.ndarray, shown: str) -> np.ndarray:
    """``out``, the transformed ``arr``; InputError naming the first point (``shown`` formats its two
    coordinates) that the target coordinate system cannot hold (PROJ gave infinity)."""
    bad = ~np.isfinite(out).all(axis=1)
    if bad.any():
        i = first_bad_row(bad)
        point = shown.format(arr[i, 0], arr[i, 1])
        raise InputError(f"Point at row {i} {point} cannot be transformed to the target coordinate system "
                         "(outside its valid area).")
    return out


def to_lonlat(xy: np.ndarray, crs: CRSLike, fids: Optional[np.ndarray] = None) -> np.ndarray:
    """Transform (N, 2) coordinates in ``crs`` to (lon, lat) WGS84 degrees, float64.

    Raises InputError naming the first row that is NaN/infinite or falls outside the CRS's
    valid area (where PROJ returns infinity) or outside [-180, 180] x [-90, 90], by its feature id
    when ``fids`` gives them (a layer's 0-based row pointed at the feature before).
    """
    arr = map_coordinates(xy)
    source = spatial_reference(crs)
    if source.IsLocal():
        raise InputError(
            f"The points are in a local coordinate system ('{source.GetName()}'), a site grid with no tie "
            "to the Earth, so they have no longitude and latitude: give them a geographic or projected CRS."
        )
    if source.IsGeographic():  # longitudes 0..360 (Pacific data): 181° is -179°, it was refused
        wrapped = (np.abs(arr[:, 0]) > 180.0) & (np.abs(arr[:, 0]) <= 360.0)
        arr = arr.copy()
        arr[wrapped, 0] = (arr[wrapped, 0] + 180.0) % 360.0 - 180.0
    lonlat = _transform(arr, source, wgs84())
    # Tiny overshoots of the antimeridian/poles from round-off are not errors.
    near = np.isfinite(lonlat) & (np.abs(lonlat) <= np.array([180.0, 90.0]) + 1e-9)
    lonlat = np.where(near, np.clip(lonlat, [-180.0, -90.0], [180.0, 90.0]), lonlat)
    bad = invalid_lonlat(lonlat)
    if bad.any():
        i = first_bad_row(bad)
        units = crs_units(source.ExportToWkt())
        which = f"Feature {fids[i]} (row {i})" if fids is not None else f"Point at row {i}"
        raise InputError(
            f"{which} {format_point(arr[i, 0], arr[i, 1], units)} cannot be converted to lon/lat "
            "(outside the valid area of its coordinate system, or wrong CRS given)."
        )
    return lonlat


def from_lonlat(lonlat: np.ndarray, crs: CRSLike) -> np.ndarray:
    """Transform (N, 2) (lon, lat) WGS84 degrees to ``crs``, float64; errors name the first bad row."""
    arr = check_lonlat(lonlat, "longitude/latitude")
    return _held(_transform(arr, wgs84(), spatial_reference(crs)), arr, "(lon {}, lat {})")


def ground_pixel_size_m(geotransform: tuple, crs_wkt: str, width: int, height: int) -> Optional[float]:
    """A pixel's size on the ground (metres, along the great circle) at the raster's centre; None without a
    CRS or where the centre has no lon/lat. A CRS's own units mislead where its projection stretches them:
    in Web Mercator one unit is 0.5 m of ground at 60° N, so 60-unit pixels were taken for 60 m and a
    scale check warned of a model's own pixel size (and kept still about half of it)."""
    if not crs_wkt:
        return None
    from ..raster.grid import pixel_to_world
    from ..sphere import chord_to_km, unit_vectors

    cx, cy = width / 2.0, height / 2.0
    xy = pixel_to_world(geotransform, [(cx, cy), (cx + 1.0, cy), (cx, cy + 1.0)])
    try:
        lonlat = to_lonlat(xy, crs_wkt)
    except InputError:
        return None
    unit = unit_vectors(lonlat[:, 0], lonlat[:, 1])
    across, down = 1000.0 * chord_to_km(np.linalg.norm(unit[1:] - unit[0], axis=1))
    return float(np.sqrt(across * down)) if across > 0 and down > 0 else None


PIXEL_SIZE_AS_STATED = 0.02  # a CRS whose units are the ground's within 2 % here keeps its own figure


def pixel_size_m(geotransform: tuple, crs_wkt: str, width: int, height: int) -> Optional[float]:
    """A pixel's size in metres as an analyst reads it: the CRS's own (pixel width x its linear unit: 98.4 US
    ft = 30 m) where the projection keeps ground distances within :data:`PIXEL_SIZE_AS_STATED` at the
    raster's centre (UTM, national grids: 30 m stays 30 m, not 29.99), else the ground size
    (:func:`ground_pixel_size_m`: Web Mercator at 60 N, degrees). None without a CRS."""
    ground = ground_pixel_size_m(geotransform, crs_wkt, width, height)
    srs = spatial_reference(crs_wkt) if crs_wkt else None
    if ground is None or srs is None or not srs.IsProjected():
        return ground
    stated = float(np.hypot(geotransform[1], geotransform[4])) * srs.GetLinearUnits()
    return stated if abs(ground / stated - 1.0) <= PIXEL_SIZE_AS_STATED else ground
