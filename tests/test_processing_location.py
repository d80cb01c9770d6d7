"""Embed point locations through processing.run: any CRS in, the same embeddings as srl_core's
engine on the (lon, lat) of the points, attributes kept; then clustering those points."""

from __future__ import annotations

import numpy as np
import processing
import pytest
from conftest import TINY_LOCATION_MODEL_ID, UTM17N, _crs_wkt
from osgeo import ogr
from qgis.core import QgsProcessingException

from srl_core.vector.crs import to_lonlat
from srl_core.vector.points import read_embedding_points, write_points


@pytest.fixture
def utm_points(tmp_path):
    """30 points in UTM 17N (North Carolina) with a 'site' attribute, in two distant groups."""
    rng = np.random.default_rng(5)
    xy = np.concatenate(
        [
            rng.uniform([500000, 3900000], [520000, 3920000], (15, 2)),
            rng.uniform([700000, 4000000], [720000, 4020000], (15, 2)),
        ]
    )
    path = tmp_path / "sites.gpkg"
    write_points(str(path), xy, _crs_wkt(UTM17N), {"site": [f"s{i}" for i in range(30)]})
    return path, xy


def test_embed_points_any_crs(srl_provider, tiny_location_model, utm_points, tmp_path):
    from srl_core.location import embed_lonlat

    path, xy = utm_points
    out = tmp_path / "emb.gpkg"
    processing.run("srl:embed_points", {"INPUT": str(path), "MODEL": tiny_location_model, "OUTPUT": str(out)})
    table, emb, model_id = read_embedding_points(str(out))
    assert model_id == TINY_LOCATION_MODEL_ID and emb.shape == (30, 8)
    assert table.attributes["site"] == [f"s{i}" for i in range(30)]
    np.testing.assert_allclose(table.xy, xy, atol=1e-6)  # points keep their CRS
    expected, _ = embed_lonlat(tiny_location_model, to_lonlat(xy, _crs_wkt(UTM17N)), device="cpu")
    np.testing.assert_allclose(emb, expected, rtol=1e-5, atol=1e-6)


def test_location_embeddings_feed_clustering(srl_provider, tiny_location_model, utm_points, tmp_path):
    path, _ = utm_points
    emb = processing.run(
        "srl:embed_points",
        {"INPUT": str(path), "MODEL": tiny_location_model, "OUTPUT": str(tmp_path / "e.gpkg")},
    )["OUTPUT"]
    out = tmp_path / "clusters.gpkg"
    processing.run("srl:cluster", {"INPUT": emb, "K": 2, "OUTPUT_POINTS": str(out)})
    ds = ogr.Open(str(out))
    labels = [f.GetField("cluster") for f in ds.GetLayer(0)]
    # Two groups 200 km apart: a smooth location encoder separates them.
    assert len(set(labels[:15])) == 1 and len(set(labels[15:])) == 1 and labels[0] != labels[15]


def test_tile_model_is_refused_for_points(
    srl_provider, tiny_tile_model, utm_points, tmp_path, user_models_dir
):
    path, _ = utm_points
    with pytest.raises(QgsProcessingException, match="location model"):
        processing.run(
            "srl:embed_points",
            {
                "INPUT": str(path),
                "MODEL_FOLDER": str(user_models_dir / tiny_tile_model),
                "OUTPUT": str(tmp_path / "x.gpkg"),
            },
        )
    assert not (tmp_path / "x.gpkg").exists()


def test_memory_layer_and_selection_are_embedded(srl_provider, tiny_location_model, tmp_path):
    """Layers not stored in a file (and selected features only) go through a temporary copy."""
    from qgis.core import (
        QgsFeature,
        QgsGeometry,
        QgsPointXY,
        QgsProcessingFeatureSourceDefinition,
        QgsProject,
        QgsVectorLayer,
    )

    layer = QgsVectorLayer("Point?crs=EPSG:4326&field=name:string", "memory points", "memory")
    features = []
    for i, (lon, lat) in enumerate([(-79.0, 35.8), (-78.5, 35.9), (-80.1, 36.0)]):
        f = QgsFeature(layer.fields())
        f.setAttributes([f"p{i}"])
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
        features.append(f)
    layer.dataProvider().addFeatures(features)
    QgsProject.instance().addMapLayer(layer)
    try:
        out = processing.run(
            "srl:embed_points",
            {"INPUT": layer.id(), "MODEL": tiny_location_model, "OUTPUT": str(tmp_path / "m.gpkg")},
        )["OUTPUT"]
        table, emb, _ = read_embedding_points(out)
        assert table.attributes["name"] == ["p0", "p1", "p2"] and emb.shape == (3, 8)
        layer.selectByExpression("name = 'p2'")
        selected = QgsProcessingFeatureSourceDefinition(layer.id(), selectedFeaturesOnly=True)
        out = processing.run(
            "srl:embed_points",
            {"INPUT": selected, "MODEL": tiny_location_model, "OUTPUT": str(tmp_path / "s.gpkg")},
        )["OUTPUT"]
        table, emb, _ = read_embedding_points(out)
        assert table.attributes["name"] == ["p2"]
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_embed_meuse_samples_real_data(srl_provider, tiny_location_model, tmp_path):
    """The 155 Meuse soil samples (Dutch RD New) embedded with their attributes kept."""
    from conftest import DATA_DIR

    out = processing.run(
        "srl:embed_points",
        {
            "INPUT": str(DATA_DIR / "meuse" / "meuse.shp"),
            "MODEL": tiny_location_model,
            "OUTPUT": str(tmp_path / "m.gpkg"),
        },
    )["OUTPUT"]
    table, emb, _ = read_embedding_points(out)
    assert emb.shape == (155, 8) and np.isfinite(emb).all()
    # A global encoder varies little over 3 km, but it does vary.
    assert "zinc" in table.attributes and np.ptp(emb, axis=0).max() > 0
    assert np.allclose(table.lonlat.mean(axis=0), [5.75, 50.98], atol=0.05)  # near Stein, NL


@pytest.fixture
def meuse_with_bad_prj(tmp_path):
    """The Meuse samples (RD New) as two shapefiles: one without .prj, one whose .prj says Web
    Mercator. In QGIS the analyst assigns RD New to each layer; the files keep what they say."""
    import shutil

    from conftest import DATA_DIR
    from osgeo import osr

    paths = {}
    for name in ("noprj", "wrongprj"):
        for ext in ("shp", "shx", "dbf"):
            shutil.copy(DATA_DIR / "meuse" / f"meuse.{ext}", tmp_path / f"{name}.{ext}")
        paths[name] = tmp_path / f"{name}.shp"
    mercator = osr.SpatialReference()
    mercator.ImportFromEPSG(3857)
    mercator.MorphToESRI()
    (tmp_path / "wrongprj.prj").write_text(mercator.ExportToWkt())
    return paths


@pytest.mark.parametrize("name", ["noprj", "wrongprj"])
def test_the_crs_assigned_to_a_layer_in_qgis_is_the_one_used(
        srl_provider, tiny_location_model, meuse_with_bad_prj, tmp_path, name):
    """A layer whose file has no CRS or a wrong one, with its CRS set in QGIS (Layer Properties >
    Source): points were placed by the file's CRS (in the Gulf of Guinea for the wrong .prj),
    or refused with a message asking for a CRS the dialog has no field for."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsVectorLayer

    layer = QgsVectorLayer(str(meuse_with_bad_prj[name]), name, "ogr")
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:28992"))
    QgsProject.instance().addMapLayer(layer)
    try:
        out = processing.run("srl:embed_points", {"INPUT": layer.id(), "MODEL": tiny_location_model,
                                                  "OUTPUT": str(tmp_path / f"{name}.gpkg")})["OUTPUT"]
        table, emb, _ = read_embedding_points(out)
        assert np.allclose(table.lonlat.mean(axis=0), [5.75, 50.98], atol=0.05)  # near Stein, NL
        assert QgsVectorLayer(out, "o", "ogr").crs().authid() == "EPSG:28992"
        result = processing.run("srl:interpolate", {
            "INPUT": layer.id(), "FIELD": "zinc", "OUTPUT": str(tmp_path / f"{name}_zinc.tif"),
            "OUTPUT_UNCERTAINTY": str(tmp_path / f"{name}_sd.tif"), "MEMBERS": 2, "FOLDS": 2})
        from qgis.core import QgsRasterLayer
        raster = QgsRasterLayer(result["OUTPUT"], "zinc")
        assert raster.crs().authid() == "EPSG:28992"
        assert raster.extent().intersects(layer.extent())
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_a_layer_without_any_crs_is_refused_naming_where_to_set_it(
        srl_provider, tiny_location_model, meuse_with_bad_prj, tmp_path):
    from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsVectorLayer

    layer = QgsVectorLayer(str(meuse_with_bad_prj["noprj"]), "noprj", "ogr")
    layer.setCrs(QgsCoordinateReferenceSystem())
    QgsProject.instance().addMapLayer(layer)
    try:
        with pytest.raises(QgsProcessingException, match="Assigned coordinate reference system"):
            processing.run("srl:embed_points", {"INPUT": layer.id(), "MODEL": tiny_location_model,
                                                "OUTPUT": str(tmp_path / "o.gpkg")})
        assert not (tmp_path / "o.gpkg").exists()
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


@pytest.mark.parametrize("alg, parameters", [
    ("srl:embed_points", {"MODEL": "local"}),
    ("srl:interpolate", {"FIELD": "val", "MEMBERS": 2, "FOLDS": 2, "OUTPUT_UNCERTAINTY": "TEMPORARY_OUTPUT"}),
])
def test_a_geopackage_of_undefined_crs_is_refused_as_having_none(srl_provider, tmp_path, alg, parameters):
    """OGR writes a layer without a CRS as srs_id 0, 'Undefined geographic SRS', which QGIS takes as a valid
    CRS: a plot grid in metres was embedded as degrees (model auto picked the global model for a 100 m plot),
    and every analysis then refused the output. srl_core refused the same file; now the plugin does too."""
    path = tmp_path / "plots.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer("plots", None, ogr.wkbPoint)
    lyr.CreateField(ogr.FieldDefn("val", ogr.OFTReal))
    rng = np.random.default_rng(1)
    for x, y in rng.uniform([0, 0], [100, 80], (12, 2)):
        feature = ogr.Feature(lyr.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x} {y})"))
        feature.SetField("val", float(x))
        lyr.CreateFeature(feature)
    ds = None
    from qgis.core import QgsVectorLayer

    assert QgsVectorLayer(str(path), "plots", "ogr").crs().isValid()  # what QGIS makes of it
    out = tmp_path / "out.gpkg" if alg == "srl:embed_points" else tmp_path / "out.tif"
    with pytest.raises(QgsProcessingException, match="'plots' has no coordinate reference system"):
        processing.run(alg, {"INPUT": str(path), "OUTPUT": str(out), **parameters})
    assert not out.exists()


def test_a_memory_layer_with_a_long_source_is_embedded_and_interpolated(srl_provider, tiny_location_model,
                                                                       tmp_path):
    """A memory layer's source names its fields and CRS: a model step's temporary output of the Meuse samples
    (Extract by expression) has one of 368 characters, which was taken for an input file name and ended in
    "Internal error ... File name too long" (found by an audit of graphical models)."""
    from conftest import DATA_DIR
    from qgis.core import QgsProject, QgsVectorLayer

    meuse = QgsVectorLayer(str(DATA_DIR / "meuse" / "meuse.shp"), "meuse", "ogr")
    memory = processing.run("native:extractbyexpression",
                            {"INPUT": meuse, "EXPRESSION": '"cadmium" > 0', "OUTPUT": "memory:"})["OUTPUT"]
    assert memory.providerType() == "memory" and len(memory.source()) > 300
    QgsProject.instance().addMapLayer(memory)
    try:
        out = processing.run("srl:embed_points", {"INPUT": memory.id(), "MODEL": tiny_location_model,
                                                  "OUTPUT": str(tmp_path / "e.gpkg")})["OUTPUT"]
        assert read_embedding_points(out)[1].shape == (155, 8)
        maps = processing.run("srl:interpolate", {"INPUT": memory.id(), "FIELD": "zinc",
                                                  "OUTPUT": str(tmp_path / "zinc.tif"),
                                                  "OUTPUT_UNCERTAINTY": str(tmp_path / "zinc_sd.tif")})
        assert (tmp_path / "zinc.tif").is_file() and maps["OUTPUT"] == str(tmp_path / "zinc.tif")
    finally:
        QgsProject.instance().removeMapLayer(memory.id())


@pytest.mark.parametrize("own_source_fid", [False, True])
def test_selected_features_of_a_shapefile_keep_their_ids_in_source_fid(srl_provider, tiny_location_model,
                                                                       tmp_path, own_source_fid):
    """The copy Processing writes of the selected features numbers them anew: a shapefile's features
    1, 2, 4, 5 came out as 1, 2, 3, 4, with no source_fid, and a join back matched other features (found by
    an audit of attribute round trips). The layer's own ids are in source_fid."""
    import shutil

    from conftest import DATA_DIR
    from qgis.core import QgsProcessingFeatureSourceDefinition, QgsProject, QgsVectorLayer

    for part in (DATA_DIR / "meuse").glob("meuse.*"):
        shutil.copy(part, tmp_path)
    from osgeo import ogr

    if own_source_fid:  # an earlier SRL output's source_fid: the ids go beside it (a review)
        ds = ogr.Open(str(tmp_path / "meuse.shp"), 1)
        ds.GetLayer(0).CreateField(ogr.FieldDefn("source_fid", ogr.OFTInteger))
        for feature in ds.GetLayer(0):
            feature.SetField("source_fid", 900 + feature.GetFID())
            ds.GetLayer(0).SetFeature(feature)
        ds = None
    layer = QgsVectorLayer(str(tmp_path / "meuse.shp"), "meuse", "ogr")
    QgsProject.instance().addMapLayer(layer)
    try:
        chosen = [1, 2, 4, 5, 40]
        layer.selectByIds(chosen)
        zinc = {f.id(): f["zinc"] for f in layer.getFeatures()}
        out = processing.run("srl:embed_points", {
            "INPUT": QgsProcessingFeatureSourceDefinition(layer.id(), True), "MODEL": tiny_location_model,
            "OUTPUT": str(tmp_path / "sel.gpkg")})["OUTPUT"]
        table, _, _ = read_embedding_points(out)
        if own_source_fid:
            assert list(table.attributes["source_fid_1"]) == chosen
            assert list(table.attributes["source_fid"]) == [900 + i for i in chosen]
        else:
            assert list(table.attributes["source_fid"]) == chosen
        assert list(table.attributes["zinc"]) == [zinc[i] for i in chosen]
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
