"""Importing a published checkpoint through processing.run and through the model manager: a
small checkpoint in GeoCLIP's own key layout becomes a bundle the location tools use."""

from __future__ import annotations

import json
import time

import numpy as np
import processing
import pytest
import torch
from qgis.core import QgsApplication, QgsProcessingException

from srl_plugin.gui.model_manager import ModelManagerDialog


@pytest.fixture
def geoclip_like_checkpoint(tmp_path):
    """GeoCLIP's state-dict layout (3 branches: RFF matrix, 3 hidden Linear, head) at a small size."""
    torch.manual_seed(0)
    state = {}
    for i in range(3):
        state[f"LocEnc{i}.capsule.0.b"] = torch.randn(8, 2)
        for j, (n_in, n_out) in zip((1, 3, 5), ((16, 16), (16, 16), (16, 16))):
            state[f"LocEnc{i}.capsule.{j}.weight"] = torch.randn(n_out, n_in) * 0.2
            state[f"LocEnc{i}.capsule.{j}.bias"] = torch.zeros(n_out)
        state[f"LocEnc{i}.head.0.weight"] = torch.randn(8, 16) * 0.2
        state[f"LocEnc{i}.head.0.bias"] = torch.zeros(8)
    path = tmp_path / "location_encoder_weights.pth"
    torch.save(state, path)
    return path


def test_import_geoclip_checkpoint_then_embed(
    srl_provider, user_models_dir, geoclip_like_checkpoint, tmp_path
):
    result = processing.run(
        "srl:import_checkpoint",
        {"FORMAT": 0, "CHECKPOINT": str(geoclip_like_checkpoint), "NEW_ID": "mini-geoclip"},
    )
    assert result["MODEL_ID"] == "mini-geoclip" and result["OUTPUT"] == str(user_models_dir / "mini-geoclip")
    card = json.loads((user_models_dir / "mini-geoclip" / "card.json").read_text())
    assert card["kind"] == "location" and card["licence"] == "MIT" and card["embedding_size"] == 8
    listed = json.loads(processing.run("srl:list_models", {"MODEL_ID": "mini-geoclip"})["CARDS"])
    assert [c["id"] for c in listed] == ["mini-geoclip"]
    # the refusal names this dialog's field, not the training dialogs' 'Overwrite ...' (found by an audit)
    with pytest.raises(QgsProcessingException, match="'Replace an installed model of the same id' when"):
        processing.run("srl:import_checkpoint",
                       {"FORMAT": 0, "CHECKPOINT": str(geoclip_like_checkpoint), "NEW_ID": "mini-geoclip"})

    from srl_core.vector.points import read_embedding_points, write_points

    pts = tmp_path / "cities.gpkg"
    write_points(
        str(pts), np.array([[2.35, 48.85], [-74.0, 40.7]]), "EPSG:4326", {"name": ["Paris", "New York"]}
    )
    out = processing.run(
        "srl:embed_points", {"INPUT": str(pts), "MODEL": "mini-geoclip", "OUTPUT": str(tmp_path / "e.gpkg")}
    )
    _, emb, model_id = read_embedding_points(out["OUTPUT"])
    assert model_id == "mini-geoclip" and np.isfinite(emb).all() and not np.allclose(emb[0], emb[1])


def test_a_wrong_file_is_a_clear_error(srl_provider, user_models_dir, tmp_path):
    bad = tmp_path / "not_geoclip.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, bad)
    with pytest.raises(QgsProcessingException, match="GeoCLIP"):
        processing.run("srl:import_checkpoint", {"FORMAT": 0, "CHECKPOINT": str(bad)})
    assert not list(user_models_dir.iterdir())


def test_model_manager_imports_in_the_background(qgis_app, user_models_dir, geoclip_like_checkpoint):
    dialog = ModelManagerDialog()
    dialog.refresh()
    outcome = []
    dialog.start_import("GeoCLIP", str(geoclip_like_checkpoint), on_done=outcome.append)
    assert not dialog.import_buttons["GeoCLIP"].isEnabled()  # busy while the task runs
    end = time.monotonic() + 60
    while not outcome and time.monotonic() < end:
        QgsApplication.processEvents()
        time.sleep(0.01)
    assert outcome == [None]
    assert "geoclip" in dialog.model_ids()
    assert dialog.models.currentItem().text().startswith("geoclip")
    assert "GeoCLIP" in dialog.card.toPlainText() and "Imported into" in dialog.status.text()
    assert dialog.import_buttons["GeoCLIP"].isEnabled()
    dialog.close()


def _import_in_dialog(dialog, checkpoint) -> list:
    outcome = []
    dialog.start_import("GeoCLIP", str(checkpoint), on_done=outcome.append)
    end = time.monotonic() + 60
    while not outcome and time.monotonic() < end:
        QgsApplication.processEvents()
        time.sleep(0.01)
    return outcome


def test_model_manager_asks_before_replacing_an_installed_model(
    qgis_app, user_models_dir, geoclip_like_checkpoint
):
    dialog = ModelManagerDialog()
    assert _import_in_dialog(dialog, geoclip_like_checkpoint) == [None]
    weights = user_models_dir / "geoclip" / "weights.safetensors"
    first = weights.stat().st_mtime_ns
    questions = []
    dialog.confirm_overwrite = lambda question: questions.append(question) or False
    outcome = _import_in_dialog(dialog, geoclip_like_checkpoint)
    assert len(questions) == 1 and "already holds a model bundle" in questions[0]
    assert outcome[0] and "already holds a model bundle" in outcome[0]  # declined: kept as it was
    assert weights.stat().st_mtime_ns == first and "Import failed" in dialog.status.text()
    dialog.confirm_overwrite = lambda question: True
    assert _import_in_dialog(dialog, geoclip_like_checkpoint) == [None]
    assert weights.stat().st_mtime_ns != first and "Imported into" in dialog.status.text()
    dialog.close()
