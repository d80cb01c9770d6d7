"""Location encodings and networks: formulas, SatCLIP's harmonic ordering, numerics, configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from location_reference import published_sh

from srl_core.bundle import ModelCard, load_bundle, save_bundle
from srl_core.models.location import (
    LocationEncoder,
    SphericalHarmonics,
    build_encoding,
    build_from_config,
    encoding_names,
    wavelengths,
)

# Poles, antimeridian (both signs), the origin and random points.
SPECIAL = np.array(
    [[0, 90], [0, -90], [180, 0], [-180, 0], [180, 90], [-180, -90], [179.9999, 89.9999], [0, 0], [-0.0, 0.0]]
)


def sample_points(n: int = 400, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = np.column_stack([rng.uniform(-180, 180, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))])
    pole_lat = (90 - rng.uniform(0, 0.05, 50)) * rng.choice([1, -1], 50)
    near_pole = np.column_stack([rng.uniform(-180, 180, 50), pole_lat])
    return np.concatenate([SPECIAL, pts, near_pole]).astype(np.float32).astype(np.float64)


def encode(module: torch.nn.Module, lonlat: np.ndarray, dtype=torch.float64) -> np.ndarray:
    with torch.no_grad():
        return module(torch.as_tensor(lonlat, dtype=dtype)).numpy()


def test_sh_matches_published_satclip_formula_and_constants():
    pts = sample_points()
    ours = encode(SphericalHarmonics(10), pts)
    assert ours.shape == (len(pts), 100)
    # scipy's lpmv forms sqrt(1 - x^2), a little less exact near the poles than our sin(theta).
    assert np.abs(ours - published_sh(pts, 10)).max() < 1e-8
    # Constants of SatCLIP's generated spherical_harmonics_ylm.py (2023-07-26), in column order
    # l=0; l=1: m=-1, 0, 1; l=2: m=-2, -1, 0.
    lon, lat = 37.0, -21.0
    phi, theta = math.radians(lon + 180), math.radians(lat + 90)
    c, s = math.cos(theta), math.sin(theta)
    expected = [
        0.886226925452758,
        0.48860251190292 * s * math.sin(phi),
        1.53499006191973 * c,
        0.48860251190292 * s * math.cos(phi),
        0.18209140509868 * (3.0 - 3.0 * c**2) * math.sin(2 * phi),
        1.09254843059208 * s * math.sin(phi) * c,
        2.97249547320451 * c**2 - 0.990831824401503,
    ]
    got = encode(SphericalHarmonics(3), np.array([[lon, lat]]))[0]
    assert np.allclose(got[:7], expected, atol=1e-12)


def test_sh_float32_accuracy_and_no_nan_to_L40():
    pts = sample_points(seed=1)
    ref = published_sh(pts, 40)
    got = encode(SphericalHarmonics(40), pts, dtype=torch.float32)
    assert got.dtype == np.float32 and np.isfinite(got).all()
    assert np.abs(got - ref).max() <= 1e-5


def test_sh_float64_to_L100_orthonormal():
    pts = sample_points(n=100, seed=2)
    sh = SphericalHarmonics(100, normalisation="orthonormal")
    got = encode(sh, pts)
    assert got.shape == (len(pts), 10000) and np.isfinite(got).all()
    # Spot-check high degrees against the independent formula (scipy is exact enough to l = 100).
    pairs = [(deg, m) for deg in (60, 99) for m in (-30, -7, 0, 5, 30)]
    ref = published_sh(pts, 100, normalisation="orthonormal", pairs=pairs)
    cols = [deg * deg + deg + m for deg, m in pairs]
    assert np.abs(got[:, cols] - ref).max() < 1e-9
    # Orthonormality on the sphere, by Monte Carlo in area-uniform points.
    rng = np.random.default_rng(0)
    u = rng.uniform(size=(200_000, 2))
    q = np.column_stack([u[:, 0] * 360 - 180, np.degrees(np.arcsin(2 * u[:, 1] - 1))])
    e = encode(SphericalHarmonics(4, normalisation="orthonormal"), q)
    gram = e.T @ e / len(q) * 4 * math.pi
    assert np.abs(gram - np.eye(16)).max() < 0.03


@pytest.mark.parametrize("name", encoding_names())
def test_every_encoding_is_finite_continuous_and_deterministic(name):
    enc = build_encoding({"name": name})
    pts = sample_points(n=50)
    a = encode(enc, pts, dtype=torch.float32)
    assert a.shape == (len(pts), enc.embedding_dim)
    assert np.isfinite(a).all()
    assert np.array_equal(a, encode(build_encoding({"name": name}), pts, dtype=torch.float32))
    on_sphere = {"wrap", "xyz", "cartesian3d", "sphericalharmonics", "spherical_harmonics", "rbf", "rff"}
    on_sphere.add("nerf")
    if name in on_sphere:
        # Encodings of the point on the sphere agree across the antimeridian (multi-scale ones
        # only at wavelengths that divide 360 degrees).
        east, west = encode(enc, np.array([[180.0, 12.0]])), encode(enc, np.array([[-180.0, 12.0]]))
        assert np.allclose(east, west, atol=1e-9)


def test_simple_encoding_formulas():
    pt = np.array([[30.0, 60.0]])
    lam, phi = math.radians(30), math.radians(60)
    assert np.allclose(encode(build_encoding({"name": "direct"}), pt), [[30 / 180, 60 / 90]])
    wrap = [math.cos(lam), math.sin(lam), math.cos(phi), math.sin(phi)]
    assert np.allclose(encode(build_encoding({"name": "wrap"}), pt), [wrap])
    xyz = [math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)]
    assert np.allclose(encode(build_encoding({"name": "cartesian3d"}), pt), [xyz])
    # Sphere2Vec at one scale of 360 degrees is the plain sphere: sphereC = (sin phi, xyz's x, y).
    sc = encode(build_encoding({"name": "spherec", "frequency_num": 1, "max_radius": 360}), pt)
    assert np.allclose(sc, [[xyz[2], xyz[0], xyz[1]]])
    grid = encode(build_encoding({"name": "grid", "frequency_num": 1, "max_radius": 360}), pt)
    assert np.allclose(grid, [[math.sin(lam), math.cos(lam), math.sin(phi), math.cos(phi)]])
    nerf = encode(build_encoding({"name": "nerf", "frequency_num": 2}), pt)
    octaves = np.array([xyz[0], 2 * xyz[0], xyz[1], 2 * xyz[1], xyz[2], 2 * xyz[2]])
    assert np.allclose(nerf[0, :6], np.sin(np.pi * octaves))


def test_multiscale_dimensions_and_wavelengths():
    r = wavelengths(0.5, 50.0, 5).numpy()
    assert r[0] == pytest.approx(0.5) and r[-1] == pytest.approx(50.0)
    assert np.allclose(r[1:] / r[:-1], r[1] / r[0])
    dims = {"grid": 4, "theory": 6, "spherec": 3, "spherecplus": 6, "spherem": 5, "spheremplus": 8}
    for name, per_scale in dims.items():
        assert build_encoding({"name": name, "frequency_num": 7}).embedding_dim == 7 * per_scale
    assert build_encoding({"name": "dfs", "frequency_num": 3}).embedding_dim == 4 * 3 + 4 * 9
    # A finer min_radius changes the encoding between two points 0.1 degree apart more.
    a, b = np.array([[5.70, 50.90]]), np.array([[5.80, 50.90]])
    coarse = build_encoding({"name": "spherecplus", "min_radius": 10, "max_radius": 360})
    fine = build_encoding({"name": "spherecplus", "min_radius": 0.05, "max_radius": 360})
    change = {k: np.linalg.norm(encode(e, a) - encode(e, b)) for k, e in (("fine", fine), ("coarse", coarse))}
    assert change["fine"] > 5 * change["coarse"]


def test_tile_rbf_rff_geoclip_encodings():
    tile = build_encoding({"name": "tile", "cells": [4, 2], "extent": [0, 0, 4, 2]})
    onehot = encode(tile, np.array([[0.5, 0.5], [3.5, 1.5], [9.0, 9.0]]))
    assert onehot.argmax(1).tolist() == [0, 7, 7] and np.allclose(onehot.sum(1), 1)
    rbf = build_encoding({"name": "rbf", "anchors": [[10, 20], [-170, -5]], "kernel_size": 5})
    at = encode(rbf, np.array([[10.0, 20.0], [10.0, 25.0]]))
    assert at[0, 0] == pytest.approx(1.0) and 0.5 < at[1, 0] < 0.7  # one kernel size away: exp(-1/2)
    rff = build_encoding({"name": "rff", "num_features": 8, "sigma": 2.0, "seed": 3})
    again = build_encoding({"name": "rff", "num_features": 8, "sigma": 2.0, "seed": 3})
    assert rff.embedding_dim == 16 and torch.equal(rff.b, again.b)
    geo = build_encoding({"name": "geoclip", "sigmas": [1, 16], "num_features": 4})
    assert geo.embedding_dim == 16 and tuple(geo.b.shape) == (2, 4, 2)


def test_networks_and_siren_formula():
    config = {
        "encoding": {"name": "sphericalharmonics", "legendre_polys": 4},
        "network": {"name": "siren", "dim_hidden": 8, "num_layers": 2, "dim_out": 5},
    }
    torch.manual_seed(0)
    model = build_from_config(config).eval()
    assert isinstance(model, LocationEncoder) and model.embedding_size == 5
    names = set(model.state_dict())
    assert names == {f"nnet.layers.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")} | {
        "nnet.last_layer.weight",
        "nnet.last_layer.bias",
    }
    x = torch.tensor([[5.0, 50.0], [-120.0, -33.0]])
    e = model.posenc(x)
    l0, l1, last = model.nnet.layers[0], model.nnet.layers[1], model.nnet.last_layer
    h = torch.sin(30.0 * (e @ l0.weight.T + l0.bias))
    h = torch.sin(1.0 * (h @ l1.weight.T + l1.bias))
    assert torch.allclose(model(x), h @ last.weight.T + last.bias, atol=1e-6)
    for net in ("linear", "mlp", "fcnet"):
        m = build_from_config({"encoding": {"name": "wrap"}, "network": {"name": net, "dim_out": 6}}).eval()
        assert m(x).shape == (2, 6)
    branches = build_from_config(
        {
            "encoding": {"name": "geoclip", "sigmas": [1, 16], "num_features": 4},
            "network": {"name": "geoclip_branches", "num_branches": 2, "dim_hidden": 16, "dim_out": 3},
        }
    ).eval()
    feats = branches.posenc(x)
    by_hand = branches.nnet.branches[0](feats[:, :8]) + branches.nnet.branches[1](feats[:, 8:])
    assert torch.allclose(branches(x), by_hand)


def test_config_errors_and_bundle_round_trip(tmp_path):
    with pytest.raises(ValueError, match="Unknown encoding"):
        build_from_config({"encoding": {"name": "nope"}, "network": {"name": "linear"}})
    with pytest.raises(ValueError, match="Unknown network"):
        build_from_config({"encoding": {"name": "wrap"}, "network": {"name": "nope"}})
    with pytest.raises(TypeError):
        build_from_config({"encoding": {"name": "wrap", "bogus": 1}, "network": {"name": "linear"}})
    config = {
        "encoding": {"name": "rbf", "num_anchors": 16, "kernel_size": 20, "seed": 4},
        "network": {"name": "fcnet", "dim_hidden": 8, "num_layers": 2, "dim_out": 4},
    }
    torch.manual_seed(1)
    model = build_from_config(config).eval()
    card = ModelCard(
        id="rbf-test", kind="location", architecture="location_encoder", config=config, embedding_size=4
    )
    loaded = load_bundle(save_bundle(model, card, tmp_path / "rbf-test"))
    x = torch.tensor([[1.0, 2.0], [100.0, -60.0]])
    assert torch.equal(loaded.module(x), model(x))
