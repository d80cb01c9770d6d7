"""Training work is never lost: whatever would fail after training (sampling a small valid area, the card's
band labels, the bundle folder, the card's figures, the JSON report) fails before it, or cannot fail."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from srl_core.bundle import CARD_NAME, WEIGHTS_NAME, ModelCard, load_bundle, save_bundle
from srl_core.errors import InputError, ModelError, OutputError
from srl_core.location_scale import encoding_resolution_km
from srl_core.model_build import build_bounded
from srl_core.model_ids import check_new_bundle
from srl_core.models.tile import build_from_config
from srl_core.progress import Progress
from training.commands import evaluate_locations, evaluate_tiles
from training.commands import tile2vec as tile2vec_command
from training.reproducibility import compare_metrics
from training.tile2vec import Tile2VecConfig, TripletSampler, open_training_rasters, train_tile2vec
from training.tile2vec.trainer import _common_pixel_size

ROOT = Path(__file__).resolve().parents[1]
CROP = ROOT / "tests" / "data" / "nc_landsat_crop.tif"  # 128 x 128 px, 5 bands
NODATA = -99999.0


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_raster(path: Path, size: int, valid: tuple[slice, slice] | None = None, epsg: int = 32617,
                 pixel: float = 30.0, bands: int = 2) -> str:
    """A float32 raster of noise, nodata outside ``valid`` (rows, cols) when given."""
    data = np.random.default_rng(0).normal(10, 1, (bands, size, size)).astype(np.float32)
    if valid is not None:
        keep = np.zeros((size, size), bool)
        keep[valid] = True
        data[:, ~keep] = NODATA
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, bands, gdal.GDT_Float32)
    ds.SetGeoTransform((0.0, pixel, 0.0, 0.0, 0.0, -pixel))
    ds.SetProjection(srs.ExportToWkt())
    for i in range(bands):
        ds.GetRasterBand(i + 1).SetNoDataValue(NODATA)
        ds.GetRasterBand(i + 1).WriteArray(data[i])
    ds = None
    return str(path)


def tiny(**changes) -> Tile2VecConfig:
    base = dict(tile_size=9, z_dim=4, neighbour_radius=4, batch_size=4, steps=3, spectral_stats=False)
    return Tile2VecConfig(**{**base, **changes})


# -- 1. the sampler draws from the valid area ------------------------------------------------------------
def test_a_small_valid_area_in_a_large_raster_never_fails_a_draw(tmp_path):
    """136 of 150,000 positions fit: 200 uniform tries per tile almost never found one (the run crashed)."""
    path = write_raster(tmp_path / "patch.tif", 400, (slice(200, 212), slice(100, 140)))
    sampler = TripletSampler(open_training_rasters([path]), tile_size=9, neighbour_radius=3,
                             distant_min_distance=12)
    batch = sampler.sample(32, np.random.default_rng(0))
    invalid = np.isnan(batch.tiles).any(axis=2).mean(axis=(-1, -2))
    assert (invalid <= 0.1).all()
    assert ((batch.col >= 100 - 1) & (batch.col <= 140 - 8)).all()
    far = np.hypot(batch.col[:, 0] - batch.col[:, 2], batch.row[:, 0] - batch.row[:, 2])
    assert (far >= 12).all()
    assert (np.hypot(batch.col[:, 0] - batch.col[:, 1], batch.row[:, 0] - batch.row[:, 1]) <= 3).all()
    again = sampler.sample(32, np.random.default_rng(0))  # seeded: the same draws
    assert (again.col == batch.col).all() and (again.row == batch.row).all()


@pytest.mark.parametrize("size, tile, radius", [(17, 17, 8), (40, 17, 8), (200, 9, 500)])
def test_a_raster_without_room_for_distant_tiles_is_refused_before_training(tmp_path, size, tile, radius):
    """The sampler fell back to the farthest tile, or the anchor itself, without a word: a 17 px raster
    trained on triplets of one tile thrice, a 40 px one on 'distant' tiles nearer than the minimum, and
    a neighbour radius wider than the raster drew neighbours from anywhere."""
    path = write_raster(tmp_path / "small.tif", size)
    with pytest.raises(InputError, match=r"of the tiles have no tile at least \d+ px away"):
        TripletSampler(open_training_rasters([path]), tile_size=tile, neighbour_radius=radius)


def test_rasters_are_drawn_by_their_whole_area_and_tiles_from_their_valid_area(tmp_path):
    """The recipes' raster mix stays what the shipped models were trained with (by whole area, a
    mosaic's ocean included); within a raster, only positions that fit are drawn."""
    whole = write_raster(tmp_path / "whole.tif", 60)
    quarter = write_raster(tmp_path / "quarter.tif", 60, (slice(0, 30), slice(0, 30)))
    sampler = TripletSampler(open_training_rasters([whole, quarter]), tile_size=8, neighbour_radius=3,
                             distant_min_distance=10)
    batch = sampler.sample(400, np.random.default_rng(1))
    anchors = batch.raster[:, 0]
    assert 0.4 < (anchors == 1).mean() < 0.6
    in_quarter = anchors == 1
    assert (batch.row[in_quarter, 0] <= 30 - 8).all() and (batch.col[in_quarter, 0] <= 30 - 8).all()


def test_training_inside_a_small_mask_finishes(tmp_path):
    raster = write_raster(tmp_path / "big.tif", 200)
    mask = tmp_path / "mask.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(mask), 200, 200, 1, gdal.GDT_Byte)
    ds.SetGeoTransform((0.0, 30.0, 0.0, 0.0, 0.0, -30.0))
    ds.SetProjection(gdal.Open(raster).GetProjection())
    inside = np.zeros((200, 200), np.uint8)
    inside[80:120, 80:120] = 1
    ds.GetRasterBand(1).WriteArray(inside)
    ds = None
    result = train_tile2vec([raster], tiny(batch_size=8), device="cpu", mask=str(mask))
    assert result.steps_done == 3


def test_a_raster_without_room_for_a_tile_is_refused_before_the_first_step(tmp_path):
    path = write_raster(tmp_path / "sliver.tif", 80, (slice(10, 70), slice(10, 15)))  # 5 px wide
    steps = []
    with pytest.raises(InputError, match="sliver.tif"):
        train_tile2vec([path], tiny(), device="cpu", progress=Progress(lambda f, m: steps.append(m)))
    assert not [m for m in steps if m.startswith("step")]


# -- 2., 3., 4. the command's checks before training -------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    tile2vec_command.register(parser.add_subparsers())
    return parser.parse_args(["tile2vec", str(CROP), "--steps", "2", "--batch-size", "4", "--z-dim", "4",
                              "--threads", "1", "--quiet", *argv])


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(tile2vec_command, "train_tile2vec",
                        lambda *a, **k: pytest.fail("trained although the export would fail"))


@pytest.mark.parametrize("option", ["--band-names", "--band-descriptions"])
def test_band_labels_of_another_count_are_refused_before_training(tmp_path, no_training, option):
    args = parse(["--out", str(tmp_path / "m"), option, "a,b"])  # the crop has 5 bands
    with pytest.raises(InputError, match=f"{option} gives 2 entries.*5 bands"):
        args.func(args)
    assert not (tmp_path / "m").exists()


def test_band_names_that_reorder_the_rasters_own_are_refused_before_training(tmp_path, no_training):
    """red, green, blue given for a raster whose bands say blue, green, red: the card called the blue
    band red, and the engine then fed the training raster's own bands to the model reversed."""
    described = tmp_path / "described.tif"
    ds = gdal.Translate(str(described), str(CROP))
    for i, name in enumerate(["blue", "green", "red", "nir", "swir1"]):
        ds.GetRasterBand(i + 1).SetDescription(name)
    ds = None
    parser = argparse.ArgumentParser()
    tile2vec_command.register(parser.add_subparsers())
    args = parser.parse_args(["tile2vec", str(described), "--out", str(tmp_path / "m"), "--quiet",
                              "--band-names", "red,green,blue,nir,swir1"])
    with pytest.raises(InputError, match="gives 'red' for band 1, but band 3 of .* is named so"):
        args.func(args)
    assert not (tmp_path / "m").exists()


def test_band_descriptions_are_not_truncated_by_the_card(tmp_path):
    from training.tile2vec import build_card

    result = train_tile2vec([str(CROP)], tiny(steps=1), device="cpu")
    with pytest.raises(InputError, match="2 band descriptions"):
        build_card(result, "m", band_descriptions=["a", "b"])


@pytest.mark.parametrize("inside", [".", "checkpoints"])
def test_checkpoints_in_the_bundle_folder_are_refused_before_training(tmp_path, no_training, inside):
    out = tmp_path / "m"
    args = parse(["--out", str(out), "--checkpoint-dir", str(out / inside)])
    with pytest.raises(InputError, match="checkpoint"):
        args.func(args)
    assert not out.exists()


@pytest.mark.parametrize("where", ["bundled models folder", "shipped model", "user models folder",
                                   "user model", "a model elsewhere"])
def test_checkpoints_in_a_models_folder_or_a_model_are_refused_before_training(tmp_path, no_training,
                                                                               user_models_dir, where):
    """--out there was refused, --checkpoint-dir not: its checkpoint.safetensors in SRL's models folder was
    warned of by every model listing, and in a shipped model's folder blocked that model's rebuild (found
    by an audit)."""
    from srl_core.bundle import BUNDLED_MODELS_DIR

    mine, elsewhere = user_models_dir / "mine", tmp_path / "elsewhere"
    for folder in (mine, elsewhere):
        folder.mkdir()
        (folder / "card.json").write_text("{}")
    checkpoints = {"bundled models folder": BUNDLED_MODELS_DIR / "scratch",
                   "shipped model": BUNDLED_MODELS_DIR / "bandstats" / "ck",
                   "user models folder": user_models_dir / "ck", "user model": mine / "ck",
                   "a model elsewhere": elsewhere / "ck"}[where]
    before = sorted(BUNDLED_MODELS_DIR.rglob("*"))
    args = parse(["--out", str(tmp_path / "m"), "--checkpoint-dir", str(checkpoints)])
    with pytest.raises(InputError, match=r"--checkpoint-dir .* is inside the model"):
        args.func(args)
    assert sorted(BUNDLED_MODELS_DIR.rglob("*")) == before and not checkpoints.exists()


def test_a_checkpoint_folder_that_is_a_file_is_refused_before_training(tmp_path, no_training):
    """It failed with a FileExistsError traceback, once the rasters were read (found by an audit)."""
    (tmp_path / "in.tif").write_text("not ours")
    args = parse(["--out", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "in.tif")])
    with pytest.raises(InputError, match="is a file, not a folder"):
        args.func(args)
    assert (tmp_path / "in.tif").read_text() == "not ours"


def test_a_checkpoint_folder_under_a_file_is_refused_before_training(tmp_path, no_training):
    """A NotADirectoryError traceback once the rasters were read (found by an audit)."""
    (tmp_path / "in.tif").write_text("not ours")
    args = parse(["--out", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "in.tif" / "ck")])
    with pytest.raises(InputError, match="lies under the file"):
        args.func(args)
    assert (tmp_path / "in.tif").read_text() == "not ours" and sorted(os.listdir(tmp_path)) == ["in.tif"]


def test_a_checkpoint_on_a_full_disk_is_a_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """A SafetensorError traceback; the last good checkpoint is kept for the run that resumes."""
    from safetensors import SafetensorError

    import training.tile2vec.trainer as trainer

    def full(tensors, path, metadata=None):
        Path(path).write_bytes(b"half")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(trainer, "save_file", full)
    args = parse(["--out", str(tmp_path / "m"), "--checkpoint-dir", str(tmp_path / "ck"),
                  "--checkpoint-every", "1"])
    with pytest.raises(OutputError, match="Could not write the checkpoint .*No space left"):
        args.func(args)
    assert os.listdir(tmp_path / "ck") == [] and not (tmp_path / "m").exists()


def test_a_bundle_folder_under_a_file_is_refused_before_training(tmp_path, no_training):
    (tmp_path / "afile.txt").write_text("hi")
    for out in (tmp_path / "afile.txt" / "m", tmp_path / "afile.txt" / "sub" / "m"):
        args = parse(["--out", str(out)])
        with pytest.raises(OutputError, match="Cannot write the model bundle"):
            args.func(args)
    assert (tmp_path / "afile.txt").read_text() == "hi" and sorted(os.listdir(tmp_path)) == ["afile.txt"]


def test_the_writability_check_leaves_no_trace(tmp_path):
    check_new_bundle("m", tmp_path / "new" / "deeper" / "m")
    assert os.listdir(tmp_path) == []


def _card() -> ModelCard:
    return ModelCard(id="tiny", kind="tile", architecture="tilenet",
                     config={"in_channels": 3, "variant": "compact", "z_dim": 4}, embedding_size=4)


def test_an_existing_empty_folder_is_written_into_not_replaced(tmp_path):
    """A mount point (or any folder the user made) cannot be renamed: the files go into it."""
    folder = tmp_path / "mnt"
    folder.mkdir()
    inode = folder.stat().st_ino
    save_bundle(build_from_config(_card().config), _card(), folder)
    assert folder.stat().st_ino == inode
    assert sorted(os.listdir(folder)) == [CARD_NAME, WEIGHTS_NAME]
    assert load_bundle(folder).card.id == "tiny"


def test_a_full_disk_is_a_clear_error_and_leaves_the_folder_as_it_was(tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    empty = tmp_path / "empty"
    empty.mkdir()
    for folder in (tmp_path / "new", empty):
        with pytest.raises(OutputError, match="No space left"):
            save_bundle(build_from_config(_card().config), _card(), folder)
    assert sorted(os.listdir(tmp_path)) == ["empty"] and os.listdir(empty) == []


# -- 5. the location card cannot fail after training -------------------------------------------------------
def test_a_location_encoder_with_sigma_0_is_refused_before_training():
    from training.location.trainer import LocationTrainingConfig

    encoder = {"encoding": {"name": "rff", "num_features": 8, "sigma": 0.0},
               "network": {"name": "linear", "dim_out": 4}}
    with pytest.raises(InputError, match="sigma"):
        LocationTrainingConfig(encoder=encoder).validate()
    stacked = {"name": "stack", "parts": [{"name": "rff", "num_features": 8, "sigma": -1.0}]}
    with pytest.raises(InputError, match="sigma"):
        LocationTrainingConfig(encoder={**encoder, "encoding": stacked}).validate()
    with pytest.raises(InputError, match="exceeds"):
        huge = {"name": "linear", "dim_out": 10**8}
        LocationTrainingConfig(encoder={**encoder, "network": huge}).validate()


def test_a_scale_that_is_not_positive_gives_no_resolution_instead_of_an_error():
    assert encoding_resolution_km({"name": "rff", "sigma": 0}) is None
    assert encoding_resolution_km({"name": "sphericalharmonics", "legendre_polys": 0}) is None
    assert encoding_resolution_km({"name": "stack", "parts": [{"name": "rff", "sigma": 0},
                                                              {"name": "rff", "sigma": 1.0}]}) > 0


# -- 6. the card's pixel size is in metres ----------------------------------------------------------------
def test_pixel_size_is_converted_to_metres_from_the_crs_units(tmp_path):
    feet = write_raster(tmp_path / "feet.tif", 40, epsg=2264, pixel=98.425)  # NC State Plane, US feet
    result = train_tile2vec([feet], tiny(steps=1), device="cpu")
    assert result.pixel_size == pytest.approx(30.0, abs=0.01)


def test_a_raster_in_degrees_is_refused_before_training(tmp_path):
    """It trained, and then the engines refused to embed it (tiles in degrees are not square on the
    ground): the whole run was wasted."""
    degrees = write_raster(tmp_path / "degrees.tif", 40, epsg=4326, pixel=0.00027)
    with pytest.raises(InputError, match="is in a geographic CRS"):
        train_tile2vec([degrees], tiny(steps=1), device="cpu")


def test_a_raster_of_unknown_metres_beside_one_in_metres_leaves_the_cards_pixel_size_unknown(tmp_path):
    """The card stated the first raster's size (30 m) though the model also learned from one whose
    metres are unknown (no CRS); the median of known sizes within 1.5x of each other is stated."""
    metres = write_raster(tmp_path / "metres.tif", 40, epsg=32617, pixel=30.0)
    near = write_raster(tmp_path / "near.tif", 40, epsg=32617, pixel=40.0)
    unknown = write_raster(tmp_path / "unknown.tif", 40, epsg=32617, pixel=30.0)
    ds = gdal.Open(unknown, gdal.GA_Update)
    ds.SetProjection("")
    ds = None
    assert open_training_rasters([unknown])[0].pixel_size_m is None
    assert _common_pixel_size(open_training_rasters([metres, unknown])) is None
    assert _common_pixel_size(open_training_rasters([metres, metres, near])) == pytest.approx(30.0)


# -- 7. a float in a card's config is bounded too -----------------------------------------------------------
def test_a_huge_float_in_a_config_is_refused_before_building():
    config = {"in_channels": 3, "variant": "compact", "z_dim": 4, "blocks": [1, 1, 1, 50000000.0]}
    with pytest.raises(ModelError, match=r"blocks\[3\] exceeds"):
        build_bounded(build_from_config, config, "Model 'x'")


# -- 8. the location protocol's figures are compared with their spread ---------------------------------------
def test_location_protocol_means_are_checked_against_their_sd():
    shipped = {"location_protocol": {"model": {"accuracy random": {"mean": 0.80, "sd": 0.004}},
                                     "command": "python -m training evaluate-locations"}}
    drifted = {"location_protocol": {"model": {"accuracy random": {"mean": 0.0, "sd": 0.0}}}}
    checks = {c.path: c for c in compare_metrics(shipped, drifted)}
    assert list(checks) == ["location_protocol.model.accuracy random.mean"]  # "sd" is a spread, not a metric
    check = checks["location_protocol.model.accuracy random.mean"]
    assert check.checked and check.spread == 0.004 and not check.ok
    near = {"location_protocol": {"model": {"accuracy random": {"mean": 0.803, "sd": 0.0}}}}
    assert compare_metrics(shipped, near)[0].ok


# -- 9. the JSON report's path is checked before the evaluation ---------------------------------------------
@pytest.mark.parametrize("command", ["evaluate-tiles", "evaluate-locations"])
def test_evaluations_check_their_json_path_first(tmp_path, monkeypatch, command):
    import training.evaluate.location_protocol as protocol

    module = {"evaluate-tiles": evaluate_tiles, "evaluate-locations": evaluate_locations}[command]
    monkeypatch.setattr(evaluate_tiles, "evaluate_tiles", lambda *a, **k: pytest.fail("evaluated"))
    monkeypatch.setattr(protocol, "draw_points", lambda *a, **k: pytest.fail("evaluated"))
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    args = parser.parse_args([command, "--json", str(tmp_path / "missing" / "r.json")])
    with pytest.raises(OutputError, match="does not exist"):
        args.func(args)


@pytest.mark.parametrize("command", ["evaluate-tiles", "evaluate-locations"])
def test_an_evaluation_never_writes_its_json_into_a_model_it_reads(tmp_path, monkeypatch, command):
    """``--json mymodel/card.json`` wrote the table over the evaluated model's card: the model no longer
    loaded (found by an audit). Refused before any work, the card untouched."""
    import shutil

    import training.evaluate.location_protocol as protocol

    module = {"evaluate-tiles": evaluate_tiles, "evaluate-locations": evaluate_locations}[command]
    monkeypatch.setattr(evaluate_tiles, "evaluate_tiles", lambda *a, **k: pytest.fail("evaluated"))
    monkeypatch.setattr(protocol, "draw_points", lambda *a, **k: pytest.fail("evaluated"))
    bundled = {"evaluate-tiles": "tile2vec-l8-rgb-compact",
               "evaluate-locations": "satclip-style-bluemarble-sh20-basis10"}[command]
    model = tmp_path / "mymodel"
    shutil.copytree(Path(__file__).resolve().parent.parent / "resources" / "models" / bundled, model)
    card = (model / "card.json").read_bytes()
    option = "--transfer-model" if command == "evaluate-tiles" else "--model"
    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    for json_path in (model / "card.json", model / "scores.json"):
        args = parser.parse_args([command, option, f"{tmp_path / 'other'},{model}", "--json", str(json_path)])
        with pytest.raises(OutputError, match="inside the folder of model"):
            args.func(args)
    assert (model / "card.json").read_bytes() == card and sorted(p.name for p in model.iterdir()) == [
        "card.json", "weights.safetensors"]


def test_an_evaluation_writes_neither_into_a_bundle_nor_into_a_shipped_card(tmp_path, monkeypatch):
    """--json into the folder --train-own-scene trains into (made empty beforehand), or into any model's
    folder, replaced a card; --write-metrics on two bands replaced a shipped card's three tables (a review).
    Each refused before any work; make models passes --rebuild-bundled."""
    import training.evaluate.location_protocol as protocol

    monkeypatch.setattr(evaluate_tiles, "evaluate_tiles", lambda *a, **k: pytest.fail("evaluated"))
    monkeypatch.setattr(protocol, "draw_points", lambda *a, **k: pytest.fail("evaluated"))
    parser = argparse.ArgumentParser()
    evaluate_tiles.register(parser.add_subparsers())
    evaluate_locations.register(parser._subparsers._group_actions[0])
    (tmp_path / "own-s0").mkdir()
    shipped = Path(__file__).resolve().parent.parent / "resources" / "models"
    for argv, refused in [
        (["evaluate-tiles", "--train-own-scene", str(tmp_path / "own"), "--seeds", "1",
          "--json", str(tmp_path / "own-s0" / "card.json")], "inside the folder of model"),
        (["evaluate-tiles", "--transfer-model", "mosaiks-rcf", "--json",
          str(shipped / "bandstats" / "r.json")], "inside the model bundle"),
        (["evaluate-tiles", "--model", "bandstats", "--bands", "10,20", "--write-metrics"],
         "would rewrite the card of 'bandstats', a model shipped with SRL"),
        (["evaluate-locations", "--model", "satclip-style-bluemarble-sh20-basis10", "--write-metrics"],
         "a model shipped with SRL"),
    ]:
        args = parser.parse_args(argv)
        with pytest.raises((InputError, OutputError), match=refused):
            args.func(args)
    assert list((tmp_path / "own-s0").iterdir()) == [] and not (shipped / "bandstats" / "r.json").exists()


# -- 10. the card says what the protocol run did -------------------------------------------------------------
def test_the_protocol_text_names_the_runs_own_settings():
    from training.evaluate.location_protocol import RowResult, card_metrics
    from training.evaluate.locations import EvalPoints, Score

    points = EvalPoints(lon=np.zeros(120), lat=np.zeros(120), label=np.zeros(120, int))
    score = Score("m", [0.5, 0.6, 0.7], [0.5, 0.5, 0.5], 4, 0.0, {2.5: [0.4] * 3, 10.0: [0.5] * 3})
    result = RowResult("m", 4, 1, 1, [score])
    text = card_metrics(result, [], "pytest", [points], 3, (2.5,))["protocol"]
    assert "3-fold" in text and "2.5/10 degree" in text and "120 area-uniform" in text
    assert "5-fold" not in text and "water" not in text
    points.target = np.zeros(120)
    assert "distance to water" in card_metrics(result, [], "pytest", [points], 3, (2.5,))["protocol"]


def test_the_nodata_training_was_told_is_on_the_card_and_applied_by_the_engine(tmp_path):
    """``--nodata 0`` kept a scene's fill out of training but not off the card: the engine then embedded
    the fill tiles of the same raster as data, far outside anything the model saw."""
    from srl_core.tiles import embed_raster
    from training.tile2vec import export_bundle

    data = gdal.Open(str(CROP)).ReadAsArray()
    data = np.where(data == -99999, 0, data).astype(np.float32)  # the crop's nodata border, as undeclared 0
    data[:, 96:, :] = 0.0  # and a block of fill
    path = tmp_path / "fill.tif"
    src = gdal.Open(str(CROP))
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 128, 128, 5, gdal.GDT_Float32)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for i in range(5):
        ds.GetRasterBand(i + 1).WriteArray(data[i])
    ds = None
    result = train_tile2vec([str(path)], tiny(steps=2, nodata=0.0), device="cpu")
    folder = export_bundle(result, tmp_path / "m", "fill-model")
    assert load_bundle(folder).card.inputs["nodata"] == 0.0
    embedded = embed_raster(path, tmp_path / "e.tif", str(folder), device="cpu", stride=16)
    emb = gdal.Open(embedded.path).ReadAsArray()
    assert np.isnan(emb[:, -1, :]).all()  # the fill's tiles are nodata, as in training
    assert any("taken as nodata" in choice for choice in embedded.choices)


# -- a training that diverges stops, its checkpoint intact (an audit, session 24) ---------------------------
def test_a_diverging_training_stops_at_once_and_keeps_its_last_good_checkpoint(tmp_path):
    """With --lr 1e9 the loss was NaN from early on, yet every step ran, each checkpoint was written over
    with NaN weights, and only the export failed, advising 'an intact checkpoint'."""
    from safetensors.numpy import load_file

    path = write_raster(tmp_path / "r.tif", 60)
    with pytest.raises(ModelError, match="diverged"):
        train_tile2vec([path], tiny(steps=200, lr=1e9), device="cpu", checkpoint_dir=tmp_path / "ck",
                       checkpoint_every=1)
    saved = load_file(str(tmp_path / "ck" / "checkpoint.safetensors"))
    assert all(np.isfinite(t).all() for t in saved.values())


@pytest.mark.parametrize("change, word", [({"z_dim": 0}, "z_dim"), ({"lr": -1.0}, "learning rate"),
                                          ({"lr": float("nan")}, "learning rate")])
def test_settings_that_cannot_train_are_refused_in_one_sentence(tmp_path, change, word):
    """They gave a ValueError traceback, z_dim 0 after the rasters were read."""
    with pytest.raises(InputError, match=word):
        train_tile2vec([write_raster(tmp_path / "r.tif", 40)], tiny(**change), device="cpu")


def test_an_image_chip_without_georeferencing_still_trains(tmp_path):
    """A plain PNG/JPG chip is an ordinary Tile2Vec input; only georeferenced rasters the engines refuse
    (in degrees, non-square pixels) are refused before training."""
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "plain.tif"), 40, 40, 2, gdal.GDT_Float32)
    ds.WriteArray(np.random.default_rng(0).normal(10, 1, (2, 40, 40)).astype(np.float32))
    ds = None
    result = train_tile2vec([str(tmp_path / "plain.tif")], tiny(steps=1), device="cpu")
    assert result.steps_done == 1 and result.pixel_size is None


def test_an_srl_output_is_refused_as_imagery_to_train_on(tmp_path):
    """After Embed the new embedding raster is the active layer, and the toolbar's Train took it (as
    Processing and the command line did): a model of embeddings of embeddings, without a word."""
    path = write_raster(tmp_path / "emb.tif", 60)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.SetMetadataItem("SRL_KIND", "tile_embedding")
    ds = None
    with pytest.raises(InputError, match="is an SRL output \\(tile embedding\\), not imagery"):
        train_tile2vec([path], tiny(steps=1), device="cpu")
