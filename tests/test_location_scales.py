"""Multi-scale location encoders (stack + scale_sum) and the resolution a card states."""

import pytest
import torch

from srl_core.bundle import ModelCard, load_bundle, save_bundle
from srl_core.location_scale import encoding_resolution_km as resolution_km
from srl_core.models.location import build_from_config

CONFIG = {
    "encoding": {"name": "stack", "parts": [{"name": "sphericalharmonics", "legendre_polys": 4},
                                            {"name": "rff", "num_features": 8, "sigma": 2.0, "seed": 1},
                                            {"name": "rff", "num_features": 8, "sigma": 50.0, "seed": 2}]},
    "network": {"name": "scale_sum", "dim_out": 6, "scale_dropout": 0.5,
                "branches": [{"name": "siren", "dim_hidden": 8, "num_layers": 1, "w0_initial": 1.0},
                             {"name": "linear"}, {"name": "linear"}]},
}


def test_stack_concatenates_parts_and_scale_sum_adds_their_branches():
    torch.manual_seed(0)
    model = build_from_config(CONFIG).eval()
    assert model.posenc.part_dims == [16, 16, 16] and model.posenc.embedding_dim == 48
    x = torch.tensor([[10.0, 20.0], [-170.0, -80.0], [0.0, 0.0]])
    feats = model.posenc(x)
    parts = feats.split([16, 16, 16], dim=1)
    expected = sum(branch(p) for branch, p in zip(model.nnet.branches, parts))
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_scale_dropout_acts_in_training_only_and_keeps_the_mean():
    torch.manual_seed(0)
    model = build_from_config(CONFIG)
    x = torch.tensor([[30.0, 40.0]]).repeat(4000, 1)
    model.eval()
    with torch.no_grad():
        clean = model(x)
        assert torch.equal(clean, model(x))
        model.train()
        noisy = model(x)
    assert not torch.allclose(noisy, clean)  # whole fine branches dropped for some samples
    assert torch.allclose(noisy.mean(0), clean.mean(0), atol=0.1 * float(clean.abs().max()) + 1e-3)


def test_scale_sum_refuses_mismatched_branches():
    bad = {**CONFIG, "network": {**CONFIG["network"], "branches": CONFIG["network"]["branches"][:2]}}
    with pytest.raises(ValueError, match="branches"):
        build_from_config(bad)


def test_multiscale_bundle_round_trips(tmp_path):
    torch.manual_seed(0)
    model = build_from_config(CONFIG).eval()
    card = ModelCard(id="ms", kind="location", architecture="location_encoder", config=CONFIG,
                     embedding_size=6)
    loaded = load_bundle(save_bundle(model, card, tmp_path / "ms"))
    x = torch.tensor([[5.0, 6.0], [100.0, -30.0]])
    with torch.no_grad():
        assert torch.allclose(loaded.module(x), model(x), atol=1e-6)


def test_resolution_is_the_finest_half_wavelength():
    sh20 = {"name": "sphericalharmonics", "legendre_polys": 20}
    assert resolution_km(sh20) == pytest.approx(1000.8, abs=0.1)
    assert resolution_km({"name": "rff", "sigma": 10.0}) == pytest.approx(6371.0088 / (20.0 * 2 ** 0.5))
    assert resolution_km(CONFIG["encoding"]) == pytest.approx(6371.0088 / (100.0 * 2 ** 0.5))
    assert resolution_km({"name": "wrap"}) is None


def test_cards_state_their_resolution_in_km():
    from srl_core.bundle import load_model
    from training.location.export import location_inputs

    assert location_inputs(CONFIG)["resolution_km"] == pytest.approx(45.0, abs=0.1)
    assert "resolution_km" not in location_inputs({"encoding": {"name": "wrap"}})
    # an appended basis finer than the network's encoding is what resolves places (the card said 5,000 km)
    basis40 = {"encoding": {"name": "sphericalharmonics", "legendre_polys": 4},
               "append": {"name": "sphericalharmonics", "legendre_polys": 40}}
    assert location_inputs(basis40)["resolution_km"] == pytest.approx(500.4, abs=0.1)
    shipped = load_model("satclip-style-bluemarble-sh20-basis10").card
    assert shipped.inputs["resolution_km"] == pytest.approx(1000.8, abs=0.1)


def test_a_cards_resolution_counts_its_appended_basis_and_a_bad_one_is_refused():
    """A card without a stated resolution resolves what its finest part does, appended basis included; a
    hand-edited one that is not a positive number is refused naming the field (it was a traceback for
    "abc", "about nan km", or no check at all for a negative value)."""
    from dataclasses import replace

    from srl_core.errors import ModelError
    from srl_core.location_scale import resolution_km as card_resolution_km

    shipped = load_model_card()
    config = {**shipped.config, "encoding": {"name": "sphericalharmonics", "legendre_polys": 4},
              "append": {"name": "sphericalharmonics", "legendre_polys": 40}}
    unstated = replace(shipped, config=config, inputs={"coordinates": "lon/lat WGS84 degrees"})
    assert card_resolution_km(unstated) == pytest.approx(500.4, abs=0.1)
    for bad in ("abc", float("nan"), -5, 0):
        with pytest.raises(ModelError, match="resolution_km must be a positive number"):
            card_resolution_km(replace(shipped, inputs={**shipped.inputs, "resolution_km": bad}))


def load_model_card() -> ModelCard:
    from srl_core.bundle import load_model

    return load_model("satclip-style-bluemarble-sh20-basis10").card


def test_a_trained_cards_description_names_its_encoder():
    from training.location.export import _default_description
    from training.location.trainer import LocationTrainingConfig

    rff = LocationTrainingConfig(encoder={"encoding": {"name": "rff", "sigma": 2.0},
                                          "network": {"name": "mlp", "dim_hidden": 8}})
    text = _default_description(rff, None, ["bluemarble"])
    assert text.startswith("Random-Fourier-feature + MLP location encoder") and "SIREN" not in text
    default = _default_description(LocationTrainingConfig(), None, ["bluemarble"])
    assert default.startswith("Spherical-harmonics + SIREN")


# Every encoding with a scale, given with and without it: the configs a card may hold.
SCALED_ENCODINGS = [
    {"name": "sphericalharmonics", "legendre_polys": 20}, {"name": "spherical_harmonics"},
    {"name": "rff", "sigma": 5.0}, {"name": "geoclip"}, {"name": "geoclip", "sigmas": [1.0, 32.0]},
    {"name": "spherec"}, {"name": "theory", "min_radius": 0.1}, {"name": "space2vec_grid"},
    {"name": "rbf", "num_anchors": 2000}, {"name": "tile"}, {"name": "nerf"},
    {"name": "nerf", "frequency_num": 6},
]


@pytest.mark.parametrize("config", SCALED_ENCODINGS, ids=lambda c: "-".join(map(str, c.values())))
def test_the_stated_resolution_is_where_an_encoding_starts_telling_places_apart(config):
    """Places a twentieth of the resolution apart get near-identical encodings, places one resolution apart
    clearly different ones (200 places, shifted east). Until 28 Nov 2026 an encoding that left its scale to
    its default (spherec without min_radius, every GeoCLIP import, RBF, tile, NeRF) had no resolution, so
    the scale warning never spoke for it."""
    import numpy as np

    from srl_core.location_scale import KM_PER_DEGREE
    from srl_core.models.location.encoder import build_encoding

    km = resolution_km(config)
    assert km is not None and km > 0
    rng = np.random.default_rng(0)
    places = np.column_stack([rng.uniform(-150, 150, 200), rng.uniform(-60, 60, 200)])
    encoding = build_encoding(config).double().eval()

    def median_cosine(fraction):
        shifted = places.copy()
        shifted[:, 0] += fraction * km / KM_PER_DEGREE / np.cos(np.radians(places[:, 1]))
        with torch.no_grad():
            a, b = encoding(torch.tensor(places)), encoding(torch.tensor(shifted))
        return torch.nn.functional.cosine_similarity(a, b).median().item()

    assert median_cosine(0.05) > 0.99
    assert median_cosine(1.0) < 0.9


def test_default_scales_are_the_encodings_own():
    """location_scale keeps the encodings' default scales without importing torch; they must stay theirs."""
    import inspect

    from srl_core import location_scale as ls
    from srl_core.models.location.encodings import RBF, RFF, NeRF, Tile
    from srl_core.models.location.geoclip import EQUAL_EARTH_SCALE, EqualEarthRFF
    from srl_core.models.location.multiscale import MultiScale
    from srl_core.models.location.spherical_harmonics import SphericalHarmonics

    def default(cls, name):
        return inspect.signature(cls.__init__).parameters[name].default

    assert default(SphericalHarmonics, "legendre_polys") == ls.DEFAULT_LEGENDRE_POLYS
    assert default(RFF, "sigma") == ls.DEFAULT_RFF_SIGMA
    assert default(MultiScale, "min_radius") == ls.DEFAULT_MIN_RADIUS
    assert tuple(default(EqualEarthRFF, "sigmas")) == ls.DEFAULT_GEOCLIP_SIGMAS
    assert default(RBF, "kernel_size") == ls.DEFAULT_RBF_KERNEL
    assert tuple(default(Tile, "cells")) == ls.DEFAULT_TILE_CELLS
    assert tuple(default(Tile, "extent")) == ls.DEFAULT_TILE_EXTENT
    assert EQUAL_EARTH_SCALE == ls.GEOCLIP_SCALE
    assert default(NeRF, "frequency_num") == ls.DEFAULT_NERF_OCTAVES


def test_a_geoclip_import_warns_of_points_closer_than_it_resolves():
    """An imported GeoCLIP card states no resolution; its sigmas give about 24 km (finest 2^8), so points in
    groups 300 m apart are warned of."""
    import numpy as np

    from srl_core.location_scale import scale_warning

    encoding = {"name": "geoclip", "sigmas": [1.0, 16.0, 256.0], "num_features": 256}
    card = ModelCard(id="geoclip-imported", kind="location", architecture="location_encoder",
                     embedding_size=512, config={"encoding": encoding, "network": {"name": "mlp"}})
    assert 20 < resolution_km(card.config["encoding"]) < 30
    rng = np.random.default_rng(1)
    groups = np.array([[5.0, 50.0], [6.0, 50.5], [5.5, 51.0]])
    points = np.concatenate([g + rng.normal(0, 0.003, (30, 2)) for g in groups])
    assert "groups" in scale_warning(card, points)
