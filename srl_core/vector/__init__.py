"""Vector I/O: point layers in any CRS to (lon, lat), and embedding points out as GeoPackage."""

from .crs import check_lonlat, crs_to_wkt, from_lonlat, spatial_reference, to_lonlat
from .points import PointTable, read_embedding_points, read_points, write_points

__all__ = [
    "PointTable",
    "check_lonlat",
    "crs_to_wkt",
    "from_lonlat",
    "read_embedding_points",
    "read_points",
    "spatial_reference",
    "to_lonlat",
    "write_points",
]
