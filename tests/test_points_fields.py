"""write_points keeps the input's fields, names, types and feature ids; read_points reads them exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr, osr

from srl_core.errors import InputError, OutputError
from srl_core.vector import crs_to_wkt, points, read_embedding_points, read_points, write_points

WGS84 = crs_to_wkt(4326)


def _layer_file(path: Path, driver: str, fields: list, rows: list, delete: tuple = ()) -> Path:
    """A point layer in EPSG:4326; ``fields``: [(name, OGR type[, subtype])], ``rows``: [(x, y, values)]."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    ds = ogr.GetDriverByName(driver).CreateDataSource(str(path))
    lyr = ds.CreateLayer("pts", srs=srs, geom_type=ogr.wkbPoint)
    for name, ftype, *subtype in fields:
        fd = ogr.FieldDefn(name, ftype)
        fd.SetSubType(subtype[0] if subtype else ogr.OFSTNone)
        assert lyr.CreateField(fd) == 0
    for x, y, values in rows:
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
        for name, value in values.items():
            if value is None:
                feat.SetFieldNull(name)
            else:
                feat.SetField(name, value)
        assert lyr.CreateFeature(feat) == 0
    for fid in delete:
        assert lyr.DeleteFeature(fid) == 0
    ds = None
    return path


def _written(path: Path) -> tuple[dict, list]:
    """({field name: (type name, subtype)}, [(fid, {field name: value})]) of a written GeoPackage."""
    ds = ogr.Open(str(path))
    lyr = ds.GetLayer(0)
    defn = lyr.GetLayerDefn()
    fields = {}
    for i in range(defn.GetFieldCount()):
        fd = defn.GetFieldDefn(i)
        fields[fd.GetName()] = (ogr.GetFieldTypeName(fd.GetType()), fd.GetSubType())
    rows = [(f.GetFID(), {name: f.GetField(name) for name in fields}) for f in lyr]
    ds = None
    return fields, rows


def test_user_fid_and_emb_text_fields_are_kept(tmp_path):
    """Only SRL's embedding fields are replaced; a shapefile's own 'fid' survives as fid_1."""
    shp = _layer_file(
        tmp_path / "in.shp", "ESRI Shapefile",
        [("fid", ogr.OFTInteger), ("emb_note", ogr.OFTString), ("EMB_000", ogr.OFTReal),
         ("emb_valid", ogr.OFTInteger)],
        [(5, 50, {"fid": 1017, "emb_note": "keep me", "EMB_000": 1.5, "emb_valid": 0}),
         (6, 51, {"fid": 2044, "emb_note": "me too", "EMB_000": 2.5, "emb_valid": 0})],
    )
    table = read_points(shp)
    out = write_points(tmp_path / "out.gpkg", table.xy, table.crs_wkt, table.attributes,
                       embeddings=np.ones((2, 2)), model_id="m")
    fields, rows = _written(out)
    assert list(fields) == ["fid_1", "emb_note", "emb_000", "emb_001"]
    assert [r["fid_1"] for _, r in rows] == [1017, 2044]
    assert [r["emb_note"] for _, r in rows] == ["keep me", "me too"]
    assert [r["emb_000"] for _, r in rows] == [1.0, 1.0]


def test_fields_of_the_analyst_that_look_like_embedding_fields_are_kept(tmp_path):
    """Every field matching 'emb_' was dropped when embeddings were written: a text 'Emb_1', a value
    'emb_2019' (read as an embedding dimension beside the new ones, so it moves aside), without a word.
    Only an input's own embeddings (numeric emb_000 ... from 0 on) are replaced."""
    n = 2
    attributes = {"site": ["a", "b"], "Emb_1": ["x", "y"], "emb_2019": np.array([3.5, 4.5]),
                  "emb_000": np.array([0.1, 0.2]), "emb_001": np.array([0.3, 0.4])}
    out = write_points(tmp_path / "out.gpkg", np.zeros((n, 2)), WGS84, attributes,
                       embeddings=np.ones((n, 2)), model_id="m")
    fields, rows = _written(out)
    assert list(fields) == ["site", "Emb_1", "emb_2019_1", "emb_000", "emb_001"]
    values = [(r["Emb_1"], r["emb_2019_1"], r["emb_000"]) for _, r in rows]
    assert values == [("x", 3.5, 1.0), ("y", 4.5, 1.0)]
    table, emb, _ = read_embedding_points(out)
    assert emb.shape == (2, 2) and "emb_2019_1" in table.attributes


def test_fields_clashing_but_for_case_are_renamed_and_older_copies_replaced(tmp_path):
    """SQLite column names are case-insensitive: the added fields keep their names, inputs move aside."""
    n = 3
    attributes = {
        "geom": ["a", "b", "c"],
        "fid": np.array([7, 8, 9]),
        "fid_1": np.array([1, 2, 3]),
        "Cluster": np.array([0.5, 1.5, 2.5]),
        "R": np.array([1, 2, 3]),
        "Score": np.ones(n),
        "rank": np.array([30, 20, 10]),  # from an earlier top-k run: replaced by the new rank
        "Emb_000": np.zeros(n),
        "cluster": np.array([1, 2, 1], dtype=np.int32),  # added last by the analysis, as cluster_points does
        "r": np.array([9, 9, 9]),
    }
    extra = {"rank": np.array([1, 2, 3]), "score": np.array([0.9, 0.8, 0.7])}
    out = write_points(tmp_path / "out.gpkg", np.zeros((n, 2)), WGS84, attributes,
                       embeddings=np.ones((n, 1)), model_id="m", extra_fields=extra)
    fields, rows = _written(out)
    assert list(fields) == ["geom_1", "fid_2", "fid_1", "Cluster_1", "R_1", "Score_1", "cluster", "r",
                            "rank", "score", "emb_000"]
    first = rows[0][1]
    assert (first["geom_1"], first["fid_2"], first["fid_1"]) == ("a", 7, 1)
    assert (first["Cluster_1"], first["cluster"], first["R_1"], first["r"]) == (0.5, 1, 1, 9)
    assert (first["Score_1"], first["score"], first["rank"], first["emb_000"]) == (1.0, 0.9, 1, 1.0)
    with pytest.raises(InputError, match="clash"):
        write_points(tmp_path / "x.gpkg", np.zeros((n, 2)), WGS84, {}, embeddings=np.ones((n, 1)),
                     extra_fields={"EMB_000": np.ones(n)})


def test_write_error_blames_space_only_when_it_is_about_space(tmp_path, monkeypatch):
    def failing(message: str):
        def fill(*args, **kwargs):
            raise RuntimeError(message)
        return fill

    monkeypatch.setattr(points, "_fill_layer", failing("sqlite3_exec failed: no such column: x"))
    with pytest.raises(OutputError) as error:
        write_points(tmp_path / "a.gpkg", np.zeros((1, 2)), WGS84)
    assert "no such column" in str(error.value) and "free space" not in str(error.value)
    monkeypatch.setattr(points, "_fill_layer", failing("sqlite3_exec failed: database or disk is full"))
    with pytest.raises(OutputError, match="Check the free space and permissions"):
        write_points(tmp_path / "b.gpkg", np.zeros((1, 2)), WGS84)


def test_input_fids_are_kept_so_joins_find_their_feature(tmp_path):
    src = _layer_file(tmp_path / "in.gpkg", "GPKG", [("name", ogr.OFTString)],
                      [(i, i, {"name": f"p{i}"}) for i in range(6)], delete=(2, 4))
    table = read_points(src)
    assert table.fids.tolist() == [1, 3, 5, 6]
    out = write_points(tmp_path / "out.gpkg", table.xy, table.crs_wkt, table.attributes,
                       embeddings=np.ones((4, 1)), fids=table.fids)
    assert [(fid, r["name"]) for fid, r in _written(out)[1]] == [(1, "p0"), (3, "p2"), (5, "p4"), (6, "p5")]
    # a shapefile's FIDs start at 0, and unordered ids would reorder the rows: numbered 1..N instead
    for fids in ([0, 1, 2, 3], [6, 5, 3, 1], [1, 1, 2, 3]):
        again = write_points(tmp_path / "r.gpkg", table.xy, table.crs_wkt, table.attributes,
                             fids=np.array(fids))
        assert [(fid, r["name"]) for fid, r in _written(again)[1]] == [
            (1, "p0"), (2, "p2"), (3, "p4"), (4, "p5")]
    with pytest.raises(InputError, match="Feature ids"):
        write_points(tmp_path / "x.gpkg", table.xy, table.crs_wkt, fids=np.array([1, 2]))


def test_embedding_and_analysis_outputs_keep_the_input_fids(tmp_path):
    from srl_core.analysis.clustering import cluster_points
    from srl_core.location import embed_points_file

    src = _layer_file(tmp_path / "in.gpkg", "GPKG", [("name", ogr.OFTString)],
                      [(i % 5, i // 5, {"name": f"p{i}"}) for i in range(12)], delete=(1, 7))
    embedded = embed_points_file(str(src), str(tmp_path / "emb.gpkg"), "local")
    expected = [(fid, f"p{fid - 1}") for fid in range(1, 13) if fid not in (1, 7)]
    assert [(fid, r["name"]) for fid, r in _written(embedded)[1]] == expected
    clustered, _, _ = cluster_points(str(embedded), str(tmp_path / "c.gpkg"), n_clusters=2)
    assert [(fid, r["name"]) for fid, r in _written(Path(clustered))[1]] == expected


def test_nullable_integers_booleans_and_dates_keep_their_types(tmp_path):
    src = _layer_file(
        tmp_path / "types.gpkg", "GPKG",
        [("cnt", ogr.OFTInteger), ("big", ogr.OFTInteger64), ("flag", ogr.OFTInteger, ogr.OFSTBoolean),
         ("day", ogr.OFTDate), ("when", ogr.OFTDateTime)],
        [(0, 0, {"cnt": 1, "big": 9007199254740993, "flag": 1, "day": "2020-01-02",
                 "when": "2020-01-02T03:04:05"}),
         (1, 1, {"cnt": None, "big": None, "flag": None, "day": None, "when": None}),
         (2, 2, {"cnt": 3, "big": -5, "flag": 0, "day": "2021-05-06", "when": "2021-05-06T07:08:09.250"})],
    )
    table = read_points(src)
    assert table.attributes["big"] == [9007199254740993, None, -5]
    assert table.attributes["flag"] == [True, None, False]
    out = write_points(tmp_path / "out.gpkg", table.xy, table.crs_wkt, table.attributes)
    fields, rows = _written(out)
    assert fields == {
        "cnt": ("Integer64", ogr.OFSTNone),
        "big": ("Integer64", ogr.OFSTNone),
        "flag": ("Integer", ogr.OFSTBoolean),
        "day": ("Date", ogr.OFSTNone),
        "when": ("DateTime", ogr.OFSTNone),
    }
    values = [r for _, r in rows]
    assert values[0] == {"cnt": 1, "big": 9007199254740993, "flag": 1, "day": "2020/01/02",
                         "when": "2020/01/02 03:04:05"}
    assert values[1] == dict.fromkeys(fields)
    assert values[2]["when"] == "2021/05/06 07:08:09.250" and values[2]["big"] == -5


def test_heights_of_3d_points_are_kept_through_embedding_and_analysis(tmp_path):
    """POINT Z inputs (GPS fixes with elevation) came out as 2D points: the heights were lost."""
    from srl_core.analysis.clustering import cluster_points
    from srl_core.location import embed_points_file

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    path = tmp_path / "fixes.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("fixes", srs=srs, geom_type=ogr.wkbPoint25D)
    for i in range(8):
        feat = ogr.Feature(lyr.GetLayerDefn())
        feat.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT Z ({5 + i * 0.01} {50 + i * 0.01} {100.5 + i})"))
        lyr.CreateFeature(feat)
    ds = None
    assert read_points(path).z.tolist() == [100.5 + i for i in range(8)]
    embedded = embed_points_file(str(path), str(tmp_path / "emb.gpkg"), "local")
    clustered, _, _ = cluster_points(str(embedded), str(tmp_path / "c.gpkg"), n_clusters=2)
    for out in (embedded, clustered):
        ds = ogr.Open(str(out))
        layer = ds.GetLayer(0)
        assert ogr.GT_HasZ(layer.GetGeomType())
        assert [f.GetGeometryRef().GetZ() for f in layer] == [100.5 + i for i in range(8)]
        ds = None
    assert read_points(path).xyz.shape == (8, 3) and read_points(embedded).z is not None


def test_analyses_of_tile_embeddings_at_points_keep_their_kind(tmp_path):
    """Clusters, colours and similarity of tile embeddings sampled at points were labelled location
    embeddings (SRL_KIND), as if made from the points' coordinates."""
    from srl_core.analysis.clustering import cluster_points
    from srl_core.analysis.views import rgb_view_points
    from srl_core.names import TILE_KIND

    rng = np.random.default_rng(0)
    src = write_points(tmp_path / "tiles.gpkg", rng.uniform(0, 1, (20, 2)), WGS84,
                       embeddings=rng.normal(size=(20, 4)).astype(np.float32), model_id="m", kind=TILE_KIND)
    clustered, _, _ = cluster_points(str(src), str(tmp_path / "c.gpkg"), n_clusters=2)
    coloured, _ = rgb_view_points(str(src), str(tmp_path / "v.gpkg"))
    for out in (clustered, coloured):
        assert points.embedding_origin(out).kind == TILE_KIND


def test_a_shapefiles_feature_ids_are_kept_in_source_fid(tmp_path):
    """A shapefile numbers its features from 0, which a GeoPackage cannot keep: the output's 1, 2, 3
    were one off from the input's 0, 1, 2, with no copy of them, so a join on fid matched wrong rows."""
    shp = _layer_file(tmp_path / "pts.shp", "ESRI Shapefile", [("n", ogr.OFTInteger)],
                      [(i, i, {"n": 10 * i}) for i in range(3)])
    table = read_points(shp)
    assert table.fids.tolist() == [0, 1, 2]
    out = tmp_path / "out.gpkg"
    write_points(out, table.xy, table.crs_wkt, table.attributes, fids=table.fids)
    _, rows = _written(out)
    assert [(row["source_fid"], row["n"]) for _, row in rows] == [(0, 0), (1, 10), (2, 20)]
    kept = tmp_path / "kept.gpkg"  # ids a GeoPackage can keep stay the fids, with no extra field
    write_points(kept, table.xy, table.crs_wkt, table.attributes, fids=table.fids + 5)
    fields, rows = _written(kept)
    assert "source_fid" not in fields and [fid for fid, _ in rows] == [5, 6, 7]

    # embeddings of the shapefile, then the most similar of them: source_fid still leads to the shapefile
    from srl_core.analysis.similarity import Query, top_k_points

    embedded = tmp_path / "emb.gpkg"
    write_points(embedded, table.xy, table.crs_wkt, table.attributes, fids=table.fids,
                 embeddings=np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]], np.float32))
    top = tmp_path / "top.gpkg"
    top_k_points(str(embedded), Query().add_points(str(embedded), [1]), 2, str(top))
    # its ids were overwritten with the embedding layer's 1..3, one off from the shapefile's, unsaid
    ranked = [(row["rank"], row["source_fid"], row["n"]) for _, row in _written(top)[1]]
    assert ranked == [(1, 0, 0), (2, 2, 20)]


def test_an_integer_field_stays_integer_and_a_64_bit_one_stays_64_bit(tmp_path):
    """Every Integer field came out Integer64 (QGIS shows the type change in the field list)."""
    src = _layer_file(tmp_path / "ints.gpkg", "GPKG", [("cnt", ogr.OFTInteger), ("big", ogr.OFTInteger64)],
                      [(0, 0, {"cnt": 1, "big": 9007199254740993}), (1, 1, {"cnt": 2, "big": 5})])
    table = read_points(src)
    fields, _ = _written(write_points(tmp_path / "out.gpkg", table.xy, table.crs_wkt, table.attributes))
    assert fields["cnt"] == ("Integer", ogr.OFSTNone) and fields["big"] == ("Integer64", ogr.OFSTNone)


@pytest.mark.parametrize("driver, ext", [("GPKG", "gpkg"), ("GeoJSON", "geojson"), ("ESRI Shapefile", "shp")])
def test_dates_before_1970_are_read_as_stored(tmp_path, driver, ext):
    """GDAL 3.6's Arrow stream read 1969-12-31 as 1970-01-01 and 1850-06-15 as 1850-06-16, and every SRL
    step moved them a day again (found by an audit of attribute round trips)."""
    import datetime

    stored = ["1969-12-31", "1970-01-01", "1900-01-01", "1850-06-15", "2000-02-29"]
    path = tmp_path / f"dates.{ext}"
    _one_field_layer(path, driver, ogr.OFTDate, stored)
    expected = [datetime.date.fromisoformat(day) for day in stored]
    assert read_points(str(path)).attributes["d"] == expected
    again = tmp_path / "again.gpkg"
    table = read_points(str(path))
    write_points(str(again), table.xy, table.crs_wkt, table.attributes)
    assert read_points(str(again)).attributes["d"] == expected


def test_date_times_keep_their_time_zone(tmp_path):
    """12:00-05:00 came back as 12:00 through GDAL 3.6's Arrow stream, the offset lost unsaid (an audit);
    a date-time without a zone stays without one."""
    import datetime

    stored = ["2020-06-01T12:00:00-05:00", "2020-06-01T12:00:00+05:30", "2020-06-01T12:00:00Z",
              "2020-06-01T12:00:00.250"]
    path = tmp_path / "times.gpkg"
    _one_field_layer(path, "GPKG", ogr.OFTDateTime, stored)
    expected = [datetime.datetime.fromisoformat(t.replace("Z", "+00:00")) for t in stored]
    table = read_points(str(path))
    assert table.attributes["d"] == expected
    assert [v.utcoffset() for v in table.attributes["d"]] == [v.utcoffset() for v in expected]
    again = tmp_path / "again.gpkg"
    write_points(str(again), table.xy, table.crs_wkt, table.attributes)
    offsets = [v.utcoffset() for v in read_points(str(again)).attributes["d"]]
    assert offsets == [v.utcoffset() for v in expected]


def test_a_date_python_cannot_hold_is_read_as_before_not_a_crash(tmp_path):
    """A shapefile's 2020-02-30 (dBase holds any digits) failed every read once dates were read feature by
    feature (a review); it is read as GDAL's Arrow stream gives it, as before."""
    path = tmp_path / "bad.shp"
    _one_field_layer(path, "ESRI Shapefile", ogr.OFTDate, ["2020-01-15", "2020-01-15"])
    dbf = path.with_suffix(".dbf")
    dbf.write_bytes(dbf.read_bytes().replace(b"20200115", b"20200230", 1))
    values = read_points(str(path)).attributes["d"]
    assert len(values) == 2 and str(values[1]) == "2020-01-15"


def _one_field_layer(path, driver: str, field_type: int, values: list) -> None:
    """Points along a line at (-78.74 + i / 1000, 35.74), WGS84, with field ``d`` of ``field_type``."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    ds = ogr.GetDriverByName(driver).CreateDataSource(str(path))
    lyr = ds.CreateLayer("points", srs=srs, geom_type=ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("d", field_type))
    for i, value in enumerate(values):
        feature = ogr.Feature(lyr.GetLayerDefn())
        feature.SetField("d", value)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({-78.74 + i * 0.001} 35.74)"))
        lyr.CreateFeature(feature)
    ds = None


@pytest.mark.parametrize("ext", ["csv", "geojson"])
def test_columns_named_as_gdals_fid_and_geometry_are_kept(tmp_path, ext):
    """A table's own OGC_FID or wkb_geometry column (a CSV that GDAL exported has OGC_FID) took the
    place of the FID or geometry in GDAL's Arrow stream: it was lost, and its values became the fids."""
    if ext == "csv":
        rows = "5.7,50.9,10,a,1\n5.8,50.95,20,b,2\n"
        (tmp_path / "p.csv").write_text("lon,lat,OGC_FID,wkb_geometry,val\n" + rows)
    else:
        feature = ('{{"type":"Feature","properties":{{"OGC_FID":{},"wkb_geometry":"{}","val":{}}},'
                   '"geometry":{{"type":"Point","coordinates":[{},{}]}}}}')
        rows = [feature.format(10, "a", 1, 5.7, 50.9), feature.format(20, "b", 2, 5.8, 50.95)]
        text = '{"type":"FeatureCollection","features":[' + ",".join(rows) + "]}"
        (tmp_path / "p.geojson").write_text(text)
    table = read_points(tmp_path / f"p.{ext}")
    assert table.xy.tolist() == [[5.7, 50.9], [5.8, 50.95]]
    assert table.attributes["OGC_FID"].tolist() == [10, 20]
    assert list(table.attributes["wkb_geometry"]) == ["a", "b"]
    assert table.fids.tolist() != [10, 20]
    out = write_points(tmp_path / "out.gpkg", table.xy, table.crs_wkt, table.attributes, fids=table.fids)
    fields, rows = _written(out)
    assert [(r["OGC_FID"], r["wkb_geometry"], r["val"]) for _, r in rows] == [(10, "a", 1), (20, "b", 2)]
    assert [name for name in fields if name in ("OGC_FID", "wkb_geometry", "val")] == [
        "OGC_FID", "wkb_geometry", "val"]  # in the table's order
