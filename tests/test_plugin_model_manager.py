"""The model manager lists installed models with their cards and remembers the device."""

from __future__ import annotations

from qgis.core import QgsSettings

from srl_plugin import settings
from srl_plugin.algorithms.params import installed_model_ids
from srl_plugin.gui.model_manager import ModelManagerDialog, device_summary


def test_lists_models_and_shows_cards(qgis_app, tiny_tile_model):
    dialog = ModelManagerDialog()
    dialog.refresh(select=tiny_tile_model)
    assert tiny_tile_model in dialog.model_ids()
    assert dialog.model_ids() == installed_model_ids()
    html = dialog.card.toPlainText()
    assert tiny_tile_model in html and "Embedding size" in html and "normalisation" in html
    assert dialog.status.wordWrap()  # a failed import naming a long path widened the dialog past the screen
    dialog.close()


def test_device_choice_is_saved_and_found_devices_shown(qgis_app):
    """The devices are looked for in a task: importing torch on QGIS's main thread froze the window for
    about 2 s when the dialog was first opened."""
    from qgis.core import QgsApplication

    old = settings.device()
    dialog = ModelManagerDialog()
    try:
        dialog.device.setCurrentText("cpu")
        assert QgsSettings().value(settings.DEVICE_KEY) == "cpu" and settings.device() == "cpu"
        assert dialog.device_task.waitForFinished(30000)
        QgsApplication.processEvents()  # the task's finished() runs on the main thread
        assert "CPU" in dialog.found.text() and dialog.found.text() == device_summary()
    finally:
        settings.set_device(old)
        dialog.close()


def test_looking_for_devices_leaves_gdal_exceptions_alone(qgis_app, monkeypatch):
    """The device lookup ran inside srl_core's GDAL-exceptions guard: with GDAL < 3.7 that is global,
    so while torch imported, every other plugin's GDAL calls raised, and a test ending meanwhile found
    them left on (a CI run failed so)."""
    from osgeo import gdal

    from srl_plugin.gui import model_manager

    seen = []
    monkeypatch.setattr(model_manager, "device_summary", lambda: seen.append(gdal.GetUseExceptions()) or "x")
    dialog = ModelManagerDialog()
    try:
        assert dialog.device_task.waitForFinished(30000)
        assert seen == [0]
    finally:
        dialog.close()


def test_empty_model_folder_explains_what_to_do(qgis_app, user_models_dir, monkeypatch):
    import srl_core.bundle as bundle

    monkeypatch.setattr(bundle, "BUNDLED_MODELS_DIR", user_models_dir / "none")
    dialog = ModelManagerDialog()
    dialog.refresh()
    assert dialog.model_ids() == []
    assert "No models installed" in dialog.card.toPlainText()
    dialog.close()


def test_a_model_folder_with_a_broken_card_is_named_not_silently_left_out(qgis_app, user_models_dir):
    broken = user_models_dir / "mygeoclip"
    broken.mkdir()
    (broken / "card.json").write_text('{"id": "mygeoclip", "kind":')  # cut short
    dialog = ModelManagerDialog()
    dialog.refresh()
    assert "mygeoclip" not in dialog.model_ids()
    assert f"Skipped {broken}" in dialog.skipped.text()
    dialog.close()


def test_a_copy_of_a_bundled_model_shows_its_own_card_and_is_said_unused(qgis_app, user_models_dir):
    """Cards were kept by id: selecting the bundled model showed its user copy's card, which no run uses
    (a bundled model is never hidden by a copy; found by an audit)."""
    import json
    import shutil

    from qgis.PyQt.QtCore import Qt

    from srl_core.bundle import BUNDLED_MODELS_DIR

    copy = user_models_dir / "copy"
    shutil.copytree(BUNDLED_MODELS_DIR / "bandstats", copy)
    card = json.loads((copy / "card.json").read_text())
    card["description"] = "MY EDITED COPY"
    (copy / "card.json").write_text(json.dumps(card))
    dialog = ModelManagerDialog()
    dialog.refresh()
    items = [dialog.models.item(i) for i in range(dialog.models.count())]
    bundled, = [i for i in items if i.data(Qt.UserRole) == "bandstats" and "yours" not in i.text()]
    mine, = [i for i in items if i.data(Qt.UserRole) == "bandstats" and "yours" in i.text()]
    assert "not used: a bundled model has this id" in mine.text()
    dialog.models.setCurrentItem(bundled)
    assert "MY EDITED COPY" not in dialog.card.toPlainText()
    dialog.models.setCurrentItem(mine)
    assert "MY EDITED COPY" in dialog.card.toPlainText()
    dialog.close()


def test_thread_choice_is_saved_and_becomes_the_processing_default(qgis_app, srl_provider):
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    had_setting = QgsSettings().contains(settings.THREADS_KEY)
    old = settings.threads()
    dialog = ModelManagerDialog()
    try:
        dialog.threads.setValue(3)
        assert settings.threads() == 3
        for alg_id in ("srl:embed_raster", "srl:embed_points", "srl:cluster", "srl:similarity",
                       "srl:apply_cluster_model", "srl:sample_tiles_at_points", "srl:rgb_view",
                       "srl:interpolate", "srl:train_tile_encoder", "srl:train_location_encoder"):
            alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
            param = alg.parameterDefinition("THREADS")
            assert param.defaultValue() == 3
            assert param.flags() & QgsProcessingParameterDefinition.FlagAdvanced
        dialog.threads.setValue(0)
        assert settings.threads() == 0 and dialog.threads.text() == "automatic"
    finally:
        settings.set_threads(old)
        if not had_setting:  # leave the settings file as it was
            QgsSettings().remove(settings.THREADS_KEY)
        dialog.close()


def test_a_models_folder_that_cannot_be_made_is_said_not_raised(qgis_app, tmp_path, monkeypatch):
    """'Open model folder' raised NotADirectoryError from the button when a file stood in the way."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("SRL_MODELS_DIR", str(blocker / "models"))
    dialog = ModelManagerDialog()
    try:
        dialog.open_user_folder()
        assert "Cannot open the models folder" in dialog.status.text()
    finally:
        dialog.close()


def test_a_training_free_models_size_is_said_as_set_by_the_raster(qgis_app, capsys):
    """The bandstats cards hold embedding_size 0 (the raster's bands set it): the model manager's table,
    List models and `srl_core models` showed "Embedding size 0"."""
    import json

    from srl_core.bundle import find_bundle, read_card
    from srl_core.cli import main
    from srl_plugin.algorithms.list_models import card_html

    sizes = {}
    for model_id in ("bandstats", "bandstats-multiscale", "tile2vec-l8-rgb-pixels64"):
        folder = find_bundle(model_id)
        html = card_html(read_card(folder), folder)
        sizes[model_id] = html.split("Embedding size</th><td>")[1].split("<")[0]
    learned = str(read_card(find_bundle("tile2vec-l8-rgb-pixels64")).embedding_size)
    by_raster = "x the raster&#x27;s band count"
    assert sizes == {"bandstats": f"2 {by_raster}", "bandstats-multiscale": f"6 {by_raster}",
                     "tile2vec-l8-rgb-pixels64": learned}
    assert main(["models"]) == 0
    rows = map(json.loads, capsys.readouterr().out.splitlines())
    listed = {row["id"]: (row["embedding_size"], row.get("embedding_size_note")) for row in rows}
    assert listed["bandstats"] == ("0", "2 x the raster's band count")  # the number kept for scripts
    assert listed["tile2vec-l8-rgb-pixels64"] == (learned, None)
