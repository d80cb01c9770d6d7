"""Model bundles: safetensors + card.json, loaded by id or path, with clear errors when broken."""

import json
from pathlib import Path

import pytest
import torch

from srl_core.bundle import (
    CARD_NAME,
    WEIGHTS_NAME,
    ModelCard,
    find_bundle,
    list_bundles,
    load_bundle,
    load_model,
    save_bundle,
)
from srl_core.errors import ModelError
from srl_core.models.tile import build_from_config


def _card(model_id: str = "tiny-test", **config) -> ModelCard:
    return ModelCard(
        id=model_id,
        kind="tile",
        architecture="tilenet",
        config={"in_channels": 3, "variant": "compact", "z_dim": 8, **config},
        embedding_size=8,
        inputs={"tile_size": 16, "bands": ["r", "g", "b"]},
        licence="CC0-1.0",
    )


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    card = _card()
    module = build_from_config(card.config).eval()
    folder = save_bundle(module, card, tmp_path / "tiny")
    return module, folder


def test_round_trip_gives_identical_outputs(saved):
    module, folder = saved
    loaded = load_bundle(folder)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(module(x), loaded.module(x))
    assert loaded.card.inputs["tile_size"] == 16 and not loaded.module.training
    assert sorted(p.name for p in folder.iterdir()) == [CARD_NAME, WEIGHTS_NAME]


def test_weights_are_safetensors_not_pickle(saved):
    _, folder = saved
    head = (folder / WEIGHTS_NAME).read_bytes()[:8]
    header_len = int.from_bytes(head, "little")
    header = json.loads((folder / WEIGHTS_NAME).read_bytes()[8 : 8 + header_len])
    assert header["__metadata__"]["id"] == "tiny-test"


def test_corrupt_weights_are_a_clear_model_error(saved):
    _, folder = saved
    (folder / WEIGHTS_NAME).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="corrupt"):
        load_bundle(folder)


def test_weights_of_another_architecture_name_the_mismatch(saved, tmp_path):
    _, folder = saved
    other = tmp_path / "other"
    save_bundle(build_from_config(_card(z_dim=4).config), _card(z_dim=4), other)
    (folder / WEIGHTS_NAME).write_bytes((other / WEIGHTS_NAME).read_bytes())
    with pytest.raises(ModelError, match="wrong shape"):
        load_bundle(folder)


@pytest.mark.parametrize("dtype", [torch.int8, torch.int32, torch.bool])
def test_weights_that_are_not_floating_point_are_refused(saved, dtype):
    """Cast to float on loading, integer or boolean weights of the right names and shapes made embeddings
    unrelated to the model's, written as valid (found by an audit)."""
    from safetensors.torch import load_file, save_file

    _, folder = saved
    state = load_file(str(folder / WEIGHTS_NAME))
    save_file({k: (v * 10).to(dtype) if v.is_floating_point() else v for k, v in state.items()},
              str(folder / WEIGHTS_NAME))
    with pytest.raises(ModelError, match="must be floating-point numbers are not"):
        load_bundle(folder)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("architecture"), "missing architecture"),
        (lambda c: c["inputs"].update(bands=3), "'inputs.bands' must be a list of band names"),
        (lambda c: c.update(architecture="os.system"), "unknown architecture"),
        (lambda c: c.update(kind="audio"), "unknown model kind"),
    ],
)
def test_bad_cards_are_refused(saved, edit, message):
    _, folder = saved
    card = json.loads((folder / CARD_NAME).read_text())
    edit(card)
    (folder / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(ModelError, match=message):
        load_bundle(folder)


def test_card_that_is_not_json_or_absent(tmp_path):
    with pytest.raises(ModelError, match="not a model bundle"):
        load_bundle(tmp_path)
    (tmp_path / CARD_NAME).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_bundle(tmp_path)


def test_user_models_are_found_by_id(saved, tmp_path, monkeypatch):
    _, folder = saved
    monkeypatch.setenv("SRL_MODELS_DIR", str(folder.parent))
    assert find_bundle("tiny-test") == folder
    assert "tiny-test" in [card.id for card, _ in list_bundles()]
    assert load_model("tiny-test").id == "tiny-test"
    with pytest.raises(ModelError, match="No model 'nope'"):
        load_model("nope")


def test_two_user_models_of_one_id_are_refused_by_name_not_picked_silently(saved, monkeypatch):
    """Two folders whose cards say 'tiny-test' (one copied by hand): the first alphabetically was used."""
    import shutil

    _, folder = saved
    shutil.copytree(folder, folder.parent / "a-copy")
    monkeypatch.setenv("SRL_MODELS_DIR", str(folder.parent))
    with pytest.raises(ModelError, match=r"2 installed models have the id 'tiny-test' \(.*a-copy"):
        find_bundle("tiny-test")


def test_failed_save_leaves_no_folder(tmp_path):
    class Broken(torch.nn.Module):
        def state_dict(self, *a, **k):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_bundle(Broken(), _card(), tmp_path / "broken")
    assert list(tmp_path.iterdir()) == []


def test_saved_bundle_is_readable_by_others(saved):
    """mkdtemp makes a private folder; a bundle (e.g. shipped in the plugin zip) must not stay 0700."""
    import os

    _, folder = saved
    mask = os.umask(0o022)
    os.umask(mask)
    expected = 0o777 & ~mask
    assert folder.stat().st_mode & 0o777 == expected
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o444 & expected == 0o444 & expected


def test_whole_number_floats_in_a_card_are_read_as_ints():
    """A JSON writer may write 64 as 64.0: accepted, and the card then holds the int."""
    card = ModelCard.from_dict({"id": "m", "kind": "tile", "architecture": "tilenet", "config": {},
                                "embedding_size": 64.0, "format_version": 1.0})
    assert (card.embedding_size, card.format_version) == (64, 1)
    assert isinstance(card.embedding_size, int) and isinstance(card.format_version, int)


def test_an_installed_id_wins_over_a_folder_of_that_name_in_the_working_directory(tiny_tile_model, tmp_path,
                                                                                monkeypatch):
    """A model trained as 'landsat' failed to load ("No card.json in landsat") from QGIS started in a folder
    holding a 'landsat' folder (found by an audit); './landsat' still names the folder."""
    from srl_core.bundle import find_bundle, user_models_dir

    (tmp_path / tiny_tile_model).mkdir()
    monkeypatch.chdir(tmp_path)
    assert find_bundle(tiny_tile_model) == user_models_dir() / tiny_tile_model
    assert find_bundle(f"./{tiny_tile_model}") == Path(".") / tiny_tile_model
    (tmp_path / "elsewhere").mkdir()
    assert find_bundle("elsewhere") == Path("elsewhere")  # no model of that id: the folder
