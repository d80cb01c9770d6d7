"""The plugin object QGIS loads: toolbar, menu, map tool and Processing provider.

``initGui`` first checks the Python dependencies (:mod:`.deps`). The Processing provider is
always registered (its algorithms refuse to run, with the install command, while something
is missing). When the dependencies are all there the toolbar/menu actions follow; when
something is missing only an action explaining how to install it is added, and the message
bar says so once, so QGIS keeps working. ``unload`` removes everything ``initGui`` added.
"""

from __future__ import annotations

from typing import Callable, Optional

from qgis.core import Qgis, QgsApplication, QgsMapLayer, QgsRasterLayer, QgsVectorLayer, QgsWkbTypes
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QAction, QMenu, QMessageBox, QToolBar

from . import deps
from .icons import icon

MENU_TITLE = "&SRL"
TOOLBAR_NAME = "SRL"
TOOLBAR_OBJECT_NAME = "SrlToolbar"
MENU_OBJECT_NAME = "SrlMenu"

# Action keys, in toolbar order.
EMBED = "embed"
CLUSTER = "cluster"
SIMILARITY = "similarity"
INTERPOLATE = "interpolate"
TRAIN = "train"
MODELS = "models"
DEPENDENCIES = "dependencies"

EMBED_RASTER_ALG = "srl:embed_raster"
EMBED_POINTS_ALG = "srl:embed_points"
CLUSTER_ALG = "srl:cluster"
INTERPOLATE_ALG = "srl:interpolate"
TRAIN_TILE_ALG = "srl:train_tile_encoder"


def embed_request(layer: Optional[QgsMapLayer]) -> tuple[str, dict]:
    """Which embedding algorithm suits ``layer``, with the layer pre-filled.

    A raster is cut into tiles (tile encoder); a point layer gets location embeddings.
    """
    if isinstance(layer, QgsRasterLayer):
        kind = _srl_kind(layer)
        if kind:  # embeddings, clusters, a similarity map...: embedding them again means nothing
            raise ValueError(f"'{layer.name()}' is an SRL output ({kind.replace('_', ' ')}), not imagery: "
                             "select the raster to embed. Cluster, Similarity and RGB view take embeddings.")
        return EMBED_RASTER_ALG, {"INPUT": layer.id()}
    if _is_points(layer):
        return EMBED_POINTS_ALG, {"INPUT": layer.id()}
    raise ValueError("Select a raster layer (to embed its tiles) or a point layer (to embed its locations).")


def _srl_kind(layer: QgsRasterLayer) -> Optional[str]:
    """The SRL_KIND of a raster SRL wrote (tile embeddings, clusters, ...), None for imagery."""
    from srl_core.names import KIND_KEY

    from .styling import metadata_item

    return metadata_item(layer, KIND_KEY)


def _is_points(layer: Optional[QgsMapLayer]) -> bool:
    return isinstance(layer, QgsVectorLayer) and layer.geometryType() == QgsWkbTypes.PointGeometry


def _is_embeddings(layer: Optional[QgsMapLayer]) -> bool:
    """Whether Cluster takes ``layer`` as it is: points with embedding fields, a raster of SRL's tile
    embeddings or of a recognised product, or one whose bands the analyst accepted as embeddings. Any point
    layer or raster was pre-filled, and the run then failed ('no embedding fields'), said in the log only."""
    if _is_points(layer):
        return "emb_000" in layer.fields().names()
    if not isinstance(layer, QgsRasterLayer):
        return False
    from srl_core.embedding_format import TILE_KIND

    from .gui.similarity_tool import bands_accepted

    return _srl_kind(layer) == TILE_KIND or bands_accepted(layer) or _recognised_product(layer)


def _recognised_product(layer: QgsRasterLayer) -> bool:
    """Whether srl_core reads ``layer`` as embeddings of a published product (AlphaEarth, TESSERA)."""
    from srl_core.embedding_products import EmbeddingRaster, describe_embedding_raster
    from srl_core.errors import SRLError

    from .algorithms.layers import dataset_spec

    try:
        describe_embedding_raster(EmbeddingRaster(dataset_spec(layer)))
    except (SRLError, RuntimeError):
        return False
    return True


def input_parameters(layer: Optional[QgsMapLayer], accepts: Callable[[Optional[QgsMapLayer]], bool]) -> dict:
    """Pre-fill an algorithm's INPUT with the active layer when it is one the INPUT takes (a raster
    prefilled as Interpolate's points, or a polygon layer as Cluster's embeddings, only fails later)."""
    return {"INPUT": layer.id()} if accepts(layer) else {}


def training_parameters(layer: Optional[QgsMapLayer]) -> dict:
    """Pre-fill the tile-encoder training's rasters with the active layer when it is imagery (not an SRL
    output, which training refuses: after Embed the new embeddings are the active layer)."""
    if not isinstance(layer, QgsRasterLayer) or _srl_kind(layer):
        return {}
    return {"INPUT": [layer.id()]}


class SrlPlugin:
    """Created by :func:`srl_plugin.classFactory`."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider = None
        self.toolbar: Optional[QToolBar] = None
        self.menu: Optional[QMenu] = None
        self.actions: dict[str, QAction] = {}
        self.map_tool = None
        self.model_manager = None
        self.dependency_report: Optional[deps.DependencyReport] = None

    # -- Processing -------------------------------------------------------------------------
    def initProcessing(self) -> None:  # noqa: N802 - called by QGIS for hasProcessingProvider plugins
        """Register the provider once; without srl_core's dependencies its algorithms refuse to run."""
        if self.provider is not None:
            return
        if self.dependency_report is None:
            self.dependency_report = deps.check()
        from .provider import SrlProvider

        self.provider = SrlProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    # -- GUI --------------------------------------------------------------------------------
    def initGui(self) -> None:  # noqa: N802
        """Build the toolbar, menu and provider; on failure take down what was built: an import error in
        the provider left an empty toolbar and menu, one more pair at each retry, that unload missed."""
        try:
            self._build_gui()
        except Exception:
            self.unload()
            raise

    def _build_gui(self) -> None:
        self.dependency_report = deps.check()
        main_window = self.iface.mainWindow()
        self.toolbar = self.iface.addToolBar(TOOLBAR_NAME)
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)
        self.menu = QMenu(MENU_TITLE, main_window)
        self.menu.setObjectName(MENU_OBJECT_NAME)
        help_menu = self._help_menu()
        if help_menu is not None:  # QGIS: before Help, like the other top-level menus
            main_window.menuBar().insertMenu(help_menu.menuAction(), self.menu)
        else:
            main_window.menuBar().addMenu(self.menu)

        self.initProcessing()
        if not self.dependency_report.ok:
            self._add_action(
                DEPENDENCIES, "warning", "SRL: install missing Python packages…", self.show_dependency_help
            )
            self.iface.messageBar().pushMessage(
                "SRL", self.dependency_report.message(), level=Qgis.Warning, duration=0
            )
            return

        self._add_action(EMBED, "embed", "Embed the active layer…", self.embed_active_layer)
        self._add_action(
            CLUSTER, "cluster", "Cluster embeddings…",
            lambda: self.open_with_active_layer(CLUSTER_ALG, _is_embeddings),
        )
        similarity = self._add_action(
            SIMILARITY, "similarity", "Similarity map tool", self.toggle_similarity_tool
        )
        similarity.setCheckable(True)
        self._add_action(
            INTERPOLATE, "interpolate", "Interpolate a field…",
            lambda: self.open_with_active_layer(INTERPOLATE_ALG, _is_points),
        )
        self._add_action(
            TRAIN, "train", "Train a tile encoder on the active raster…",
            lambda: self.open_algorithm(TRAIN_TILE_ALG, training_parameters(self.iface.activeLayer())),
        )
        self._add_action(MODELS, "models", "Model manager…", self.show_model_manager)

    def _help_menu(self) -> Optional[QMenu]:
        first_right = getattr(self.iface, "firstRightStandardMenu", None)
        menu = first_right() if callable(first_right) else None
        return menu if isinstance(menu, QMenu) else None

    def _add_action(self, key: str, icon_name: str, text: str, slot: Callable) -> QAction:
        action = QAction(icon(icon_name), text, self.iface.mainWindow())
        action.setObjectName(f"srl_{key}")
        action.triggered.connect(lambda _checked=False: slot())
        self.toolbar.addAction(action)
        self.menu.addAction(action)
        self.actions[key] = action
        return action

    def unload(self) -> None:
        """Remove the provider, map tool, actions, menu and toolbar."""
        if self.map_tool is not None:
            canvas = self.iface.mapCanvas()
            if canvas.mapTool() is self.map_tool:
                canvas.unsetMapTool(self.map_tool)
            self.map_tool.clean_up()
            self.map_tool.deleteLater()
            self.map_tool = None
        if self.model_manager is not None:
            if self.model_manager.task is not None:  # an import would finish into a deleted dialog
                self.model_manager.task.cancel()
            self.model_manager.close()
            self.model_manager.deleteLater()
            self.model_manager = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        from .core_log import stop_forwarding_core_log

        stop_forwarding_core_log()
        for action in self.actions.values():
            action.deleteLater()
        self.actions.clear()
        if self.menu is not None:
            self.iface.mainWindow().menuBar().removeAction(self.menu.menuAction())
            self.menu.deleteLater()
            self.menu = None
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.setParent(None)
            self.toolbar.deleteLater()
            self.toolbar = None

    # -- action handlers --------------------------------------------------------------------
    def _warn(self, message: str) -> None:
        self.iface.messageBar().pushMessage("SRL", message, level=Qgis.Warning, duration=8)

    def show_dependency_help(self) -> None:
        box = QMessageBox(
            QMessageBox.Warning,
            "SRL: missing Python packages",
            self.dependency_report.message(),
            parent=self.iface.mainWindow(),
        )
        box.setTextInteractionFlags(Qt.TextSelectableByMouse)
        box.exec_()

    def open_algorithm(self, alg_id: str, parameters: dict) -> None:
        """Open a Processing dialog: it runs in the background and loads the styled outputs."""
        import processing

        processing.execAlgorithmDialog(alg_id, parameters)

    def open_with_active_layer(self, alg_id: str, accepts: Callable[[Optional[QgsMapLayer]], bool]) -> None:
        """Open ``alg_id``'s dialog with the active layer as its INPUT when ``accepts`` it."""
        self.open_algorithm(alg_id, input_parameters(self.iface.activeLayer(), accepts))

    def embed_active_layer(self) -> None:
        try:
            alg_id, parameters = embed_request(self.iface.activeLayer())
        except ValueError as exc:
            self._warn(str(exc))
            return
        self.open_algorithm(alg_id, parameters)

    def toggle_similarity_tool(self) -> None:
        canvas = self.iface.mapCanvas()
        action = self.actions[SIMILARITY]
        if not action.isChecked():
            if canvas.mapTool() is self.map_tool:
                canvas.unsetMapTool(self.map_tool)
            return
        if self.map_tool is None:
            from .gui.similarity_tool import SimilarityMapTool

            self.map_tool = SimilarityMapTool(canvas, self.iface)
            self.map_tool.setAction(action)
        canvas.setMapTool(self.map_tool)

    def _models_changed(self) -> None:
        """New models: rebuild the algorithms so their model lists include them."""
        if self.provider is not None:
            self.provider.refreshAlgorithms()

    def show_model_manager(self) -> None:
        if self.model_manager is None:
            from .gui.model_manager import ModelManagerDialog

            self.model_manager = ModelManagerDialog(self.iface.mainWindow())
            self.model_manager.modelsChanged.connect(self._models_changed)
        self.model_manager.refresh()
        self.model_manager.show()
        self.model_manager.raise_()
