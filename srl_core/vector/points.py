"""Point layers in and embedding points out.

``read_points`` turns any OGR point layer (GeoPackage, shapefile, GeoJSON, ...) or a CSV with
x/y columns into a :class:`PointTable`: coordinates in the source CRS, the same points as
(lon, lat) WGS84 for the location engine, feature ids and attribute columns. Columns are read
through GDAL's Arrow stream (GDAL >= 3.6), so wide embedding layers read fast.

``write_points`` writes the embedding points format of :mod:`srl_core.embedding_format`: a
GeoPackage with the input attributes, float fields ``emb_000`` ... and layer metadata
``SRL_KIND`` / ``SRL_MODEL_ID``, written atomically so a failed run leaves nothing behind.
"""

from __future__ import annotations

import codecs
import datetime
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np
import shapely
from osgeo import gdal, ogr, osr

from ..atomic import atomic_output, release_error_frames
from ..embedding_format import (
    KIND_KEY,
    LOCATION_KIND,
    MODEL_ID_KEY,
    SIZE_KEY,
    embedding_fields_in,
    field_names,
    is_embedding_field,
)
from ..errors import InputError, OutputError
from ..gdal_exceptions import gdal_exceptions
from ..names import LAYER_SUFFIX, QUALITY_WARNING_KEY, RECIPE_KEYS, VALID_FIELD, split_layer
from ..progress import Progress, ensure_progress
from .crs import CRSLike, layer_crs, map_coordinates, spatial_reference, to_lonlat
from .text_columns import typed_column

PathLike = Union[str, os.PathLike]
Column = Union[np.ndarray, list]

# Column names tried, in order, when a CSV has no geometry and no x/y field was named.
X_CANDIDATES = ("x", "lon", "long", "longitude", "lng", "decimallongitude", "easting", "point_x")
Y_CANDIDATES = ("y", "lat", "latitude", "decimallatitude", "northing", "point_y")
LONGITUDE_FIELDS = ("lon", "long", "longitude", "lng", "decimallongitude")
LATITUDE_FIELDS = ("lat", "latitude", "decimallatitude")
DEGREE_FIELDS = LONGITUDE_FIELDS + LATITUDE_FIELDS
_POINT_TYPES = (ogr.wkbPoint, ogr.wkbMultiPoint)
_NUMERIC_FIELDS = (ogr.OFTReal, ogr.OFTInteger, ogr.OFTInteger64)

# The GeoPackage's own columns in what write_points writes: no attribute may take these names.
_FID_COLUMN = "fid"
_GEOMETRY_COLUMN = "geom"
# Words of the OGR/SQLite errors a full disk or a refused write gives.
_SPACE_OR_PERMISSION = re.compile(r"disk|full|space|permission|denied|read-?only|i/o", re.IGNORECASE)


@dataclass
class PointTable:
    """Points of one layer, in file order.

    ``xy``: (N, 2) float64 in the source CRS (``crs_wkt``); ``lonlat``: the same points as
    (lon, lat) WGS84 degrees (none in a local CRS); ``fids``: (N,) int64 feature ids;
    ``attributes``: column name -> numeric ndarray (float with NaN for nulls, int, bool) or list
    with None for nulls (strings, dates and datetimes, and integers or booleans with nulls: exact,
    and written back as such).
    ``z``: (N,) heights of 3D points (NaN where a point has none), None for a 2D layer.
    ``coordinate_fields``: the (x, y) columns the points were placed by, for a table without geometry.
    """

    xy: np.ndarray
    crs_wkt: str
    fids: np.ndarray
    attributes: dict[str, Column] = field(default_factory=dict)
    layer_name: str = ""
    z: Optional[np.ndarray] = None
    coordinate_fields: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.xy)

    @cached_property
    def lonlat(self) -> np.ndarray:
        """The points as (lon, lat) WGS84 degrees, computed when first asked (``read_points`` asks at
        once, except for a local CRS). Points in a local (engineering) CRS have none, and sampling a
        raster of that CRS at them needs none: it failed until 28 Nov 2026, when every layer was
        converted on reading."""
        return to_lonlat(self.xy, self.crs_wkt, self.fids)

    @property
    def xyz(self) -> np.ndarray:
        """(N, 3) with the heights of a 3D layer, else ``xy``: what outputs copy, so Z is not lost."""
        return self.xy if self.z is None else np.column_stack([self.xy, self.z])


@gdal_exceptions()
def _open(path: PathLike) -> gdal.Dataset:
    path = str(path)
    if not Path(path).exists():
        raise InputError(f"Vector file not found: {path}")
    options = []  # a CSV's text is typed by text_columns, which loses no identifier (GDAL's guess did)
    if path.lower().endswith(".shp") and _dbf_not_utf8(Path(path).with_suffix(".dbf")):
        options = ["ENCODING=ISO-8859-1"]
    try:
        ds = gdal.OpenEx(path, gdal.OF_VECTOR, open_options=options)
    except RuntimeError as exc:
        raise InputError(f"Cannot open {path} as a vector layer: {exc}") from exc
    if ds.GetDriver().ShortName == "CSV" and Path(path).is_file() and not _utf8(path):  # not a folder of CSVs
        # GDAL passes a CSV's bytes on undecoded: a Latin-1 header ('Größe') crashed the process in the
        # Arrow reader, and Latin-1 values became '\ufffd' (two classes merged into one), unsaid
        raise InputError(f"{path} is not UTF-8 text (a CSV saved as Latin-1 or 'ANSI', as Excel does): save "
                         "it as 'CSV UTF-8' and run again.")
    return ds


def _utf8(path: PathLike, skip: int = 0, chunk: int = 1 << 20) -> bool:
    """Whether the bytes of ``path`` after the first ``skip`` are UTF-8 text, read a block at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as file:
        file.seek(skip)
        try:
            while block := file.read(chunk):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _dbf_not_utf8(dbf: Path) -> bool:
    """True for a shapefile table that declares no encoding (no .cpg, no code page byte) and is not
    UTF-8: an older shapefile in Latin-1, say. GDAL then passes its bytes on undecoded, and its Arrow
    reader crashed the process on a field name such as 'Größe' (GDAL 3.6); values came out as '\ufffd'.
    Such a table is read as Latin-1 (every byte a character; what Windows tools wrote)."""
    if not dbf.exists() or dbf.with_suffix(".cpg").exists() or dbf.with_suffix(".CPG").exists():
        return False
    with open(dbf, "rb") as table:
        head = table.read(32)
        if len(head) < 32 or head[29] != 0:  # the language driver byte names a code page GDAL honours
            return False
        header_size = int.from_bytes(head[8:10], "little")
        fields = table.read(max(0, header_size - 32))
    names = b"".join(fields[i:i + 11].split(b"\0")[0] for i in range(0, len(fields) - 31, 32))
    try:
        names.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return not _utf8(dbf, skip=max(32, header_size))


@gdal_exceptions()
def open_layer(path: PathLike, layer: Optional[Union[str, int]]) -> tuple[gdal.Dataset, ogr.Layer]:
    """``(dataset, layer)`` of ``path``, which may name its layer and filter as QGIS does
    (``FILE|layername=LAYER|subset=FILTER``, see :func:`srl_core.names.split_layer`): the layer an
    analyst chose in a file of several, and only the features QGIS shows of it (reading the file's
    first layer, unfiltered, gave results for other points). ``layer`` overrides the spec's layer.
    The dataset is returned too: the layer is only valid while it lives."""
    file, named, subset = split_layer(str(path))
    ds = _open(file)
    lyr = _layer(ds, layer if layer is not None else (named or None), file)
    if subset:
        try:
            lyr.SetAttributeFilter(subset)
        except RuntimeError as exc:
            raise InputError(f"The filter of layer '{lyr.GetName()}' of {file} cannot be applied "
                             f"({subset}): {exc}") from exc
    return ds, lyr


def _layer(ds: gdal.Dataset, layer: Optional[Union[str, int]], path: PathLike) -> ogr.Layer:
    count = ds.GetLayerCount()
    if count == 0:
        raise InputError(f"{path} has no layers.")
    if layer is None:
        if count > 1:  # as for masks: the first layer was taken silently, whichever one was meant
            names = [ds.GetLayer(i).GetName() for i in range(count)]
            raise InputError(f"{path} holds {count} layers ({', '.join(names)}): name the one to use, e.g. "
                             f"{path}{LAYER_SUFFIX}{names[0]}.")
        return ds.GetLayer(0)
    found = ds.GetLayerByIndex(layer) if isinstance(layer, int) else ds.GetLayerByName(str(layer))
    if found is None:
        names = ", ".join(ds.GetLayer(i).GetName() for i in range(count))
        raise InputError(f"{path} has no layer '{layer}' (layers: {names}).")
    return found


def _column(values: np.ndarray) -> Column:
    """One Arrow column as a plain array: NaN for null reals, lists for text, dates and nullable ints/bools.

    Integers with nulls stay Python ints (not floats, which round 64-bit ids and would be written back
    as reals); dates and datetimes become ``datetime`` objects.
    """
    mask = np.ma.getmaskarray(values) if np.ma.isMaskedArray(values) else None
    data = np.ma.getdata(values)
    if data.dtype.kind in "SUO":
        text = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in data.tolist()]
        return [None if mask is not None and mask[i] else t for i, t in enumerate(text)]
    if data.dtype.kind in "biu" and mask is not None and mask.any():
        return [None if m else v for v, m in zip(data.tolist(), mask)]
    if data.dtype.kind == "f" and mask is not None and mask.any():
        out = data.astype(np.float64)
        out[mask] = np.nan
        return out
    if data.dtype.kind in "iufb":
        return np.asarray(data)
    return [None if mask is not None and mask[i] else v for i, v in enumerate(data.tolist())]


# GDAL 3.6's GeoPackage/FlatGeobuf Arrow readers fail on layers with more than ~120 fields
# (SQLite's function argument limit); the generic implementation has no such limit.
_STREAM_OPTIONS = ("OGR_GPKG_STREAM_BASE_IMPL", "OGR_FLATGEOBUF_STREAM_BASE_IMPL")
_BATCH_BYTES = 8 << 20


def _read_columns(
    lyr: ogr.Layer, include_fid: bool = True, packed: Sequence[str] = ()
) -> tuple[dict[str, list], list[np.ndarray]]:
    """All columns of a layer (geometry as WKB, and the FID unless not ``include_fid``) through GDAL's
    Arrow stream, batch by batch, and the numeric fields named in ``packed`` as float32 blocks
    (rows x len(packed), NaN for nulls), one per batch, instead of as columns.

    Packing each batch as it comes, in small batches, keeps reading a wide embedding layer at about
    twice its float32 size: kept as columns, the Arrow stream's float64 batches, their joined columns
    and the float32 copy made of them cost 4.3 times (100,000 x 256, measured 28 Nov 2026)."""
    # this thread's options only: QGIS and other plugins may read GeoPackages at the same time
    saved = {key: gdal.GetThreadLocalConfigOption(key, None) for key in _STREAM_OPTIONS}
    for key in _STREAM_OPTIONS:
        gdal.SetThreadLocalConfigOption(key, "YES")
    try:
        lyr.ResetReading()
        batches: dict[str, list] = {}
        blocks: list[np.ndarray] = []
        # batches of about 8 MiB of values: GDAL's heap kept about what its largest batch took
        # (283 MiB after 100,000 x 256 in batches of 65,536 rows, 35 MiB in batches of 4,096)
        batch_rows = (_BATCH_BYTES // 8) // (lyr.GetLayerDefn().GetFieldCount() + 2)
        options = [f"MAX_FEATURES_IN_BATCH={min(65536, max(256, batch_rows))}",
                   f"INCLUDE_FID={'YES' if include_fid else 'NO'}"]
        for batch in lyr.GetArrowStreamAsNumPy(options):
            rows = len(next(iter(batch.values()))) if batch else 0
            if rows == 0:
                break
            if packed:
                block = np.empty((rows, len(packed)), np.float32)
                for j, name in enumerate(packed):
                    block[:, j] = np.ma.filled(np.ma.asarray(batch.pop(name), dtype=np.float32), np.nan)
                blocks.append(block)
            for name, values in batch.items():
                # a column kept as read would keep its whole batch alive, the packed fields' float64 too
                batches.setdefault(name, []).append(values.copy() if packed else values)
        return batches, blocks
    finally:
        for key, value in saved.items():
            gdal.SetThreadLocalConfigOption(key, value)


def _field_by_feature(lyr: ogr.Layer, index: int) -> Column:
    """One field's values read feature by feature: an array of numbers, else a list (None for nulls)."""
    lyr.ResetReading()
    values = [feature.GetField(index) if feature.IsFieldSetAndNotNull(index) else None for feature in lyr]
    field_type = lyr.GetLayerDefn().GetFieldDefn(index).GetType()
    numeric = field_type in _NUMERIC_FIELDS
    return np.asarray(values) if numeric and None not in values else values


def _dates_by_feature(lyr: ogr.Layer, columns: dict[str, Column]) -> dict[str, list]:
    """The layer's Date and DateTime fields read feature by feature. GDAL 3.6's generic Arrow stream
    truncates a date before 1970 to the next day (1969-12-31 read as 1970-01-01, 1850-06-15 as 1850-06-16,
    on every SRL step again; a genuine 1970-01-01 reads alike, so the column cannot be mended after the
    read), and gives date-times without their time zone (12:00-05:00 came back as 12:00, unsaid)."""
    defn = lyr.GetLayerDefn()
    described = [(i, defn.GetFieldDefn(i)) for i in range(defn.GetFieldCount())]
    fields = [(i, d.GetName(), d.GetType()) for i, d in described  # looked up once, not per feature
              if d.GetType() in (ogr.OFTDate, ogr.OFTDateTime) and d.GetName() in columns]
    if not fields:
        return {}
    read: dict[str, list] = {name: [] for _, name, _ in fields}
    lyr.ResetReading()
    for row, feature in enumerate(lyr):  # the Arrow stream's order: the layer's own
        for i, name, field_type in fields:
            value = None
            if feature.IsFieldSetAndNotNull(i):
                try:
                    value = _date_value(feature.GetFieldAsDateTime(i), field_type)
                except ValueError:  # no such date (February 30, a leap second): as the Arrow stream read it
                    value = columns[name][row]
            read[name].append(value)
    return read


def _date_value(parts: list, field_type: int) -> Union[datetime.date, datetime.datetime]:
    """OGR's (year, month, day, hour, minute, second, tz flag) as a date, or a date-time with its time zone
    where OGR knows one (flag 0: unknown, 1: local time; 100: UTC, 100 + n: n quarter hours east of it,
    n negative to the west)."""
    year, month, day, hour, minute, second, flag = parts
    if field_type == ogr.OFTDate:
        return datetime.date(year, month, day)
    whole = int(second)
    zone = datetime.timezone(datetime.timedelta(minutes=15 * (flag - 100))) if flag > 1 else None
    micro = min(999_999, round((second - whole) * 1e6))
    return datetime.datetime(year, month, day, hour, minute, whole, micro, zone)


def _concat(parts: list) -> np.ndarray:
    if any(np.ma.isMaskedArray(p) for p in parts):
        return np.ma.concatenate(parts)
    return np.concatenate(parts)


def _geometry_xy(wkb: np.ndarray, path: PathLike, fids: np.ndarray
                 ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """``(xy, z)`` of single-point geometries (a multipoint of one point counts); z None when none has Z."""
    mask = np.ma.getmaskarray(wkb) if np.ma.isMaskedArray(wkb) else np.zeros(len(wkb), bool)
    data = np.ma.getdata(wkb)
    blobs = np.array([None if m else bytes(b) for b, m in zip(data, mask)], dtype=object)
    geoms = shapely.from_wkb(blobs)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InputError(f"{path}: feature {fids[i]} (row {i}) has no geometry.")
    types = shapely.get_type_id(geoms)
    multi = types == shapely.GeometryType.MULTIPOINT
    if multi.any():
        counts = shapely.get_num_geometries(geoms)
        several = multi & (counts != 1)
        if several.any():
            i = int(np.flatnonzero(several)[0])
            raise InputError(
                f"{path}: feature {fids[i]} is a multipoint with {counts[i]} points; "
                "split multipart features into single points first."
            )
        geoms = np.where(multi, shapely.get_geometry(geoms, 0), geoms)
        types = shapely.get_type_id(geoms)
    not_point = types != shapely.GeometryType.POINT
    if not_point.any():
        i = int(np.flatnonzero(not_point)[0])
        kind = shapely.GeometryType(types[i]).name.lower()
        raise InputError(
            f"{path}: feature {fids[i]} is a {kind}, not a point. Location embeddings need a point "
            "layer (use centroids for polygons)."
        )
    xy = np.column_stack([shapely.get_x(geoms), shapely.get_y(geoms)]).astype(np.float64)
    return xy, (shapely.get_z(geoms).astype(np.float64) if shapely.has_z(geoms).any() else None)


def _pick_field(names: list[str], wanted: Optional[str], candidates: tuple, axis: str, path,
                other_axis: tuple[str, ...]) -> str:
    """The field for ``axis``: ``wanted``, else the first of ``candidates``. A wanted field named as the
    other axis (x = 'lat') is refused: swapped, the points were placed off Somalia for Belgium, unsaid."""
    if wanted is not None:
        if wanted not in names:
            raise InputError(f"{path}: no field '{wanted}' for {axis} (fields: {', '.join(names)}).")
        if wanted.lower() in other_axis:
            raise InputError(f"{path}: the field '{wanted}' was given for {axis}, but its name says the "
                             "other axis: swap the x and y fields.")
        return wanted
    lower = {n.lower(): n for n in names}
    for c in candidates:
        if c in lower:
            return lower[c]
    raise InputError(
        f"{path} has no point geometry and no {axis} column was found among: {', '.join(names)}. "
        f"Name the {axis} field explicitly."
    )


def _field_xy(columns: dict[str, Column], x_name: str, y_name: str, path) -> np.ndarray:
    def numeric(name: str) -> np.ndarray:
        col = columns[name]
        try:
            return np.asarray([np.nan if v is None else v for v in col] if isinstance(col, list) else col,
                              dtype=np.float64)
        except (TypeError, ValueError) as exc:  # TypeError: dates
            raise InputError(f"{path}: field '{name}' does not hold numbers ({exc}).") from exc

    xy = np.column_stack([numeric(x_name), numeric(y_name)])
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: row {i} has no valid coordinates in '{x_name}'/'{y_name}'.")
    return xy


def read_points(
    path: PathLike,
    layer: Optional[Union[str, int]] = None,
    x_field: Optional[str] = None,
    y_field: Optional[str] = None,
    crs: Optional[CRSLike] = None,
    assume_degrees: bool = False,
) -> PointTable:
    """Read a point layer, or a table with coordinate columns, into a :class:`PointTable`.

    Coordinates come from ``x_field``/``y_field`` when given (or, for a table without geometry,
    from columns named x/lon/longitude and y/lat/latitude), else from the point geometries.
    ``crs`` overrides the layer's CRS; a table without one is taken as EPSG:4326 when its coordinate
    fields are named as degrees (lon/lat, longitude/latitude...), and refused when they are x/y or
    easting/northing (metres read as degrees put the points elsewhere, silently), unless
    ``assume_degrees`` (the analyses of an embedding table, which copy its coordinates through).
    """
    return _read_table(path, layer, x_field, y_field, crs, assume_degrees)[0]


def _read_table(
    path: PathLike,
    layer: Optional[Union[str, int]],
    x_field: Optional[str],
    y_field: Optional[str],
    crs: Optional[CRSLike],
    assume_degrees: bool,
    packed: Sequence[str] = (),
) -> tuple[PointTable, np.ndarray]:
    """:func:`read_points`, with the numeric fields named in ``packed`` returned apart as one float32
    (N, len(packed)) array (NaN for nulls) instead of among the table's attributes."""
    if (x_field is None) != (y_field is None):
        raise InputError("Give both the x field and the y field, or neither.")
    ds, lyr = open_layer(path, layer)
    if lyr.GetFeatureCount() == 0:
        raise InputError(f"{path}: layer '{lyr.GetName()}' has no features.")
    defn = lyr.GetLayerDefn()
    fid_name = lyr.GetFIDColumn() or "OGC_FID"
    geom_name = lyr.GetGeometryColumn() or "wkb_geometry"
    # a column of the table's own named as the Arrow stream names the FID or the geometry (a CSV that
    # GDAL exported has OGC_FID) took their place, and was lost as an attribute: such are read by feature
    fid_is_a_field = defn.GetFieldIndex(fid_name) >= 0
    has_geometry_field = defn.GetGeomFieldCount() > 0
    raw, blocks = _read_columns(lyr, include_fid=not fid_is_a_field, packed=packed)
    packed_values = np.concatenate(blocks) if blocks else np.empty((0, len(packed)), np.float32)
    del blocks
    if fid_is_a_field:
        lyr.ResetReading()
        fids: Optional[np.ndarray] = np.array([feature.GetFID() for feature in lyr], dtype=np.int64)
    else:
        fids = np.asarray(_concat(raw.pop(fid_name)), dtype=np.int64) if fid_name in raw else None
    wkb = _concat(raw.pop(geom_name)) if geom_name in raw and has_geometry_field else None
    # each column's batches freed as it is joined: not every column twice at once (embeddings: D columns)
    columns = {name: _column(_concat(raw.pop(name))) for name in list(raw)}
    if has_geometry_field and defn.GetFieldIndex(geom_name) >= 0:
        columns[geom_name] = _field_by_feature(lyr, defn.GetFieldIndex(geom_name))
        in_layer = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
        columns = {name: columns[name] for name in in_layer if name in columns}  # in the layer's order
    columns.update(_dates_by_feature(lyr, columns))
    if ds.GetDriver().ShortName == "CSV":
        columns = {name: typed_column(col) if isinstance(col, list) else col for name, col in columns.items()}
    n = len(next(iter(columns.values()))) if columns else len(wkb if wkb is not None else packed_values)
    if n == 0:
        raise InputError(f"{path}: layer '{lyr.GetName()}' has no features.")
    if fids is None:
        fids = np.arange(n, dtype=np.int64)
    has_geometry = wkb is not None and lyr.GetGeomType() != ogr.wkbNone
    if x_field is None and has_geometry:
        if ogr.GT_Flatten(lyr.GetGeomType()) not in (*_POINT_TYPES, ogr.wkbUnknown):
            kind = ogr.GeometryTypeToName(lyr.GetGeomType())
            raise InputError(
                f"{path}: layer '{lyr.GetName()}' holds {kind} geometries, not points. Location "
                "embeddings need a point layer (use centroids for polygons)."
            )
        xy, z = _geometry_xy(wkb, path, fids)
        placed_by: tuple[str, ...] = ()
    else:
        z = None
        names = list(columns)
        x_name = _pick_field(names, x_field, X_CANDIDATES, "x (longitude/easting)", path, LATITUDE_FIELDS)
        y_name = _pick_field(names, y_field, Y_CANDIDATES, "y (latitude/northing)", path, LONGITUDE_FIELDS)
        xy = _field_xy(columns, x_name, y_name, path)
        placed_by = (x_name, y_name)
    layer_srs: Optional[osr.SpatialReference] = layer_crs(lyr.GetSpatialRef()) if x_field is None else None
    if crs is not None:
        srs = spatial_reference(crs)
    elif layer_srs is not None:
        srs = spatial_reference(layer_srs)
    elif has_geometry and x_field is None:
        raise InputError(
            f"{path}: layer '{lyr.GetName()}' has no coordinate reference system; give its CRS."
        )
    elif assume_degrees or all(name.lower() in DEGREE_FIELDS for name in placed_by):
        srs = spatial_reference(4326)
    else:  # x/y or easting/northing: metres of some plot grid or national CRS read as degrees looked fine
        raise InputError(
            f"{path}: the points' coordinates come from the fields '{placed_by[0]}' and '{placed_by[1]}' and "
            "the table gives no coordinate reference system: give it (crs=, or --crs EPSG:4326 for degrees, "
            "or the CRS the values are in)."
        )
    table = PointTable(
        xy=map_coordinates(xy),
        crs_wkt=srs.ExportToWkt(),
        fids=fids,
        attributes=columns,
        layer_name=lyr.GetName(),
        z=z,
        coordinate_fields=placed_by,
    )
    if not srs.IsLocal():
        _ = table.lonlat  # a point no lon/lat can hold (latitude 91) is refused on reading, naming its row
    return table, packed_values


def _list_type(values: list) -> tuple[int, int]:
    """(OGR field type, subtype) of a list column from its values' Python types, so nullable
    integers, booleans, dates and datetimes read by :func:`read_points` are written back as such."""
    present = [v for v in values if v is not None]
    if not present:
        return ogr.OFTString, ogr.OFSTNone
    if all(isinstance(v, bool) for v in present):
        return ogr.OFTInteger, ogr.OFSTBoolean
    if all(isinstance(v, int) for v in present):
        return ogr.OFTInteger64, ogr.OFSTNone
    if all(isinstance(v, datetime.datetime) for v in present):  # before date: a datetime is a date
        return ogr.OFTDateTime, ogr.OFSTNone
    if all(isinstance(v, datetime.date) for v in present):
        return ogr.OFTDate, ogr.OFSTNone
    return ogr.OFTString, ogr.OFSTNone


def _ogr_type(values: Column) -> tuple[int, int]:
    """(OGR field type, subtype) for a column."""
    if isinstance(values, np.ndarray):
        kind = values.dtype.kind
        if kind == "b":
            return ogr.OFTInteger, ogr.OFSTBoolean
        if kind in "iu":  # 32-bit integers (an Integer field as read) stay Integer: all became Integer64
            fits = values.dtype.itemsize < 4 or (values.dtype.itemsize == 4 and kind == "i")
            return (ogr.OFTInteger if fits else ogr.OFTInteger64), ogr.OFSTNone
        if kind == "f":
            return ogr.OFTReal, ogr.OFSTNone
    return _list_type(values) if isinstance(values, list) else (ogr.OFTString, ogr.OFSTNone)


def _as_column(name: str, values: Any, n: int) -> Column:
    col = values if isinstance(values, (np.ndarray, list)) else list(values)
    if len(col) != n:
        raise InputError(f"Attribute '{name}' has {len(col)} values for {n} points.")
    return col


def _setter(feature_defn: ogr.FeatureDefn, idx: int, values: Column):
    """A function (feature, row) -> None that writes one column's value, nulls included."""
    ftype = feature_defn.GetFieldDefn(idx).GetType()
    if ftype == ogr.OFTReal:
        arr = np.asarray(values, dtype=np.float64)

        def set_real(feat: ogr.Feature, row: int) -> None:
            v = arr[row]
            if v == v:  # NaN stays null
                feat.SetField(idx, float(v))

        return set_real
    if ftype in (ogr.OFTInteger, ogr.OFTInteger64) and isinstance(values, np.ndarray):
        ints = np.asarray(values, dtype=np.int64)
        if np.ma.is_masked(values):  # masked rows (e.g. points an analysis gave no class) stay null
            empty = np.ma.getmaskarray(values)
            return lambda feat, row: None if empty[row] else feat.SetField(idx, int(ints[row]))
        return lambda feat, row: feat.SetField(idx, int(ints[row]))

    def set_value(feat: ogr.Feature, row: int) -> None:
        v = values[row]
        if v is None:
            return
        if ftype in (ogr.OFTInteger, ogr.OFTInteger64):
            feat.SetField(idx, int(v))
        elif ftype in (ogr.OFTDate, ogr.OFTDateTime):
            feat.SetField(idx, v.isoformat())  # OGR parses ISO 8601
        else:
            feat.SetField(idx, str(v))

    return set_value


def free_name(name: str, taken: set[str]) -> str:
    """``name_1``, ``name_2``, ...: the first not in ``taken`` (lower-case names)."""
    i = 1
    while f"{name}_{i}".lower() in taken:
        i += 1
    return f"{name}_{i}"


def _output_columns(
    attributes: Mapping[str, Column], extra_fields: Mapping[str, Column], emb_names: list[str], n: int
) -> dict[str, Column]:
    """The attributes, then the extra fields, under names that fit one GeoPackage table.

    The added fields (``extra_fields``, embeddings) keep their names: SRL's code reads them by name.
    An input attribute that is an older copy of an added field is dropped: one named exactly as an
    extra field (e.g. ``score`` of a top-k layer ranked again), and, when embeddings are written,
    the input's own embeddings (:func:`_old_embedding_fields`). An attribute whose name another field
    also has but for its case (SQLite's column names are case-insensitive), that is named ``fid`` or
    ``geom`` (the table's FID and geometry columns), or that would be read as an embedding dimension
    beside the new ones (``emb_2019``), is kept under a free name, ``name_1``, ``name_2``, ...; of
    attributes that differ only by case, the last keeps its name, as the analyses add their fields
    (cluster, r, g, b) last.
    """
    added = [*extra_fields, *emb_names]
    taken = {name.lower() for name in added}
    if len(taken) != len(added):
        raise InputError(f"Extra fields clash with each other or the embedding fields: {', '.join(added)}.")
    stale = _old_embedding_fields(attributes) if emb_names else set()
    kept = {
        name: _as_column(name, values, n)
        for name, values in attributes.items()
        if name not in extra_fields and name not in stale
    }
    taken |= {_FID_COLUMN, _GEOMETRY_COLUMN}
    clashing = set()
    for name in reversed(list(kept)):
        # a field of the analyst's read as an embedding dimension (emb_2019) would make the output unreadable
        if name.lower() in taken or (emb_names and is_embedding_field(name)):
            clashing.add(name)
        taken.add(name.lower())
    columns: dict[str, Column] = {}
    for name, values in kept.items():
        new_name = free_name(name, taken) if name in clashing else name
        taken.add(new_name.lower())
        columns[new_name] = values
    for name, values in extra_fields.items():
        columns[name] = _as_column(name, values, n)
    return columns


def _old_embedding_fields(attributes: Mapping[str, Column]) -> set[str]:
    """An input's own embeddings, which new ones replace: the numeric fields emb_000, emb_001, ... up to
    the first missing number (as SRL writes them), and SRL's validity flag. Any other field matching
    ``emb_`` is the analyst's (a text field 'Emb_1', a value 'emb_2019'): those were dropped too."""
    by_index: dict[int, list[str]] = {}
    for name, values in attributes.items():  # EMB_000 of a shapefile too
        if is_embedding_field(name.lower()) and isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            by_index.setdefault(int(name[len("emb_"):]), []).append(name)
    stale = {VALID_FIELD} & set(attributes)
    index = 0
    while index in by_index:
        stale.update(by_index[index])
        index += 1
    return stale


SOURCE_FID_FIELD = "source_fid"  # the input's feature ids, where the output cannot keep them as its own


def _output_fids(fids: Optional[np.ndarray], n: int) -> Optional[np.ndarray]:
    """The input's feature ids to keep in the output, or None to number the features 1..N.

    Kept when they are valid GeoPackage FIDs (>= 1) and increasing: so a join on fid finds the
    input's feature, and the output, read in FID order, keeps the input's row order.
    """
    if fids is None:
        return None
    fids = np.asarray(fids, dtype=np.int64)
    if fids.shape != (n,):
        raise InputError(f"Feature ids must be (N={n},), got {fids.shape}.")
    if n and fids[0] >= 1 and bool(np.all(np.diff(fids) > 0)):
        return fids
    return None


def _point(coords: np.ndarray) -> ogr.Geometry:
    """An OGR point from (x, y) or (x, y, z); a NaN height gives a 2D point (the input had none)."""
    if len(coords) == 3 and np.isfinite(coords[2]):
        geom = ogr.Geometry(ogr.wkbPoint25D)
        geom.AddPoint(float(coords[0]), float(coords[1]), float(coords[2]))
    else:
        geom = ogr.Geometry(ogr.wkbPoint)
        geom.AddPoint_2D(float(coords[0]), float(coords[1]))
    return geom


def _fill_layer(
    ds: ogr.DataSource,
    name: str,
    srs: Optional[osr.SpatialReference],
    xy: np.ndarray,
    fids: Optional[np.ndarray],
    columns: Mapping[str, Column],
    emb_names: list[str],
    embeddings: Optional[np.ndarray],
    metadata: Mapping[str, str],
    progress,
) -> None:
    """Create the point layer, its fields and metadata, and write every feature in one transaction."""
    options = [f"FID={_FID_COLUMN}", f"GEOMETRY_NAME={_GEOMETRY_COLUMN}"]
    geom_type = ogr.wkbPoint25D if xy.shape[1] == 3 else ogr.wkbPoint
    lyr = ds.CreateLayer(name, srs=srs, geom_type=geom_type, options=options)
    for col_name, values in columns.items():
        ftype, subtype = _ogr_type(values)
        fd = ogr.FieldDefn(col_name, ftype)
        fd.SetSubType(subtype)
        lyr.CreateField(fd)
    for emb_name in emb_names:
        lyr.CreateField(ogr.FieldDefn(emb_name, ogr.OFTReal))
    for key, value in metadata.items():
        lyr.SetMetadataItem(key, value)
    defn = lyr.GetLayerDefn()
    setters = [_setter(defn, defn.GetFieldIndex(col_name), col) for col_name, col in columns.items()]
    emb_first = defn.GetFieldIndex(emb_names[0]) if emb_names else -1
    # no float64 copy of the whole (N, D): a float32's .tolist() gives the same doubles, row by row
    emb_ok = np.isfinite(embeddings).all(axis=1) if embeddings is not None else None
    n = len(xy)
    step = max(1, n // 100)
    ds.StartTransaction()
    for row in range(n):
        feat = ogr.Feature(defn)
        if fids is not None:
            feat.SetFID(int(fids[row]))
        feat.SetGeometryDirectly(_point(xy[row]))
        for set_value in setters:
            set_value(feat, row)
        if embeddings is not None and emb_ok[row]:
            for j, v in enumerate(embeddings[row].tolist()):
                feat.SetField(emb_first + j, v)
        lyr.CreateFeature(feat)
        if row % step == 0:
            progress.check()
            progress.report(row / n, "Writing points")
    ds.CommitTransaction()


def _write_error(target: Path, exc: RuntimeError) -> OutputError:
    """GDAL's error as an OutputError, with a hint on space and permissions where the error is about them."""
    reason = str(exc).strip().rstrip(".")
    about_space = not reason or _SPACE_OR_PERMISSION.search(reason)  # GDAL gives no reason on a full disk
    hint = " Check the free space and permissions of its folder." if about_space else ""
    return OutputError(f"Could not write {target}: {reason or 'GDAL gave no reason'}.{hint}")


def require_geopackage_path(path: PathLike) -> None:
    """Refuse a point output whose name is not a GeoPackage's: checked by the analyses before their work,
    which a name refused at the end (after a fit of minutes) threw away."""
    target = Path(path)
    if target.suffix.lower() != ".gpkg":
        raise OutputError(f"Embedding points are written as GeoPackage (.gpkg), not "
                          f"'{target.suffix or 'no extension'}': name the output {target.stem}.gpkg.")


@gdal_exceptions()
def write_points(
    path: PathLike,
    xy: np.ndarray,
    crs_wkt: str,
    attributes: Optional[Mapping[str, Column]] = None,
    embeddings: Optional[np.ndarray] = None,
    model_id: Optional[str] = None,
    kind: str = LOCATION_KIND,
    extra_fields: Optional[Mapping[str, Column]] = None,
    progress: Optional[Progress] = None,
    fids: Optional[np.ndarray] = None,
    warnings: Sequence[str] = (),
    metadata: Optional[Mapping[str, str]] = None,
) -> Path:
    """Write points (and optionally their embeddings) to a GeoPackage, atomically.

    Fields, in order: ``attributes``, ``extra_fields`` (e.g. a validity flag), then ``emb_000`` ..
    ``emb_{D-1}`` from ``embeddings`` (rows with NaN become nulls); attributes that clash with
    these or with the fid/geom columns are dropped or renamed (see :func:`_output_columns`).
    ``fids``: the input's feature ids, kept as the output's where they are valid (see
    :func:`_output_fids`), so joins on fid work; else written to the field ``source_fid``. With
    embeddings the layer gets the metadata items SRL_KIND, SRL_MODEL_ID and SRL_EMBEDDING_SIZE;
    ``warnings`` (the embeddings may mean nothing) go in SRL_QUALITY_WARNING, as embed-raster keeps
    its own, so that whoever opens the points later is told; ``metadata``: more items for the layer
    (how tile embeddings sampled at the points were made). Returns the path.
    """
    progress = ensure_progress(progress)
    target = Path(path)
    require_geopackage_path(target)
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] not in (2, 3):
        raise InputError(f"Point coordinates must be (N, 2), or (N, 3) with heights, got {xy.shape}.")
    n = len(xy)
    emb_names: list[str] = []
    if embeddings is not None:
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or len(embeddings) != n:
            raise InputError(f"Embeddings must be (N={n}, D), got {embeddings.shape}.")
        emb_names = field_names(embeddings.shape[1])
    out_fids = _output_fids(fids, n)
    extra = dict(extra_fields or {})
    if out_fids is None and fids is not None and SOURCE_FID_FIELD not in (attributes or {}):
        # a shapefile's fids start at 0, which a GeoPackage cannot keep: the output's 1..N were one off
        # from the input's, without a word; its own ids stay in a field to join on
        extra.setdefault(SOURCE_FID_FIELD, np.asarray(fids, dtype=np.int64))
    columns = _output_columns(attributes or {}, extra, emb_names, n)
    items = dict(metadata or {})
    if embeddings is not None:
        items.update({KIND_KEY: kind, MODEL_ID_KEY: model_id or "unknown", SIZE_KEY: str(len(emb_names))})
    if warnings:
        items[QUALITY_WARNING_KEY] = " ".join(warnings)
    srs = spatial_reference(crs_wkt) if crs_wkt else None
    with atomic_output(target) as tmp:
        try:  # a nearly full disk fails here already, with GDAL's empty RuntimeError (an audit)
            ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
        except RuntimeError as exc:
            raise _write_error(target, exc) from exc
        if ds is None:
            raise OutputError(f"Could not create {target}.")
        try:
            _fill_layer(
                ds, target.stem, srs, xy, out_fids, columns, emb_names, embeddings, items, progress
            )
        except BaseException as exc:
            # the frames of GDAL's wrappers and _fill_layer hold the dataset, its layer and features
            release_error_frames(exc)
            if isinstance(exc, RuntimeError):  # GDAL's error, e.g. the disk filled up before the commit
                raise _write_error(target, exc) from exc
            raise
        finally:
            ds = None  # closes the file before it is renamed, or removed on failure
    progress.report(1.0, "Points written")
    return target


def read_embedding_points(
    path: PathLike, layer: Optional[Union[str, int]] = None
) -> tuple[PointTable, np.ndarray, str]:
    """Read an embedding points layer: (points without the emb_ columns, float32 (N, D), model id).

    Null embedding values (masked rows) come back as NaN. The model id is the layer's
    SRL_MODEL_ID metadata item, or "unknown" for layers made by other tools.
    """
    ds, lyr = open_layer(path, layer)
    md = lyr.GetMetadata() or {}
    defn = lyr.GetLayerDefn()
    names = embedding_fields_in([defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())])
    # numeric fields packed as they are read; text ones (a CSV's) come as columns, parsed below
    numeric = ds.GetDriver().ShortName != "CSV" and all(
        defn.GetFieldDefn(defn.GetFieldIndex(name)).GetType() in _NUMERIC_FIELDS for name in names
    )
    ds = lyr = None
    table, emb = _read_table(path, layer, None, None, None, True, packed=names if numeric else ())
    if not numeric:
        emb = np.empty((len(table.xy), len(names)), np.float32)
        for j, name in enumerate(names):  # column by column: no (N, D) float64 copy beside the columns
            c = table.attributes.pop(name)
            emb[:, j] = [np.nan if v is None else v for v in c] if isinstance(c, list) else c
    return table, emb, md.get(MODEL_ID_KEY, "unknown")


class EmbeddingOrigin(NamedTuple):
    """What an analysis output copying a layer's embeddings keeps of that layer: their SRL_KIND (tile
    embeddings sampled at points, or location embeddings, the default for layers made by other tools),
    the warning they were flagged with when made (SRL_QUALITY_WARNING, "" if none) and how they were made
    (:data:`~srl_core.names.RECIPE_KEYS`), so that the copy neither calls tile embeddings location ones nor
    loses the flag or the recipe the next analysis checks."""

    kind: str
    warning: str
    recipe: Mapping[str, str] = MappingProxyType({})

    def warnings(self, *own: Optional[str]) -> list[str]:
        """The copy's SRL_QUALITY_WARNING parts: the embeddings' flag, then the analysis's own warnings."""
        return [w for w in (self.warning, *own) if w]

    @classmethod
    def of(cls, metadata: Mapping[str, str]) -> EmbeddingOrigin:
        """The origin a layer's (or raster's) metadata records."""
        return cls(metadata.get(KIND_KEY) or LOCATION_KIND, metadata.get(QUALITY_WARNING_KEY) or "",
                   {key: metadata[key] for key in RECIPE_KEYS if metadata.get(key)})


@gdal_exceptions()
def layer_metadata(path: PathLike, layer: Optional[Union[str, int]] = None) -> dict[str, str]:
    """A point layer's metadata items (SRL's and others')."""
    ds, lyr = open_layer(path, layer)  # noqa: F841 - the layer lives as long as its dataset
    return lyr.GetMetadata() or {}


def embedding_origin(path: PathLike, layer: Optional[Union[str, int]] = None) -> EmbeddingOrigin:
    """The :class:`EmbeddingOrigin` of an embedding point layer."""
    return EmbeddingOrigin.of(layer_metadata(path, layer))
