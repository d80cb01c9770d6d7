"""The toolbar actions do what they say in a real QGIS (pytest-qgis iface): embed opens the
algorithm that fits the active layer, the similarity action switches the map tool, the model
manager opens, and every algorithm's Processing dialog can be built."""

from __future__ import annotations

import processing
import pytest
from conftest import LANDSAT_CROP
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsVectorLayer

import srl_plugin
from srl_plugin import plugin


@pytest.fixture
def loaded(qgis_iface, qgis_processing, qgis_new_project):
    instance = srl_plugin.classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()


def test_embed_action_opens_the_algorithm_for_the_active_layer(loaded, qgis_iface, monkeypatch):
    opened = []
    monkeypatch.setattr(processing, "execAlgorithmDialog", lambda alg, params: opened.append((alg, params)))
    raster = QgsRasterLayer(str(LANDSAT_CROP), "landsat")
    points = QgsVectorLayer("Point?crs=EPSG:4326", "sites", "memory")
    QgsProject.instance().addMapLayers([raster, points])
    qgis_iface.setActiveLayer(raster)
    loaded.actions[plugin.EMBED].trigger()
    qgis_iface.setActiveLayer(points)
    loaded.actions[plugin.EMBED].trigger()
    loaded.actions[plugin.CLUSTER].trigger()
    loaded.actions[plugin.INTERPOLATE].trigger()
    loaded.actions[plugin.TRAIN].trigger()  # a point layer is no training raster: the dialog opens empty
    qgis_iface.setActiveLayer(raster)
    loaded.actions[plugin.TRAIN].trigger()
    loaded.actions[plugin.CLUSTER].trigger()
    loaded.actions[plugin.INTERPOLATE].trigger()  # a raster is no point layer to interpolate: left empty
    fields = "field=emb_000:double&field=emb_001:double"
    embedded = QgsVectorLayer(f"Point?crs=EPSG:4326&{fields}", "emb", "memory")
    QgsProject.instance().addMapLayer(embedded)
    qgis_iface.setActiveLayer(embedded)
    loaded.actions[plugin.CLUSTER].trigger()
    # Cluster is pre-filled with embeddings only: plain points and imagery failed, said in the log only
    assert opened == [
        (plugin.EMBED_RASTER_ALG, {"INPUT": raster.id()}),
        (plugin.EMBED_POINTS_ALG, {"INPUT": points.id()}),
        (plugin.CLUSTER_ALG, {}),
        (plugin.INTERPOLATE_ALG, {"INPUT": points.id()}),
        (plugin.TRAIN_TILE_ALG, {}),
        (plugin.TRAIN_TILE_ALG, {"INPUT": [raster.id()]}),
        (plugin.CLUSTER_ALG, {}),
        (plugin.INTERPOLATE_ALG, {}),
        (plugin.CLUSTER_ALG, {"INPUT": embedded.id()}),
    ]
    assert QgsApplication.processingRegistry().algorithmById(plugin.TRAIN_TILE_ALG) is not None


def test_embed_action_without_a_usable_layer_warns(loaded, qgis_iface, monkeypatch):
    monkeypatch.setattr(processing, "execAlgorithmDialog", lambda *a: pytest.fail("no dialog expected"))
    bar = qgis_iface.messageBar()
    bar.clear_messages()
    lines = QgsVectorLayer("LineString?crs=EPSG:4326", "roads", "memory")
    QgsProject.instance().addMapLayer(lines)
    qgis_iface.setActiveLayer(lines)
    loaded.actions[plugin.EMBED].trigger()
    assert any("raster layer" in m for m in bar.get_messages(1))


def test_similarity_action_switches_the_map_tool(loaded, qgis_canvas):
    action = loaded.actions[plugin.SIMILARITY]
    action.trigger()
    assert action.isChecked() and qgis_canvas.mapTool() is loaded.map_tool
    action.trigger()
    assert not action.isChecked() and qgis_canvas.mapTool() is not loaded.map_tool


def test_model_manager_action_opens_the_dialog(loaded):
    loaded.actions[plugin.MODELS].trigger()
    assert loaded.model_manager is not None and loaded.model_manager.isVisible()


def test_every_algorithm_dialog_builds(loaded, tiny_tile_model, qgis_iface, monkeypatch):
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    monkeypatch.setattr(qgis_iface, "browserModel", lambda: None, raising=False)  # not in the stub iface

    provider = QgsApplication.processingRegistry().providerById("srl")
    for alg in provider.algorithms():
        dialog = AlgorithmDialog(alg.create(), parent=None)
        assert dialog.mainWidget() is not None, alg.id()
        dialog.close()
        dialog.deleteLater()


def test_new_models_refresh_the_registered_algorithms(loaded, user_models_dir, tiny_tile_model):
    registry = QgsApplication.processingRegistry()
    loaded.actions[plugin.MODELS].trigger()
    loaded.model_manager.modelsChanged.emit()  # as after an import
    options = registry.algorithmById("srl:embed_raster").parameterDefinition("MODEL").options()
    assert tiny_tile_model in options
