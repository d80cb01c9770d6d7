"""The location engine: lon/lat arrays and point files to embeddings, bad input, cancel, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import ogr

from srl_core.bundle import ModelCard, load_model, save_bundle
from srl_core.cli import main as cli_main
from srl_core.embedding_format import KIND_KEY, LOCATION_KIND, MODEL_ID_KEY
from srl_core.errors import CancelledError, InputError, ModelError
from srl_core.location import embed_lonlat, embed_points_file, embed_xy
from srl_core.models.location import build_from_config
from srl_core.progress import Progress
from srl_core.vector import read_embedding_points, read_points

MEUSE = Path(__file__).resolve().parent / "data" / "meuse" / "meuse.shp"
TINY_ID = "tiny-location-test"
CONFIG = {
    "encoding": {"name": "sphericalharmonics", "legendre_polys": 6},
    "network": {"name": "siren", "dim_hidden": 16, "num_layers": 2, "dim_out": 8},
}


@pytest.fixture
def tiny_location_model(user_models_dir) -> str:
    torch.manual_seed(0)
    card = ModelCard(
        id=TINY_ID,
        kind="location",
        architecture="location_encoder",
        config=CONFIG,
        embedding_size=8,
        description="Random weights, for tests only.",
        inputs={"coordinates": "lon/lat WGS84 degrees"},
        licence="CC0-1.0",
    )
    save_bundle(build_from_config(CONFIG), card, user_models_dir / TINY_ID)
    return TINY_ID


def test_embed_lonlat_batches_agree_with_the_module(tiny_location_model):
    lonlat = np.array([[5.76, 50.99], [-180.0, -90.0], [180.0, 90.0], [0.0, 0.0], [120.5, -33.3]])
    emb, valid = embed_lonlat(tiny_location_model, lonlat, device="cpu", batch_size=2)
    assert emb.dtype == np.float32 and emb.shape == (5, 8) and valid.all()
    whole, _ = embed_lonlat(tiny_location_model, lonlat, device="cpu", batch_size=4096)
    assert np.allclose(emb, whole, atol=1e-6)
    module = build_from_config(CONFIG)
    module.load_state_dict(load_model(TINY_ID).module.state_dict())
    with torch.no_grad():
        direct = module.eval()(torch.tensor(lonlat, dtype=torch.float32)).numpy()
    assert np.allclose(emb, direct, atol=1e-6)


def test_bad_coordinates_raise_or_mask(tiny_location_model):
    lonlat = np.array([[0.0, 0.0], [10.0, np.nan], [200.0, 0.0], [1.0, 1.0], [0.0, -np.inf]])
    with pytest.raises(InputError, match="row 1"):
        embed_lonlat(tiny_location_model, lonlat)
    emb, valid = embed_lonlat(tiny_location_model, lonlat, on_invalid="mask")
    assert valid.tolist() == [True, False, False, True, False]
    assert np.isnan(emb[~valid]).all() and np.isfinite(emb[valid]).all()
    good, _ = embed_lonlat(tiny_location_model, lonlat[valid])
    assert np.allclose(emb[valid], good, atol=1e-6)
    with pytest.raises(InputError, match="on_invalid"):
        embed_lonlat(tiny_location_model, lonlat, on_invalid="skip")
    with pytest.raises(InputError, match=r"\(N, 2\)"):
        embed_lonlat(tiny_location_model, np.zeros((3, 3)))


def test_embed_xy_in_a_projected_crs(tiny_location_model):
    rd = np.array([[181072.0, 333611.0], [181025.0, 333558.0]])  # Meuse samples, EPSG:28992
    emb = embed_xy(tiny_location_model, rd, "EPSG:28992")
    lonlat = read_points(MEUSE).lonlat[:2]
    assert np.allclose(emb, embed_lonlat(tiny_location_model, lonlat)[0], atol=1e-5)
    with pytest.raises(InputError, match="row 1"):
        embed_xy(tiny_location_model, np.array([[0.0, 0.0], [np.nan, 0.0]]), 3857)


def test_empty_input_gives_empty_result(tiny_location_model):
    for empty in (np.zeros((0, 2)), []):
        emb, valid = embed_lonlat(tiny_location_model, empty)
        assert emb.shape == (0, 8) and emb.dtype == np.float32 and valid.shape == (0,)


def test_model_kind_and_unknown_model(tiny_tile_model):
    with pytest.raises(ModelError, match="tile model"):
        embed_lonlat(tiny_tile_model, np.zeros((1, 2)))
    with pytest.raises(ModelError, match="No model 'nope'"):
        embed_lonlat("nope", np.zeros((1, 2)))


def test_embed_points_file_keeps_attributes_and_crs(tiny_location_model, tmp_path):
    out = embed_points_file(MEUSE, tmp_path / "meuse_emb.gpkg", tiny_location_model, device="cpu")
    table, emb, model_id = read_embedding_points(out)
    source = read_points(MEUSE)
    assert model_id == TINY_ID and emb.shape == (155, 8) and np.isfinite(emb).all()
    assert np.allclose(table.xy, source.xy) and table.attributes["zinc"][0] == 1022.0
    expected, _ = embed_lonlat(tiny_location_model, source.lonlat)
    assert np.allclose(emb, expected, atol=1e-6)
    ds = ogr.Open(str(out))
    lyr = ds.GetLayer(0)
    assert lyr.GetMetadataItem(KIND_KEY) == LOCATION_KIND and lyr.GetMetadataItem(MODEL_ID_KEY) == TINY_ID
    assert lyr.GetSpatialRef().IsProjected()


def test_cancel_leaves_no_output(tiny_location_model, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    calls = []

    def cancel_after_first() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(CancelledError):
        progress = Progress(is_cancelled=cancel_after_first)
        embed_points_file(MEUSE, out_dir / "x.gpkg", tiny_location_model, progress=progress)
    assert list(out_dir.iterdir()) == []


def test_cli_embeds_a_csv(tiny_location_model, tmp_path, capsys):
    csv = tmp_path / "pts.csv"
    csv.write_text("name,E,N\na,181072,333611\nb,181025,333558\n")
    out = tmp_path / "pts.gpkg"
    argv = ["embed-points", str(csv), str(out), "--model", TINY_ID, "--x-field", "E", "--y-field", "N"]
    assert cli_main([*argv, "--crs", "EPSG:28992", "--device", "cpu"]) == 0
    table, emb, _ = read_embedding_points(out)
    assert emb.shape == (2, 8) and table.attributes["name"] == ["a", "b"]
    assert abs(table.lonlat[0, 0] - 5.758) < 0.01
    assert cli_main(["embed-points", str(csv), str(tmp_path / "bad.gpkg"), "--model", TINY_ID]) == 2
    assert "no point geometry" in capsys.readouterr().err
