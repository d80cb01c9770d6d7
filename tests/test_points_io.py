"""Point I/O: any point layer or CSV in any CRS to (lon, lat), and embedding points out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr, osr

from srl_core.embedding_format import KIND_KEY, LOCATION_KIND, MODEL_ID_KEY
from srl_core.errors import CancelledError, InputError, OutputError
from srl_core.progress import Progress
from srl_core.vector import (
    check_lonlat,
    crs_to_wkt,
    from_lonlat,
    read_embedding_points,
    read_points,
    to_lonlat,
    write_points,
)

DATA = Path(__file__).resolve().parent / "data"
MEUSE = DATA / "meuse" / "meuse.shp"


def test_meuse_shapefile_reads_to_lonlat_near_stein():
    table = read_points(MEUSE)
    assert len(table) == 155 and table.xy.shape == (155, 2)
    # RD New metres; the Meuse samples lie near Stein (NL), about 5.76 E, 50.97 N.
    assert table.xy[:, 0].min() > 178000 and table.xy[:, 1].max() < 334000
    assert np.all(np.abs(table.lonlat[:, 0] - 5.75) < 0.05)
    assert np.all(np.abs(table.lonlat[:, 1] - 50.97) < 0.05)
    assert table.attributes["zinc"][0] == 1022.0
    assert table.attributes["landuse"][0] == "Ah"
    assert table.fids.dtype == np.int64 and len(set(table.fids.tolist())) == 155
    assert osr.SpatialReference(table.crs_wkt).IsProjected()


def test_crs_round_trip_and_axis_order():
    lonlat = np.array([[5.76, 50.99], [-79.0, 35.5], [179.9, -45.0]])
    # EPSG:4326 is (lat, lon) by the authority; we always use (lon, lat).
    assert np.allclose(to_lonlat(lonlat, 4326), lonlat)
    merc = from_lonlat(lonlat, "EPSG:3857")
    assert merc[0, 0] == pytest.approx(5.76 * 6378137.0 * np.pi / 180.0, abs=1e-3)  # x = R lambda
    assert np.allclose(to_lonlat(merc, crs_to_wkt(3857)), lonlat, atol=1e-9)


def test_crs_errors_name_the_row():
    with pytest.raises(InputError, match="row 1"):
        to_lonlat(np.array([[0.0, 0.0], [np.nan, 1.0]]), 4326)
    with pytest.raises(InputError, match="row 2"):
        from_lonlat(np.array([[0.0, 0.0], [1.0, 1.0], [10.0, 95.0]]), 3857)
    with pytest.raises(InputError, match="row 0"):
        check_lonlat(np.array([[181.0, 0.0]]))
    with pytest.raises(InputError, match="Unknown coordinate reference system"):
        to_lonlat(np.zeros((1, 2)), "EPSG:999999")


def test_a_point_beyond_the_pole_is_named_by_its_feature_id(tmp_path):
    """A layer's point at latitude 95 was named by its 0-based row, which is the previous feature's id."""
    path = tmp_path / "pts.gpkg"
    write_points(path, np.array([[1.0, 1.0], [2.0, 2.0], [9.0, 95.0]]), crs_to_wkt(4326),
                 fids=np.array([4, 7, 12]))
    with pytest.raises(InputError, match=r"Feature 12 \(row 2\) \(9\.0+°, 95\.0+°\) cannot be converted"):
        read_points(path)


def test_longitudes_of_0_to_360_are_taken_as_the_same_places():
    """Pacific data often gives 181° for -179°: such points were refused as 'outside the valid area of its
    coordinate system, or wrong CRS given'."""
    lonlat = to_lonlat(np.array([[181.0, -16.0], [359.5, 1.0], [-181.0, 2.0], [180.0, 0.0]]), 4326)
    np.testing.assert_allclose(lonlat, [[-179.0, -16.0], [-0.5, 1.0], [179.0, 2.0], [180.0, 0.0]])
    with pytest.raises(InputError, match="row 0"):
        to_lonlat(np.array([[400.0, 0.0]]), 4326)


def test_csv_with_lon_lat_columns_and_nulls(tmp_path):
    path = tmp_path / "pts.csv"
    path.write_text('id,name,lon,lat,val\n1,a,10.5,45.2,3.5\n2,"b,c",-20,10,\n3,d,170,-80,7\n')
    table = read_points(path)
    assert np.allclose(table.lonlat, [[10.5, 45.2], [-20, 10], [170, -80]])
    assert table.attributes["name"] == ["a", "b,c", "d"]
    assert np.isnan(table.attributes["val"][1]) and table.attributes["val"][2] == 7.0
    assert osr.SpatialReference(table.crs_wkt).GetAuthorityCode(None) == "4326"


@pytest.mark.parametrize("header, value", [("Größe", "1"), ("size", "Zürich")])
def test_a_csv_that_is_not_utf8_is_refused_not_read_as_replacement_characters(tmp_path, header, value):
    """GDAL passes a CSV's bytes on undecoded: a Latin-1 header crashed the process (a segmentation fault
    in its Arrow reader, with 40 rows), and Latin-1 values came out as '\ufffd', two classes as one."""
    path = tmp_path / "excel.csv"
    rows = "".join(f"{i},{i},{value}\n" for i in range(40))
    path.write_bytes(f"lon,lat,{header}\n{rows}".encode("latin-1"))
    with pytest.raises(InputError, match="is not UTF-8 text .* save it as 'CSV UTF-8'"):
        read_points(path)
    path.write_bytes(f"lon,lat,{header}\n{rows}".encode())
    assert read_points(path).attributes[header][0] in (1, "Zürich")
    assert len(read_points(f"{tmp_path}|layername=excel")) == 40  # a folder of CSV files, as GDAL opens it


def test_csv_identifiers_keep_their_leading_zeros_and_every_digit(tmp_path):
    """GDAL's type guess made site codes '007' the number 7 and clamped 20-digit ids to one value;
    columns of plain numbers are still numbers (whole numbers with nulls keep their None)."""
    path = tmp_path / "sites.csv"
    path.write_text("site,bigid,count,depth,lon,lat\n007,12345678901234567890,3,1.5,5.7,50.9\n"
                    "010,12345678901234567891,,2e1,-100,40\n")
    table = read_points(path)
    assert table.attributes["site"] == ["007", "010"]
    assert table.attributes["bigid"] == ["12345678901234567890", "12345678901234567891"]
    assert table.attributes["count"] == [3, None]
    assert table.attributes["depth"].tolist() == [1.5, 20.0]


def test_x_y_fields_of_a_table_without_a_crs_need_one(tmp_path):
    """A plot grid's metres in x and y (0-94, 0-78) were read as degrees off West Africa: an
    interpolation there looked fine. Fields named as degrees still default to EPSG:4326 (GBIF's too)."""
    plot = tmp_path / "plot.csv"
    plot.write_text("x,y,zinc\n0,0,1\n94,78,2\n40,30,3\n")
    with pytest.raises(InputError, match="fields 'x' and 'y' and the table gives no coordinate reference "
                                         "system: give it"):
        read_points(plot)
    assert read_points(plot, crs="EPSG:4326").xy.shape == (3, 2)  # told: fine
    gbif = tmp_path / "gbif.csv"
    gbif.write_text("species,decimalLatitude,decimalLongitude\na,50.9,5.7\nb,51.0,5.8\n")
    assert np.allclose(read_points(gbif).lonlat, [[5.7, 50.9], [5.8, 51.0]])


def test_csv_with_named_projected_fields(tmp_path):
    path = tmp_path / "rd.csv"
    path.write_text("E,N,v\n181072,333611,1\n181025,333558,2\n")
    with pytest.raises(InputError, match="no point geometry"):
        read_points(path)
    table = read_points(path, x_field="E", y_field="N", crs="EPSG:28992")
    assert np.allclose(table.xy[0], [181072, 333611])
    assert abs(table.lonlat[0, 0] - 5.758) < 0.01 and abs(table.lonlat[0, 1] - 50.99) < 0.01
    with pytest.raises(InputError, match="Give both"):
        read_points(path, x_field="E")
    with pytest.raises(InputError, match="no field 'X'"):
        read_points(path, x_field="X", y_field="N")


def test_csv_bad_coordinate_names_row(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("lon,lat\n1,2\n3,\n")
    with pytest.raises(InputError, match="row 1"):
        read_points(path)
    path.write_text("lon,lat\n1,2\n3,91\n")
    with pytest.raises(InputError, match="row 1"):
        read_points(path)


def _gpkg(path: Path, geom_type: int, wkts: list[str], epsg: int = 4326) -> Path:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("layer", srs=srs, geom_type=geom_type)
    for wkt in wkts:
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        lyr.CreateFeature(feat)
    ds = None
    return path


def test_empty_polygon_and_multipoint_layers(tmp_path):
    with pytest.raises(InputError, match="no features"):
        read_points(_gpkg(tmp_path / "empty.gpkg", ogr.wkbPoint, []))
    with pytest.raises(InputError, match="not points"):
        read_points(_gpkg(tmp_path / "poly.gpkg", ogr.wkbPolygon, ["POLYGON ((0 0, 1 0, 1 1, 0 0))"]))
    single = _gpkg(tmp_path / "mp1.gpkg", ogr.wkbMultiPoint, ["MULTIPOINT ((1 2))", "MULTIPOINT ((3 4))"])
    assert np.allclose(read_points(single).lonlat, [[1, 2], [3, 4]])
    double = _gpkg(tmp_path / "mp2.gpkg", ogr.wkbMultiPoint, ["MULTIPOINT ((1 2), (3 4))"])
    with pytest.raises(InputError, match="multipoint with 2 points"):
        read_points(double)
    with pytest.raises(InputError, match="not found"):
        read_points(tmp_path / "missing.gpkg")


def test_write_and_read_embedding_points(tmp_path):
    table = read_points(MEUSE)
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(table), 12)).astype(np.float32)
    emb[3] = np.nan
    out = write_points(
        tmp_path / "emb.gpkg",
        table.xy,
        table.crs_wkt,
        table.attributes,
        embeddings=emb,
        model_id="m-1",
        extra_fields={"valid": np.isfinite(emb).all(axis=1)},
    )
    back, emb_back, model_id = read_embedding_points(out)
    assert model_id == "m-1"
    assert emb_back.dtype == np.float32 and emb_back.shape == (155, 12)
    assert np.isnan(emb_back[3]).all()
    ok = np.arange(155) != 3
    assert np.array_equal(emb_back[ok], emb[ok])
    assert np.allclose(back.xy, table.xy) and np.allclose(back.lonlat, table.lonlat)
    assert back.attributes["landuse"] == table.attributes["landuse"]
    assert list(back.attributes["valid"][:5]) == [True, True, True, False, True]
    assert not any(name.startswith("emb_") for name in back.attributes)
    ds = ogr.Open(str(out))
    lyr = ds.GetLayer(0)
    assert lyr.GetMetadataItem(KIND_KEY) == LOCATION_KIND and lyr.GetMetadataItem(MODEL_ID_KEY) == "m-1"


def test_wide_embedding_layer_reads(tmp_path):
    """GDAL 3.6's GeoPackage Arrow reader fails beyond ~120 fields; we must not."""
    lonlat = np.array([[0.0, 0.0], [1.0, 1.0]])
    emb = np.arange(2 * 200, dtype=np.float32).reshape(2, 200)
    out = write_points(tmp_path / "wide.gpkg", lonlat, crs_to_wkt(4326), {}, embeddings=emb, model_id="w")
    _, back, _ = read_embedding_points(out)
    assert np.array_equal(back, emb)


def test_write_is_atomic_on_cancel_and_checks_suffix(tmp_path):
    target = tmp_path / "out.gpkg"
    target.write_bytes(b"old")
    cancelled = Progress(is_cancelled=lambda: True)
    with pytest.raises(CancelledError):
        write_points(
            target, np.zeros((5, 2)), crs_to_wkt(4326), {}, np.zeros((5, 3)), "m", progress=cancelled
        )
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.gpkg"]
    with pytest.raises(OutputError, match="GeoPackage"):
        write_points(tmp_path / "out.shp", np.zeros((1, 2)), crs_to_wkt(4326))
    with pytest.raises(InputError, match="Embeddings must be"):
        write_points(tmp_path / "x.gpkg", np.zeros((2, 2)), crs_to_wkt(4326), {}, np.zeros((3, 4)))


def _shapefile_without_code_page(tmp_path, encoding: str):
    """A point shapefile with a field 'Größe' and values 'café', its table in ``encoding``, declaring
    none (no .cpg, code page byte 0): an older shapefile, as many analysts have."""
    from osgeo import ogr, osr

    path = tmp_path / f"old_{encoding}.shp"
    ds = ogr.GetDriverByName("ESRI Shapefile").CreateDataSource(str(path))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    layer = ds.CreateLayer(path.stem, srs, ogr.wkbPoint, options=[f"ENCODING={encoding}"])
    layer.CreateField(ogr.FieldDefn("Größe", ogr.OFTReal))
    layer.CreateField(ogr.FieldDefn("nom", ogr.OFTString))
    for i in range(3):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("Größe", float(i))
        feature.SetField("nom", "café")
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({5 + i} {52 + i})"))
        layer.CreateFeature(feature)
    ds = None
    path.with_suffix(".cpg").unlink(missing_ok=True)
    dbf = path.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    data[29] = 0  # no language driver byte
    dbf.write_bytes(bytes(data))
    return str(path)


@pytest.mark.parametrize("encoding", ["ISO-8859-1", "UTF-8"])
def test_a_shapefile_that_declares_no_encoding_is_read_in_the_one_it_has(tmp_path, encoding):
    """GDAL passes such a table's bytes on undecoded: in Latin-1, its Arrow reader crashed the process
    on the field name 'Größe' (QGIS with it), and values came out as 'caf\\ufffd'. UTF-8 stays UTF-8."""
    table = read_points(_shapefile_without_code_page(tmp_path, encoding))
    assert list(table.attributes) == ["Größe", "nom"]
    assert table.attributes["nom"] == ["café"] * 3


def test_a_file_of_several_point_layers_must_name_one(tmp_path):
    """The command line and Python took the first layer silently (sites_2019 for sites_2020), as masks
    once did; the layer is named as QGIS names it, FILE|layername=LAYER."""
    from osgeo import ogr, osr

    path = tmp_path / "multi.gpkg"

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    for name, count in (("sites_2019", 3), ("sites_2020", 4)):
        layer = ds.CreateLayer(name, srs, ogr.wkbPoint)
        for i in range(count):
            feature = ogr.Feature(layer.GetLayerDefn())
            feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT({i} 1)"))
            layer.CreateFeature(feature)
    feature = layer = ds = None
    with pytest.raises(InputError, match=r"holds 2 layers \(sites_2019, sites_2020\): name the one"):
        read_points(path)
    assert len(read_points(f"{path}|layername=sites_2020").xy) == 4


def test_a_geopackage_layer_of_undefined_crs_has_no_crs(tmp_path):
    """GeoPackage's 'Undefined geographic SRS' was taken as WGS84 degrees: points in metres near the
    origin were placed off West Africa without a word; now they need their CRS, as a table does."""
    from osgeo import ogr

    path = tmp_path / "nocrs.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("plots", None, ogr.wkbPoint)
    for x, y in ((0, 0), (40, 30), (94, 78)):
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT({x} {y})"))
        layer.CreateFeature(feature)
    feature = layer = ds = None
    with pytest.raises(InputError, match="coordinate reference system"):
        read_points(path)
    assert read_points(path, crs="EPSG:32631").xy.shape == (3, 2)


def test_latitude_and_longitude_fields_given_the_wrong_way_round_are_refused(tmp_path):
    """x = 'lat', y = 'lon' placed a point in Belgium off Somalia, unsaid."""
    path = tmp_path / "sites.csv"
    path.write_text("name,lat,lon\na,50.97,5.74\n")
    with pytest.raises(InputError, match="'lat' was given for x .* swap the x and y fields"):
        read_points(path, x_field="lat", y_field="lon")
    assert read_points(path, x_field="lon", y_field="lat").xy.tolist() == [[5.74, 50.97]]


def test_an_embedding_layer_of_several_batches_reads_in_order_with_its_nulls(tmp_path):
    """Embedding fields are packed into float32 batch by batch (a 300-wide layer reads in batches of
    a few thousand rows): every row in its place across batches, nulls as NaN, other fields kept."""
    n, d = 7000, 300
    rng = np.random.default_rng(1)
    lonlat = np.column_stack([rng.uniform(-10, 10, n), rng.uniform(40, 50, n)])
    emb = rng.normal(size=(n, d)).astype(np.float32)
    emb[[5, 3500, 6999]] = np.nan
    names = [f"p{i}" for i in range(n)]
    out = write_points(tmp_path / "wide.gpkg", lonlat, crs_to_wkt(4326), {"name": names, "k": np.arange(n)},
                       embeddings=emb, model_id="w")
    back, emb_back, model_id = read_embedding_points(out)
    assert model_id == "w" and emb_back.dtype == np.float32
    assert np.array_equal(emb_back, emb, equal_nan=True)
    assert back.attributes["name"] == names and back.attributes["k"].tolist() == list(range(n))
    assert list(back.attributes) == ["name", "k"]
    assert np.allclose(back.lonlat, lonlat)


def test_an_embedding_geojson_with_a_field_named_as_its_geometry_keeps_it(tmp_path):
    features = ",".join(
        f'{{"type":"Feature","properties":{{"wkb_geometry":"{tag}","emb_000":{a},"emb_001":{b}}},'
        f'"geometry":{{"type":"Point","coordinates":[{x},{y}]}}}}'
        for tag, a, b, x, y in (("a", 1.5, None, 1, 2), ("b", -2, 4.25, 3, 4))
    ).replace("None", "null")
    path = tmp_path / "emb.geojson"
    path.write_text('{"type":"FeatureCollection","features":[' + features + "]}")
    back, emb, _ = read_embedding_points(path)
    assert np.array_equal(emb, np.array([[1.5, np.nan], [-2, 4.25]], np.float32), equal_nan=True)
    assert list(back.attributes) == ["wkb_geometry"] and list(back.attributes["wkb_geometry"]) == ["a", "b"]
    assert back.xy.tolist() == [[1, 2], [3, 4]]
