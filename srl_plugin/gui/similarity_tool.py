"""The similarity map tool: click on an embedding raster, see where else looks like that.

Click: the pixel under the cursor becomes the only example. Shift-click: adds an example.
Drag a box: the mean embedding of the pixels inside becomes the example (shift: added).
Each change recomputes one similarity layer in the background (a QgsTask) and swaps it
in place, so the layer updates instead of piling up.

Embedding rasters are SRL's own and recognised products (AlphaEarth, TESSERA). Clicking on
another multi-band raster offers, in the message bar, to treat its bands as embeddings;
the choice is kept on the layer (custom property, saved with the project).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from qgis.core import (
    Qgis,
    QgsDataProvider,
    QgsGeometry,
    QgsMapLayer,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
    QgsWkbTypes,
)
from qgis.gui import QgsMapTool, QgsRubberBand
from qgis.PyQt import sip
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor
from qgis.PyQt.QtWidgets import QPushButton

from srl_core.atomic import remove_with_sidecars

from .. import settings, styling, tasks
from ..algorithms.layers import reads_file

DRAG_PIXELS = 4  # a press-release further apart than this is a box, not a click
BANDS_PROPERTY = "srl/bands_as_embeddings"  # layer custom property: the user accepted its bands


@dataclass(frozen=True)
class Example:
    """One query example in the embedding raster's CRS: a point, or a box (WKT polygon)."""

    x: float = 0.0
    y: float = 0.0
    polygon_wkt: str = ""


@dataclass(frozen=True)
class _Source:
    """The embedding raster a background run reads, as the run's end sees it: by id and name only."""

    layer_id: str
    name: str


def _multiband_gdal_raster(layer: Optional[QgsMapLayer]) -> bool:
    return (
        isinstance(layer, QgsRasterLayer)
        and layer.providerType() == "gdal"
        and layer.isValid()
        and layer.bandCount() >= 2
    )


def is_embedding_raster(layer: Optional[QgsMapLayer]) -> bool:
    """True for a raster srl_core reads as embeddings: SRL's own, a recognised product, or one
    whose bands the user accepted as embeddings."""
    if not isinstance(layer, QgsRasterLayer) or layer.providerType() != "gdal":
        return False
    from srl_core.analysis.api import open_input
    from srl_core.errors import InputError

    try:
        return open_input(layer.source(), bands_as_embeddings=bands_accepted(layer)).is_raster
    except InputError:
        return False


def bands_accepted(layer: QgsMapLayer) -> bool:
    """True when the user chose to treat this layer's bands as embeddings."""
    return str(layer.customProperty(BANDS_PROPERTY, "false")).lower() == "true"


def _query(raster: str, examples: list[Example], bands_as_embeddings: bool):
    """(srl_core's input, the query of ``examples``): an InputError names an example off the raster,
    on nodata, or a box without a valid pixel."""
    from srl_core.analysis.api import open_input
    from srl_core.analysis.similarity import Query

    data = open_input(raster, bands_as_embeddings=bands_as_embeddings)
    query = Query()
    points = [[e.x, e.y] for e in examples if not e.polygon_wkt]
    if points:
        query.add_pixels(data.source, points)
    for example in examples:
        if example.polygon_wkt:
            query.add_polygon(data.source, example.polygon_wkt)
    return data, query


def compute_similarity(
    raster: str, examples: list[Example], output: str, progress, bands_as_embeddings: bool = False
) -> str:
    """Background work: similarity of every pixel of ``raster`` to ``examples`` (srl_core), on the
    CPU threads of the plugin setting (0 = srl_core's default, which leaves cores to QGIS)."""
    from srl_core.analysis.api import similarity

    data, query = _query(raster, examples, bands_as_embeddings)
    return similarity(data, query, output, progress=progress, threads=settings.threads()).output


def _discard(folder: Path, output: Optional[str]) -> None:
    """Remove the result of a run that ended after the tool was taken down, and the tool's folder once it
    is empty: the map, or the empty folder a cancelled run's partial file had kept, stayed in /tmp."""
    if output:
        remove_with_sidecars(output)
    if folder.is_dir() and not any(folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)


def _used_by_a_layer(path: Path) -> bool:
    """True when a layer of the project reads the file ``path``."""
    return any(reads_file(layer, str(path)) for layer in QgsProject.instance().mapLayers().values())


class SimilarityMapTool(QgsMapTool):
    """Click / shift-click / drag on an embedding raster to map similarity to the examples."""

    similarityUpdated = pyqtSignal(QgsRasterLayer)  # noqa: N815 - Qt signal naming
    failed = pyqtSignal(str)

    def __init__(self, canvas, iface=None) -> None:
        super().__init__(canvas)
        self.iface = iface
        self.examples: list[Example] = []
        self.source_layer_id: Optional[str] = None
        self.result_layer_id: Optional[str] = None
        self.task: Optional[tasks.SrlTask] = None
        self._pending = False
        self._press = None
        self._folder = Path(tempfile.mkdtemp(prefix="srl_similarity_"))
        self._band = QgsRubberBand(canvas, QgsWkbTypes.PolygonGeometry)
        self._band.setColor(QColor(255, 200, 0, 60))
        self._band.setStrokeColor(QColor(255, 140, 0))
        # Where the examples are: a marker per clicked point, the outline of each dragged box.
        self._markers = QgsRubberBand(canvas, QgsWkbTypes.PointGeometry)
        self._markers.setIcon(QgsRubberBand.ICON_CIRCLE)
        self._markers.setIconSize(14)
        self._markers.setWidth(3)
        self._markers.setColor(QColor(255, 40, 40))
        self._boxes = QgsRubberBand(canvas, QgsWkbTypes.PolygonGeometry)
        self._boxes.setColor(QColor(255, 40, 40, 30))
        self._boxes.setStrokeColor(QColor(255, 40, 40))
        self._boxes.setWidth(2)
        self._marks: list[tuple[QgsPointXY, Optional[QgsRectangle]]] = []  # one per example, in order
        self._shown: tuple[list[Example], list] = ([], [])  # the examples (and marks) of the map shown
        self._offer = None  # the message bar's offer to treat a raster's bands as embeddings, if shown
        self._closed = False  # taken down (clean_up): a run that ends later is discarded, not shown
        self.setCursor(Qt.CrossCursor)

    # -- mouse ------------------------------------------------------------------------------
    def canvasPressEvent(self, event) -> None:  # noqa: N802
        self._press = event.pos()

    def canvasMoveEvent(self, event) -> None:  # noqa: N802
        if self._press is None or not self._dragged(event.pos()):
            return
        start = self.toMapCoordinates(self._press)
        self._band.setToGeometry(QgsGeometry.fromRect(QgsRectangle(start, event.mapPoint())), None)

    def canvasReleaseEvent(self, event) -> None:  # noqa: N802
        press, self._press = self._press, None
        self._band.reset(QgsWkbTypes.PolygonGeometry)
        if event.button() != Qt.LeftButton:
            return
        box = None
        if press is not None and self._dragged(event.pos(), press):
            box = QgsRectangle(self.toMapCoordinates(press), event.mapPoint())
        self.add_example(event.mapPoint(), box, add=bool(event.modifiers() & Qt.ShiftModifier))

    def _dragged(self, pos, press=None) -> bool:
        press = press if press is not None else self._press
        return (pos - press).manhattanLength() > DRAG_PIXELS

    # -- logic ------------------------------------------------------------------------------
    def embedding_layer(self, map_point: QgsPointXY) -> Optional[QgsRasterLayer]:
        """The active layer if it is an embedding raster, else one under the point."""
        active = self.iface.activeLayer() if self.iface is not None else None
        if is_embedding_raster(active):
            return active
        for layer in self.canvas().layers():
            if is_embedding_raster(layer) and layer.extent().contains(
                self.toLayerCoordinates(layer, map_point)
            ):
                return layer
        return None

    def add_example(
        self, map_point: QgsPointXY, box: Optional[QgsRectangle] = None, add: bool = False
    ) -> bool:
        """Record an example (map coordinates) and start recomputing; False if no raster is there."""
        layer = self.embedding_layer(map_point)
        if layer is None:
            self._report_no_embeddings(map_point, box, add)
            return False
        if box is not None:
            geometry = QgsGeometry.fromRect(self.toLayerCoordinates(layer, box))
            example = Example(polygon_wkt=geometry.asWkt())
        else:
            point = self.toLayerCoordinates(layer, map_point)
            example = Example(point.x(), point.y())
        from srl_core.errors import SRLError

        try:  # here, not in the run: a nodata pixel never becomes an example, whatever runs are queued
            _query(layer.source(), [example], bands_accepted(layer))
        except SRLError as exc:
            self._report(f"{exc} The examples are unchanged.")
            return False
        if layer.id() != self.source_layer_id:
            if add and self.examples:
                self._report(f"The examples taken on another raster were dropped: examples come from one "
                             f"embedding raster, now '{layer.name()}'.")
            self.examples, self.source_layer_id, self._shown = [], layer.id(), ([], [])
            add = False  # the marks of the other raster's examples go too
        self.examples = [*self.examples, example] if add else [example]
        self._mark(map_point, box, add)
        self.recompute()
        return True

    @property
    def marked(self) -> int:
        """How many example markers (points and boxes) are on the map."""
        return len(self._marks)

    def _mark(self, map_point: QgsPointXY, box: Optional[QgsRectangle], add: bool) -> None:
        """Show the example where it was taken: a marker at the click, or the dragged box."""
        if not add:
            self._clear_marks()
        self._marks.append((map_point, box))
        self._draw(map_point, box)

    def _draw(self, map_point: QgsPointXY, box: Optional[QgsRectangle]) -> None:
        if box is not None:
            self._boxes.addGeometry(QgsGeometry.fromRect(box), None)
        else:
            self._markers.addPoint(map_point)

    def _clear_marks(self) -> None:
        self._marks = []
        self._markers.reset(QgsWkbTypes.PointGeometry)
        self._boxes.reset(QgsWkbTypes.PolygonGeometry)

    def _restore_shown(self) -> None:
        """Go back to the examples (and marks) of the map shown: a run that failed must not leave
        examples that keep every later run failing, nor drop the ones the map was made from."""
        examples, marks = self._shown
        self.examples = list(examples)
        self._clear_marks()
        for map_point, box in marks:
            self._mark(map_point, box, add=True)

    def recompute(self) -> None:
        """Start a background run; if one is running, run again once it finishes."""
        if self.task is not None:
            self._pending = True
            return
        layer = QgsProject.instance().mapLayer(self.source_layer_id or "")
        if layer is None or not self.examples:
            return
        output = str(self._folder / f"similarity_{uuid.uuid4().hex[:8]}.tif")
        raster, examples, bands = layer.source(), list(self.examples), bands_accepted(layer)
        # the layer may be removed from the project (and deleted) before the task ends: the
        # callback keeps its id and name, never the layer itself
        source = _Source(layer.id(), layer.name())
        marks = list(self._marks)
        self.task = tasks.SrlTask(
            f"Similarity to {len(examples)} example(s)",
            lambda progress: compute_similarity(raster, examples, output, progress, bands),
            lambda result, error: self._finished(source, (examples, marks), result, error),
            owner=self,
            discard=functools.partial(_discard, self._folder, output),
        )
        tasks.start(self.task)

    @property
    def busy(self) -> bool:
        return self.task is not None or self._pending

    def _finished(self, source: _Source, run: tuple[list[Example], list], output: Optional[str],
                  error: Optional[str]) -> None:
        """Show the task's result; whatever happens, the tool is ready for the next run after.

        A failed run (its examples are checked when taken, so rarely: a file error, examples whose
        mean is zero) that no later change has replaced brings back the examples of the map shown;
        a cancelled one changes nothing."""
        self.task = None
        if self._closed:  # unloaded after the run ended, before this came: no layer for a tool taken down
            _discard(self._folder, output)
            return
        examples, _ = run
        try:
            if error is not None:
                if error != tasks.CANCELLED and not self._pending and examples == self.examples:
                    self._restore_shown()
                    error += " The examples are back to those of the map shown."
                self._report(error)
            elif QgsProject.instance().mapLayer(source.layer_id) is None:
                self._source_removed(source, output)
            else:
                self._shown = run
                self._show(output, f"Similarity to {len(examples)} example(s) in {source.name}")
        finally:
            if self._pending:
                self._pending = False
                self.recompute()

    def _source_removed(self, source: _Source, output: Optional[str]) -> None:
        """The raster was removed while its similarity was computed: there is nothing to show the
        result for, so its file goes; so do the examples taken on it, unless others replaced them."""
        if output:
            self._remove_file(output)
        if self.source_layer_id == source.layer_id:
            self.examples, self.source_layer_id, self._shown = [], None, ([], [])
            self._clear_marks()

    def _show(self, path: str, name: str) -> None:
        project = QgsProject.instance()
        layer = project.mapLayer(self.result_layer_id or "")
        if isinstance(layer, QgsRasterLayer):
            previous = layer.source()
            layer.setDataSource(path, name, "gdal", QgsDataProvider.ProviderOptions())
            self._remove_file(previous)
        else:
            layer = QgsRasterLayer(path, name, "gdal")
            # on top: added above the active layer, it went under a clusters map and a click showed nothing
            project.addMapLayer(layer, False)
            project.layerTreeRoot().insertLayer(0, layer)
            self.result_layer_id = layer.id()
        styling.style_similarity(layer)
        styling.warn_in_message_bar(layer, self.iface, styling.WARNING_SECONDS)  # a flat map, flagged
        self.similarityUpdated.emit(layer)

    def _remove_file(self, path: str) -> None:
        """Delete one of the tool's own result files, unless a layer of the project still shows it
        (a copy of the result layer the analyst made): its file would vanish under it."""
        if Path(path).parent == self._folder and not _used_by_a_layer(Path(path)):
            remove_with_sidecars(path)

    def treat_bands_as_embeddings(self, layer: QgsRasterLayer) -> None:
        """Accept ``layer``'s band values as embeddings from now on (kept with the project)."""
        layer.setCustomProperty(BANDS_PROPERTY, "true")

    def _report_no_embeddings(self, map_point: QgsPointXY, box: Optional[QgsRectangle], add: bool) -> None:
        """Say why nothing happened; on a plain multi-band raster, offer to use its bands (and then take
        the example, box and shift included, as it was given)."""
        active = self.iface.activeLayer() if self.iface is not None else None
        if not _multiband_gdal_raster(active):
            self._report("Click on an embedding raster (made by 'Embed raster tiles').")
            return
        text = (
            f"'{active.name()}' is not an embedding raster made by SRL nor a recognised product "
            "(AlphaEarth, TESSERA); you may treat its band values as embeddings, as they are."
        )
        self.failed.emit(text)
        if self.iface is None:
            return
        self._withdraw_offer()  # one offer, for the last click: an older one, accepted, took its click
        bar = self.iface.messageBar()
        item = bar.createMessage("SRL similarity", text)
        button = QPushButton("Treat bands as embeddings", item)

        def accept() -> None:
            self._withdraw_offer()
            self.treat_bands_as_embeddings(active)
            self.add_example(map_point, box, add)

        button.clicked.connect(accept)
        item.layout().addWidget(button)
        bar.pushWidget(item, Qgis.Info, 0)
        self._offer = item

    def _withdraw_offer(self) -> None:
        """Take the offer to treat bands as embeddings off the message bar, if it is still there: each
        click pushed another, and one left behind, clicked later, replaced the examples with its own."""
        item, self._offer = self._offer, None
        if item is not None and not sip.isdeleted(item) and self.iface is not None:
            self.iface.messageBar().popWidget(item)

    def _report(self, message: str) -> None:
        self.failed.emit(message)
        if self.iface is not None:
            self.iface.messageBar().pushMessage("SRL similarity", message, level=Qgis.Warning, duration=6)

    def deactivate(self) -> None:
        self._band.reset(QgsWkbTypes.PolygonGeometry)
        self._clear_marks()
        super().deactivate()

    def clean_up(self) -> None:
        """Forget the examples, take the tool's rubber bands off the canvas and delete temporary files no
        layer uses any more (when the plugin is unloaded). The bands belong to the canvas's scene, not to
        the tool: each reload of the plugin left three more there."""
        self._closed = True
        if self.task is not None:
            self.task.cancel()  # its end removes its file and the folder (see _discard)
        self._withdraw_offer()
        self._band.reset(QgsWkbTypes.PolygonGeometry)
        self._clear_marks()
        for band in (self._band, self._markers, self._boxes):
            self.canvas().scene().removeItem(band)
        for path in self._folder.glob("similarity_*.tif"):
            self._remove_file(str(path))
        if self._folder.is_dir() and not any(self._folder.iterdir()):
            shutil.rmtree(self._folder, ignore_errors=True)
