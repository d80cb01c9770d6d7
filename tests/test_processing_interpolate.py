"""Interpolate a field through processing.run: a smooth known surface is recovered, CV scores
are returned and logged, outputs are styled (ramp + uncertainty)."""

from __future__ import annotations

import json

import numpy as np
import processing
import pytest
from conftest import UTM17N, _crs_wkt
from osgeo import gdal
from qgis.core import QgsProject, QgsSingleBandPseudoColorRenderer

from srl_core.vector.points import write_points


@pytest.fixture
def sample_points(tmp_path):
    """80 points over 2 x 2 km (UTM 17N) with value = 0.01 * x_local + 5 (a plane), and a class."""
    rng = np.random.default_rng(3)
    xy = np.column_stack([500000 + rng.uniform(0, 2000, 80), 4000000 + rng.uniform(0, 2000, 80)])
    value = 0.01 * (xy[:, 0] - 500000) + 5.0
    kind = ["west" if x < 501000 else "east" for x in xy[:, 0]]
    path = tmp_path / "samples.gpkg"
    write_points(str(path), xy, _crs_wkt(UTM17N), {"value": value, "kind": kind})
    return path


def test_interpolate_regression_recovers_a_plane(srl_provider, sample_points, tmp_path):
    pred, unc = tmp_path / "pred.tif", tmp_path / "unc.tif"
    result = processing.run(
        "srl:interpolate",
        {
            "INPUT": str(sample_points),
            "FIELD": "value",
            "RESOLUTION": 100,
            "EXTENT": "500000,502000,4000000,4002000 [EPSG:32617]",
            "MEMBERS": 4,
            "OUTPUT": str(pred),
            "OUTPUT_UNCERTAINTY": str(unc),
        },
    )
    cv = json.loads(result["CV_SCORES"])
    assert {c["scheme"] for c in cv} == {"random", "spatial"}
    assert "Cross-validation" in result["REPORT"]
    grid = gdal.Open(str(pred)).ReadAsArray()
    assert grid.shape == (20, 20)
    expected = 0.01 * (np.arange(20) * 100 + 50) + 5.0
    assert np.nanmean(np.abs(grid[5:15, 5:15] - expected[None, 5:15])) < 1.5
    assert np.isfinite(gdal.Open(str(unc)).ReadAsArray()).all()


def test_interpolate_classes_and_styles(srl_provider, sample_points, qgis_new_project, tmp_path):
    processing.runAndLoadResults(
        "srl:interpolate",
        {
            "INPUT": str(sample_points),
            "FIELD": "kind",
            "RESOLUTION": 200,
            "MEMBERS": 4,
            "OUTPUT": str(tmp_path / "c.tif"),
            "OUTPUT_UNCERTAINTY": str(tmp_path / "cu.tif"),
        },
    )
    processing.runAndLoadResults(
        "srl:interpolate",
        {
            "INPUT": str(sample_points),
            "FIELD": "value",
            "RESOLUTION": 200,
            "MEMBERS": 4,
            "OUTPUT": str(tmp_path / "v.tif"),
            "OUTPUT_UNCERTAINTY": str(tmp_path / "vu.tif"),
        },
    )
    layers = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    classes = next(lyr for name, lyr in layers.items() if name.startswith("kind predicted"))
    assert sorted(c.label for c in classes.renderer().classes()) == ["east", "west"]
    value = next(lyr for name, lyr in layers.items() if name.startswith("value predicted"))
    assert "spatial CV" in value.name()
    assert isinstance(value.renderer(), QgsSingleBandPseudoColorRenderer)
    assert isinstance(layers["value uncertainty"].renderer(), QgsSingleBandPseudoColorRenderer)


def test_interpolate_with_a_multiscale_encoding(srl_provider, sample_points, tmp_path):
    result = processing.run(
        "srl:interpolate",
        {
            "INPUT": str(sample_points),
            "FIELD": "value",
            "RESOLUTION": 250,
            "MEMBERS": 2,
            "ENCODING": "theory",
            "OUTPUT": str(tmp_path / "t.tif"),
            "OUTPUT_UNCERTAINTY": str(tmp_path / "tu.tif"),
        },
    )
    assert "Location encoding: theory" in result["REPORT"]
    assert np.isfinite(gdal.Open(str(tmp_path / "t.tif")).ReadAsArray()).any()


def test_interpolate_meuse_zinc_real_data(srl_provider, qgis_new_project, tmp_path):
    """The Meuse soil samples (155 points, RD New): zinc mapped at 100 m with CV scores."""
    from conftest import DATA_DIR

    result = processing.runAndLoadResults(
        "srl:interpolate",
        {
            "INPUT": str(DATA_DIR / "meuse" / "meuse.shp"),
            "FIELD": "zinc",
            "RESOLUTION": 100,
            "MEMBERS": 4,
            "OUTPUT": str(tmp_path / "zinc.tif"),
            "OUTPUT_UNCERTAINTY": str(tmp_path / "zinc_sd.tif"),
        },
    )
    scores = {c["scheme"]: c for c in json.loads(result["CV_SCORES"])}
    assert scores["random"]["folds"] == 5 and "RMSE" in scores["spatial"]
    # Location alone explains part of zinc's variation along the river (R² well above 0).
    assert scores["random"]["R2"] > 0.2
    zinc = gdal.Open(str(tmp_path / "zinc.tif")).ReadAsArray()
    assert 100 < np.nanmedian(zinc) < 1000  # ppm, the samples range 113..1839
    names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    assert any(n.startswith("zinc predicted (R2") for n in names) and "zinc uncertainty" in names


def test_interpolate_meuse_max_distance(srl_provider, tmp_path):
    """Meuse (RD New, metres): the samples follow the river diagonally, so much of their bounding box is
    far from any sample; with MAX_DISTANCE = 250 m those pixels are nodata in both outputs."""
    from conftest import DATA_DIR

    from srl_core.vector.points import read_points

    shp = DATA_DIR / "meuse" / "meuse.shp"
    common = {"INPUT": str(shp), "FIELD": "zinc", "RESOLUTION": 100, "MEMBERS": 2}
    result = processing.run(
        "srl:interpolate",
        {
            **common,
            "MAX_DISTANCE": 250,
            "OUTPUT": str(tmp_path / "zinc.tif"),
            "OUTPUT_UNCERTAINTY": str(tmp_path / "zinc_sd.tif"),
        },
    )
    ds = gdal.Open(str(tmp_path / "zinc.tif"))
    zinc, gt = ds.ReadAsArray(), ds.GetGeoTransform()
    sd = gdal.Open(str(tmp_path / "zinc_sd.tif")).ReadAsArray()
    xy = read_points(str(shp)).xy
    rows, cols = np.mgrid[0 : zinc.shape[0], 0 : zinc.shape[1]]
    centres = np.column_stack([gt[0] + (cols.ravel() + 0.5) * gt[1], gt[3] + (rows.ravel() + 0.5) * gt[5]])
    dist = np.sqrt(((centres[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2)).min(axis=1).reshape(zinc.shape)
    far = dist > 250
    assert 0.2 < far.mean() < 0.8  # a large share of the box, not all of it
    assert np.isnan(zinc[far]).all() and np.isnan(sd[far]).all()
    assert np.isfinite(zinc[~far]).all() and np.isfinite(sd[~far]).all()
    assert f"{int(far.sum())} of {far.size} pixels" in result["REPORT"]

    # 0, the default, means no limit: every pixel of the box gets a value
    processing.run(
        "srl:interpolate",
        {**common, "OUTPUT": str(tmp_path / "all.tif"), "OUTPUT_UNCERTAINTY": str(tmp_path / "all_sd.tif")},
    )
    assert np.isfinite(gdal.Open(str(tmp_path / "all.tif")).ReadAsArray()).all()


def test_interpolate_a_layer_named_like_its_file_among_others(srl_provider, sample_points, tmp_path):
    """Layer 'samples' of samples.gpkg, which also holds 'decoy' (the values reversed): QGIS hands such a
    layer over as the file alone, and the run was refused ("holds 2 layers ... |layername=decoy"),
    naming the wrong one."""
    from osgeo import ogr
    from qgis.core import QgsVectorLayer

    path = tmp_path / "samples.gpkg"
    ds = ogr.Open(str(path), 1)
    decoy = ds.CopyLayer(ds.GetLayerByName("samples"), "decoy")
    for feature in decoy:
        feature.SetField("value", 30.0 - feature.GetField("value"))
        decoy.SetFeature(feature)
    ds = None
    layer = QgsVectorLayer(f"{path}|layername=samples", "samples", "ogr")
    assert layer.isValid()
    pred = tmp_path / "pred.tif"
    processing.run("srl:interpolate", {"INPUT": layer, "FIELD": "value", "RESOLUTION": 100, "MEMBERS": 2,
                                       "OUTPUT": str(pred), "OUTPUT_UNCERTAINTY": str(tmp_path / "unc.tif")})
    grid = gdal.Open(str(pred)).ReadAsArray()
    assert np.nanmean(grid[:, :5]) < np.nanmean(grid[:, -5:]) - 10  # rising eastwards: the layer chosen


def test_a_maximum_distance_that_is_not_a_number_is_refused(srl_provider, sample_points, tmp_path):
    """NaN (from a script or qgis_process) was read as "no limit" and the maps written (an audit)."""
    from qgis.core import QgsProcessingException

    refused = "maximum distance to the nearest sample must be a positive"
    with pytest.raises(QgsProcessingException, match=refused):
        processing.run("srl:interpolate", {"INPUT": str(sample_points), "FIELD": "value", "RESOLUTION": 100.0,
                                           "MAX_DISTANCE": float("nan"), "OUTPUT": str(tmp_path / "p.tif"),
                                           "OUTPUT_UNCERTAINTY": str(tmp_path / "u.tif")})
    assert not list(tmp_path.glob("*.tif"))


def test_an_extent_drawn_across_180_degrees_stays_the_area_drawn(srl_provider, tmp_path):
    """Pacific points in EPSG:4326 and an extent drawn on a Pacific map (EPSG:3832): QGIS turned the extent
    into -180..180, so the map of 176-184° E came out round the globe, 96 % of it extrapolated."""
    rng = np.random.default_rng(0)
    lon = rng.uniform(176, 184, 150)
    lonlat = np.column_stack([np.where(lon > 180, lon - 360, lon), rng.uniform(-20, -12, 150)])
    path = tmp_path / "pacific.gpkg"
    write_points(str(path), lonlat, _crs_wkt(4326), {"value": np.sin(np.radians(lon)) + lonlat[:, 1]})
    pred = tmp_path / "pred.tif"
    processing.run("srl:interpolate", {
        "INPUT": str(path), "FIELD": "value", "RESOLUTION": 0.1, "MEMBERS": 2,
        "EXTENT": "2950000,3750000,-2200000,-1400000 [EPSG:3832]",
        "OUTPUT": str(pred), "OUTPUT_UNCERTAINTY": str(tmp_path / "sd.tif")})
    ds = gdal.Open(str(pred))
    west = ds.GetGeoTransform()[0]
    assert 176 < west < 177 and 60 < ds.RasterXSize < 80  # about 7.2° of 0.1° cells, not 360°
    # and one across 0° is no crossing of 180° (asked of QGIS always, it came out 0..359.8°)
    path = tmp_path / "greenwich.gpkg"
    write_points(str(path), lonlat - [180.0, 0.0], _crs_wkt(4326), {"value": lonlat[:, 1]})
    processing.run("srl:interpolate", {
        "INPUT": str(path), "FIELD": "value", "RESOLUTION": 0.1, "MEMBERS": 2,
        "EXTENT": "-445000,445000,-2200000,-1400000 [EPSG:3857]",
        "OUTPUT": str(tmp_path / "g.tif"), "OUTPUT_UNCERTAINTY": str(tmp_path / "gsd.tif")})
    ds = gdal.Open(str(tmp_path / "g.tif"))
    assert -4.1 < ds.GetGeoTransform()[0] < -3.9 and 75 < ds.RasterXSize < 85
