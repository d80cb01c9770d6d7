"""The tile-points pipeline in srl_core: points in another CRS, tiles embedded at them, written out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from srl_core.cli import main
from srl_core.errors import InputError
from srl_core.location import embed_points_file
from srl_core.names import VALID_FIELD
from srl_core.tiles import embed_tiles_at_points
from srl_core.vector.crs import from_lonlat, to_lonlat
from srl_core.vector.points import read_embedding_points, read_points

RASTER = str(Path(__file__).resolve().parent.parent / "resources" / "sample_data" / "nc_landsat7_2000.tif")
MODEL = "tile2vec-l8-rgb-compact"


def test_sample_tiles_command_reprojects_embeds_and_writes(tmp_path):
    ds = gdal.Open(RASTER)
    gt, wkt = ds.GetGeoTransform(), ds.GetProjection()
    # Three pixel centres well inside, and one point off the raster; given as lon/lat in a CSV.
    cols_rows = np.array([[100.5, 100.5], [250.5, 300.5], [400.5, 50.5], [-500.5, 10.5]])
    xy = np.column_stack([gt[0] + cols_rows[:, 0] * gt[1], gt[3] + cols_rows[:, 1] * gt[5]])
    lonlat = to_lonlat(xy, wkt)
    csv = tmp_path / "points.csv"
    rows = [f"p{i},{lon:.9f},{lat:.9f}\n" for i, (lon, lat) in enumerate(lonlat)]
    csv.write_text("name,lon,lat\n" + "".join(rows))
    out = tmp_path / "tiles.gpkg"
    assert main(["sample-tiles", RASTER, str(csv), str(out), "--model", MODEL, "--bands", "1,2,3",
                 "--device", "cpu"]) == 0
    table, emb, model_id = read_embedding_points(str(out))
    assert model_id == MODEL and list(read_points(str(out)).attributes[VALID_FIELD]) == [1, 1, 1, 0]
    assert list(table.attributes["name"]) == ["p0", "p1", "p2", "p3"]
    expected, valid = embed_tiles_at_points(RASTER, from_lonlat(lonlat, wkt), MODEL, bands=[1, 2, 3],
                                            device="cpu")
    assert valid.tolist() == [True, True, True, False]
    np.testing.assert_array_equal(emb[:3], expected[:3])
    assert np.isnan(emb[3]).all()
    from osgeo import ogr  # how the tiles were made, as an embedding raster says (it was not said)

    written = ogr.Open(str(out))
    layer_md = written.GetLayer(0).GetMetadata()
    written = None
    assert layer_md["SRL_TILE_SIZE"] == "17" and layer_md["SRL_BANDS"] == "1,2,3"
    assert layer_md["SRL_NORMALISATION"] in ("model", "raster")


SITE_GRID = ('LOCAL_CS["site grid",UNIT["metre",1,AUTHORITY["EPSG","9001"]],'
             'AXIS["Easting",EAST],AXIS["Northing",NORTH]]')


def test_sample_tiles_on_a_site_grid_without_lon_lat(tmp_path):
    """A drone mosaic and its plots in one local site grid (no tie to the Earth): the points are placed
    by their own coordinates. Every layer used to be converted to lon/lat on reading, so this failed
    ("Cannot find coordinate operations"); location embeddings, which need lon/lat, say why not."""
    from osgeo import ogr, osr

    raster = tmp_path / "site.tif"
    gdal.Translate(str(raster), RASTER, srcWin=[150, 150, 120, 120], outputSRS=SITE_GRID,
                   outputBounds=[1000, 5000, 1000 + 120 * 30, 5000 - 120 * 30])
    srs = osr.SpatialReference()
    srs.ImportFromWkt(SITE_GRID)
    points = tmp_path / "plots.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(points))
    layer = ds.CreateLayer("plots", srs, ogr.wkbPoint)
    xy = np.array([[1000 + 30 * 20.5, 5000 - 30 * 30.5], [1000 + 30 * 90.5, 5000 - 30 * 60.5]])
    for x, y in xy:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
        layer.CreateFeature(feature)
    ds = None
    out = tmp_path / "tiles.gpkg"
    assert main(["sample-tiles", str(raster), str(points), str(out), "--model", "bandstats",
                 "--device", "cpu"]) == 0
    table, emb, _ = read_embedding_points(str(out))
    np.testing.assert_allclose(table.xy, xy)
    expected, valid = embed_tiles_at_points(str(raster), xy, "bandstats", device="cpu")
    assert valid.all()
    np.testing.assert_array_equal(emb, expected)
    with pytest.raises(InputError, match="local coordinate system .* no longitude and latitude"):
        embed_points_file(str(points), str(tmp_path / "loc.gpkg"), model="auto")
