"""Unloading the plugin (disabling it, an upgrade, QGIS closing) while its own background tasks run:
their results must not be delivered to the dialog or map tool that unloading deleted (a traceback
dialog in QGIS: 'wrapped C/C++ object ... has been deleted')."""

from __future__ import annotations

import sys
import time

import pytest
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QCoreApplication, QEvent

import srl_plugin
from srl_plugin import plugin
from srl_plugin.gui import model_manager, similarity_tool


@pytest.fixture
def uncaught(monkeypatch) -> list[str]:
    """Exceptions raised in Qt callbacks (PyQt hands them to sys.excepthook: QGIS's error dialog)."""
    seen: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: seen.append(f"{kind.__name__}: {value}"))
    return seen


def _unload(loaded) -> None:
    loaded.unload()
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)  # the dialog and tool are deleted now
    deadline = time.monotonic() + 30
    while QgsApplication.taskManager().countActiveTasks() and time.monotonic() < deadline:
        QgsApplication.processEvents()
        time.sleep(0.02)
    for _ in range(20):
        QgsApplication.processEvents()
        time.sleep(0.01)


def test_unloading_during_a_model_import(qgis_iface, qgis_processing, qgis_new_project, monkeypatch,
                                         uncaught, tmp_path):
    def slow_import(kind, path, progress=None, overwrite=False):
        for _ in range(30):  # a large checkpoint: seconds of reading
            time.sleep(0.05)
            progress.check()
        return tmp_path / "geoclip"

    monkeypatch.setattr(model_manager, "import_checkpoint", slow_import)
    loaded = srl_plugin.classFactory(qgis_iface)
    loaded.initGui()
    loaded.actions[plugin.MODELS].trigger()
    loaded.model_manager.start_import("GeoCLIP", str(tmp_path / "x.pth"))
    _unload(loaded)
    assert not uncaught


def _slowed(monkeypatch, module, name: str, seconds: float) -> None:
    """``module.name`` made to take ``seconds`` longer: a run still going when the plugin is unloaded."""
    real = getattr(module, name)

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, slow)


def _similarity_tool(qgis_iface, embedding_raster):
    layer = QgsRasterLayer(str(embedding_raster), "embeddings")
    QgsProject.instance().addMapLayer(layer)
    qgis_iface.setActiveLayer(layer)
    loaded = srl_plugin.classFactory(qgis_iface)
    loaded.initGui()
    loaded.actions[plugin.SIMILARITY].trigger()
    return loaded, layer


def test_unloading_during_a_similarity_run(qgis_iface, qgis_canvas, qgis_processing, qgis_new_project,
                                           embedding_raster, monkeypatch, uncaught):
    _slowed(monkeypatch, similarity_tool, "compute_similarity", 1.0)
    loaded, layer = _similarity_tool(qgis_iface, embedding_raster)
    assert loaded.map_tool.add_example(layer.extent().center())
    for _ in range(30):
        QgsApplication.processEvents()
        time.sleep(0.01)
    _unload(loaded)
    assert not uncaught


def test_a_result_that_ends_just_before_unloading_adds_no_layer(
        qgis_iface, qgis_canvas, qgis_processing, qgis_new_project, embedding_raster, monkeypatch, uncaught):
    """The run ended while QGIS was busy, and the plugin was unloaded before its end was handled: the tool,
    not yet deleted, took it, added a layer of the map unloading had just deleted, and raised."""
    import threading

    from qgis.PyQt.QtCore import QEventLoop, QTimer

    real, ended = similarity_tool.compute_similarity, threading.Event()

    def tracked(*args, **kwargs):
        try:
            return real(*args, **kwargs)
        finally:
            ended.set()

    monkeypatch.setattr(similarity_tool, "compute_similarity", tracked)
    loaded, layer = _similarity_tool(qgis_iface, embedding_raster)
    folder = loaded.map_tool._folder
    assert loaded.map_tool.add_example(layer.extent().center())
    assert ended.wait(30)  # no event handled meanwhile: the task's end is still queued
    time.sleep(0.2)
    added: list[str] = []
    QgsProject.instance().layersAdded.connect(lambda layers: added.extend(lyr.name() for lyr in layers))
    loaded.unload()
    loop = QEventLoop()  # the queued events in their order: the task's end before the tool's deletion
    QTimer.singleShot(1500, loop.quit)
    loop.exec_()
    assert not added and not uncaught and not folder.exists()


def test_a_map_finished_after_unloading_is_removed_with_the_tools_folder(qgis_iface, qgis_canvas,
                                                                        qgis_processing, qgis_new_project,
                                                                        embedding_raster, monkeypatch):
    """A one-window raster cannot be cancelled within its window: the map was written after unloading
    took the tool's files away, into a folder of /tmp that nothing removed (on every QGIS close mid-run)."""
    from srl_core.analysis import similarity

    _slowed(monkeypatch, similarity, "_block_similarity", 1.5)
    loaded, layer = _similarity_tool(qgis_iface, embedding_raster)
    folder = loaded.map_tool._folder
    assert loaded.map_tool.add_example(layer.extent().center())
    for _ in range(50):
        QgsApplication.processEvents()
        time.sleep(0.01)
    _unload(loaded)
    assert not folder.exists()
