"""The plugin loads in a real QGIS (pytest-qgis iface), registers its provider and unloads cleanly."""

from __future__ import annotations

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from qgis.PyQt.QtWidgets import QMenu, QToolBar

import srl_plugin
from srl_plugin import deps, plugin

TOOLBAR_ACTIONS = [plugin.EMBED, plugin.CLUSTER, plugin.SIMILARITY, plugin.INTERPOLATE, plugin.TRAIN,
                   plugin.MODELS]


def _flush_deletes() -> None:
    QCoreApplication.sendPostedEvents(None, QEvent.DeferredDelete)
    QCoreApplication.processEvents()


@pytest.fixture
def loaded(qgis_iface, qgis_processing):
    instance = srl_plugin.classFactory(qgis_iface)
    instance.initGui()
    yield instance
    instance.unload()
    _flush_deletes()


def test_actions_toolbar_menu_and_provider(loaded, qgis_iface):
    assert list(loaded.actions) == TOOLBAR_ACTIONS
    window = qgis_iface.mainWindow()
    toolbar = window.findChild(QToolBar, plugin.TOOLBAR_OBJECT_NAME)
    assert toolbar is not None
    assert [a.objectName() for a in toolbar.actions()] == [f"srl_{k}" for k in TOOLBAR_ACTIONS]
    menu = window.findChild(QMenu, plugin.MENU_OBJECT_NAME)
    assert menu.menuAction() in window.menuBar().actions()
    assert all(not a.icon().isNull() for a in toolbar.actions())
    assert loaded.actions[plugin.SIMILARITY].isCheckable()

    provider = QgsApplication.processingRegistry().providerById("srl")
    assert provider is not None
    assert provider.name() == "Spatial representation learning"
    ids = {alg.id() for alg in provider.algorithms()}
    assert "srl:list_models" in ids
    for alg in provider.algorithms():
        assert alg.shortHelpString().strip(), alg.id()
        assert alg.groupId(), alg.id()


def test_unload_leaves_nothing(qgis_iface, qgis_processing):
    window = qgis_iface.mainWindow()
    before_menus = list(window.menuBar().actions())
    instance = srl_plugin.classFactory(qgis_iface)
    instance.initGui()
    instance.unload()
    _flush_deletes()
    assert QgsApplication.processingRegistry().providerById("srl") is None
    assert window.findChild(QToolBar, plugin.TOOLBAR_OBJECT_NAME) is None
    assert window.findChild(QMenu, plugin.MENU_OBJECT_NAME) is None
    assert list(window.menuBar().actions()) == before_menus
    assert not instance.actions
    import logging  # nor the handler passing srl_core's log to QGIS's (doubled after a reload)

    assert not [h for h in logging.getLogger("srl_core").handlers if type(h).__name__ == "QgsLogHandler"]
    # Loading again after an unload works (QGIS does this on plugin reload).
    instance.initGui()
    assert QgsApplication.processingRegistry().providerById("srl") is not None
    instance.unload()
    _flush_deletes()
    assert QgsApplication.processingRegistry().providerById("srl") is None


def test_unload_takes_the_similarity_tools_marks_off_the_canvas(qgis_iface, qgis_processing):
    """The tool's three rubber bands belong to the canvas's scene: each reload of the plugin after the tool
    was used left three more there (found by an audit)."""
    from qgis.gui import QgsRubberBand

    canvas = qgis_iface.mapCanvas()

    def bands() -> int:
        return sum(isinstance(item, QgsRubberBand) for item in canvas.scene().items())

    before = bands()
    for _ in range(2):
        instance = srl_plugin.classFactory(qgis_iface)
        instance.initGui()
        instance.actions[plugin.SIMILARITY].trigger()  # the tool is made when first used
        assert instance.map_tool is not None and bands() == before + 3
        instance.unload()
        _flush_deletes()
        assert bands() == before


def test_missing_dependency_shows_one_message_and_registers_only_the_provider(
    qgis_iface, qgis_processing, monkeypatch
):
    real_find_spec = deps.importlib.util.find_spec
    monkeypatch.setattr(
        deps.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real_find_spec(name, *a),
    )
    bar = qgis_iface.messageBar()
    bar.clear_messages()
    instance = srl_plugin.classFactory(qgis_iface)
    instance.initGui()
    try:
        # the provider is there (qgis_process finds the algorithms; they refuse with the command)
        assert QgsApplication.processingRegistry().providerById("srl") is not None
        assert list(instance.actions) == [plugin.DEPENDENCIES]
        warnings = bar.get_messages(1)  # Qgis.Warning
        assert len(warnings) == 1
        assert "torch" in warnings[0] and "pip install" in warnings[0] and "torch==2.13.0" in warnings[0]
    finally:
        instance.unload()
        _flush_deletes()
    assert window_clean(qgis_iface)


def window_clean(qgis_iface) -> bool:
    window = qgis_iface.mainWindow()
    return (
        window.findChild(QToolBar, plugin.TOOLBAR_OBJECT_NAME) is None
        and window.findChild(QMenu, plugin.MENU_OBJECT_NAME) is None
    )


def test_install_command_pins_match_requirements():
    from tests.conftest import REPO_ROOT

    pins = {
        line.split("==")[0].strip().lower(): line.strip()
        for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for requirement in deps.REQUIREMENTS.values():
        assert pins[requirement.split("==")[0].lower()] == requirement
    command = deps.install_command(["torch", "sklearn"])
    assert "-m pip install" in command
    assert command.endswith("torch==2.13.0 scikit-learn==1.5.2")
    assert deps.missing_dependencies(["os", "surely_not_a_module_xyz"]) == ["surely_not_a_module_xyz"]


def test_embed_request_adapts_to_layer_type(tmp_path):
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    from tests.conftest import DATA_DIR

    raster = QgsRasterLayer(str(DATA_DIR / "nc_landsat_crop.tif"), "landsat")
    assert raster.isValid()
    assert plugin.embed_request(raster) == (plugin.EMBED_RASTER_ALG, {"INPUT": raster.id()})
    points = QgsVectorLayer("Point?crs=EPSG:4326", "pts", "memory")
    assert plugin.embed_request(points)[0] == plugin.EMBED_POINTS_ALG
    lines = QgsVectorLayer("LineString?crs=EPSG:4326", "lines", "memory")
    with pytest.raises(ValueError, match="raster layer"):
        plugin.embed_request(lines)
    with pytest.raises(ValueError):
        plugin.embed_request(None)


def test_embed_is_not_offered_for_srl_outputs(embedding_raster):
    """With an embedding raster selected, Embed opened 'Embed raster tiles' on the embeddings."""
    from qgis.core import QgsRasterLayer

    layer = QgsRasterLayer(str(embedding_raster), "embeddings")
    with pytest.raises(ValueError, match="'embeddings' is an SRL output \\(tile embedding\\), not imagery"):
        plugin.embed_request(layer)
    assert plugin.training_parameters(layer) == {}  # nor is training on them (prefilled before)


def test_a_missing_module_at_run_time_names_the_install_command():
    assert "torch==2.13.0" in deps.missing_module_message("torch.nn")
    assert deps.missing_module_message("PIL").endswith("-m pip install Pillow")


def test_loading_the_plugin_does_not_import_torch(tmp_path):
    """QGIS loads every plugin at start-up: listing models and algorithms must not pay torch's import."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = tmp_path / "load.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(root)!r})\n"
        "from qgis.core import QgsApplication\n"
        "app = QgsApplication([], False)\n"
        "app.initQgis()\n"
        "sys.path.append(QgsApplication.pkgDataPath() + '/python/plugins')\n"
        "from processing.core.Processing import Processing\n"
        "Processing.initialize()\n"
        "from srl_plugin import classFactory\n"
        "p = classFactory(None)\n"
        "p.initProcessing()\n"
        "print(len(p.provider.algorithms()), 'torch' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-2:] == ["12", "False"]


BLOCKED_IMPORTS = """
import importlib.abc, sys
BLOCKED = {"torch", "shapely", "sklearn", "safetensors"}

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Missing())
import srl_plugin.provider
from srl_plugin.deps import check
print("missing:", sorted(check().missing))
"""


def test_the_provider_loads_in_a_qgis_python_without_the_dependencies():
    """Debian's QGIS Python has none of torch, shapely, sklearn, safetensors: the provider must load, so
    that its algorithms can refuse with the install command. An import of srl_core.vector at load pulled
    in shapely: the plugin failed in initGui, left an empty toolbar and menu, and no algorithm was found.
    (The test above fakes a missing torch only where the plugin looks for it; this one blocks imports.)"""
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT

    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", BLOCKED_IMPORTS], cwd=REPO_ROOT, capture_output=True,
                          text=True, env=environment, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "missing: ['safetensors', 'shapely', 'sklearn', 'torch']" in done.stdout


def test_a_failure_while_building_the_gui_leaves_no_empty_toolbar_or_menu(qgis_iface, monkeypatch):
    """An import error in the provider left an empty SRL toolbar and menu, one more pair at each retry."""
    instance = srl_plugin.classFactory(qgis_iface)

    def broken() -> None:
        raise ModuleNotFoundError("No module named 'shapely'", name="shapely")

    monkeypatch.setattr(instance, "initProcessing", broken)
    with pytest.raises(ModuleNotFoundError):
        instance.initGui()
    _flush_deletes()
    assert window_clean(qgis_iface)
