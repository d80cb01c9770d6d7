"""The similarity map tool: a simulated click on an embedding raster gives a similarity layer,
shift-click adds an example and updates the same layer, a drag uses a box."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsPointXY, QgsProject, QgsRasterLayer, QgsSingleBandPseudoColorRenderer
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt

from srl_plugin.gui import similarity_tool
from srl_plugin.gui.similarity_tool import SimilarityMapTool, is_embedding_raster


def _wait(tool, seconds=30.0):
    end = time.monotonic() + seconds
    while tool.busy and time.monotonic() < end:
        QgsApplication.processEvents()
        time.sleep(0.01)
    assert not tool.busy


def _pixel(canvas, x, y) -> QPoint:
    p = canvas.getCoordinateTransform().transform(QgsPointXY(x, y))
    return QPoint(int(round(p.x())), int(round(p.y())))


def _click(tool, canvas, x, y, modifiers=Qt.NoModifier, drag_to=None):
    start = _pixel(canvas, x, y)
    end = _pixel(canvas, *drag_to) if drag_to else start
    tool.canvasPressEvent(
        QgsMapMouseEvent(canvas, QEvent.MouseButtonPress, start, Qt.LeftButton, Qt.LeftButton, modifiers)
    )
    tool.canvasReleaseEvent(
        QgsMapMouseEvent(canvas, QEvent.MouseButtonRelease, end, Qt.LeftButton, Qt.NoButton, modifiers)
    )


def _tool_on(layer, iface, canvas) -> SimilarityMapTool:
    """The similarity map tool, active on a canvas showing ``layer`` (added to the project)."""
    QgsProject.instance().addMapLayer(layer)
    iface.setActiveLayer(layer)
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    canvas.refresh()
    tool = SimilarityMapTool(canvas, iface)
    canvas.setMapTool(tool)
    return tool


@pytest.fixture
def setup(qgis_iface, qgis_canvas, qgis_new_project, embedding_raster):
    layer = QgsRasterLayer(str(embedding_raster), "embeddings")
    assert layer.isValid() and is_embedding_raster(layer)
    tool = _tool_on(layer, qgis_iface, qgis_canvas)
    yield tool, qgis_canvas
    qgis_canvas.unsetMapTool(tool)
    tool.clean_up()


def _similarity_layers():
    return [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("Similarity")]


def test_click_makes_a_styled_similarity_layer_that_updates(setup):
    tool, canvas = setup
    _click(tool, canvas, 500650, 3999150)  # left half
    _wait(tool)
    (layer,) = _similarity_layers()
    assert layer.name() == "Similarity to 1 example(s) in embeddings"
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
    sim = gdal.Open(layer.source()).ReadAsArray()
    assert np.nanmin(sim[:, :12]) > 0.9 and np.nanmax(sim[:, 12:]) < 0.2
    marker = tool._markers.asGeometry().asMultiPoint()
    assert tool.marked == 1 and len(marker) == 1 and marker[0].distance(500650, 3999150) < 50

    _click(tool, canvas, 501850, 3999150, Qt.ShiftModifier)  # add an example in the right half
    _wait(tool)
    (updated,) = _similarity_layers()  # the same layer, updated in place
    assert updated.id() == layer.id() and updated.name() == "Similarity to 2 example(s) in embeddings"
    sim2 = gdal.Open(updated.source()).ReadAsArray()
    assert np.nanmin(sim2) > 0.5  # the prototype of both halves is close to every pixel

    _click(tool, canvas, 501850, 3999150)  # a plain click starts over with one example
    _wait(tool)
    sim3 = gdal.Open(_similarity_layers()[0].source()).ReadAsArray()
    assert np.nanmin(sim3[:, 12:]) > 0.9 and len(tool.examples) == 1
    assert tool.marked == 1  # the markers follow the examples


def test_a_nodata_example_is_refused_and_the_others_kept(setup):
    """Shift-clicking a nodata pixel failed the run and kept that example: every later shift-click
    failed too, until a plain click started over. Then a plain click on nodata emptied the examples
    while the map still showed two, shift-clicks in quick succession dropped the valid one instead
    of the nodata one, and a cancelled run dropped its example. Examples are now checked when taken."""
    tool, canvas = setup
    messages = []
    tool.failed.connect(messages.append)
    _click(tool, canvas, 500650, 3999150)
    _wait(tool)
    _click(tool, canvas, 500050, 3999950, Qt.ShiftModifier)  # pixel (0, 0): nodata
    assert messages and "The examples are unchanged." in messages[-1]
    assert len(tool.examples) == 1 and tool.marked == 1
    _click(tool, canvas, 501850, 3999150, Qt.ShiftModifier)
    _wait(tool)
    assert len(tool.examples) == 2
    assert _similarity_layers()[0].name() == "Similarity to 2 example(s) in embeddings"
    _click(tool, canvas, 500050, 3999950)  # a plain click on nodata replaces nothing
    assert len(tool.examples) == 2 and tool.marked == 2 and not tool.busy
    _click(tool, canvas, 500050, 3999950, Qt.ShiftModifier)  # nodata, then at once a valid pixel
    _click(tool, canvas, 501250, 3999150, Qt.ShiftModifier)
    _wait(tool)
    assert len(tool.examples) == 3 and tool.marked == 3
    assert _similarity_layers()[0].name() == "Similarity to 3 example(s) in embeddings"


def test_a_cancelled_or_failed_run_keeps_the_examples_of_the_map_shown(setup):
    from srl_plugin import tasks

    tool, canvas = setup
    _click(tool, canvas, 500650, 3999150)
    _wait(tool)
    shown = list(tool.examples)
    _click(tool, canvas, 501850, 3999150, Qt.ShiftModifier)
    _wait(tool)
    run = (list(tool.examples), list(tool._marks))
    source = similarity_tool._Source(tool.source_layer_id, "embeddings")
    tool._finished(source, run, None, tasks.CANCELLED)  # cancelled: nothing changes
    assert tool.examples == run[0] and tool.marked == 2
    tool._shown = (shown, run[1][:1])
    tool._finished(source, run, None, "The examples cancel out.")  # failed: back to the map shown
    assert tool.examples == shown and tool.marked == 1


def test_examples_on_another_raster_replace_the_old_ones_and_say_so(setup, qgis_iface, tmp_path):
    import shutil

    tool, canvas = setup
    messages = []
    tool.failed.connect(messages.append)
    _click(tool, canvas, 500650, 3999150)
    _click(tool, canvas, 501850, 3999150, Qt.ShiftModifier)
    _wait(tool)
    first = QgsProject.instance().mapLayer(tool.source_layer_id)
    copy = tmp_path / "other.tif"
    shutil.copy(first.source(), copy)
    other = QgsRasterLayer(str(copy), "other")
    QgsProject.instance().addMapLayer(other)
    qgis_iface.setActiveLayer(other)
    _click(tool, canvas, 501250, 3999150, Qt.ShiftModifier)
    _wait(tool)
    assert messages and "taken on another raster were dropped" in messages[-1]
    assert len(tool.examples) == 1 and tool.marked == 1  # the markers follow the examples


def test_a_copy_of_the_result_layer_keeps_its_file(setup):
    """Each new map deleted the previous one's file, and closing the tool the folder: a copy of the
    result layer the analyst had added lost its data."""
    tool, canvas = setup
    _click(tool, canvas, 500650, 3999150)
    _wait(tool)
    (result,) = _similarity_layers()
    copy = result.clone()
    QgsProject.instance().addMapLayer(copy)
    _click(tool, canvas, 501850, 3999150)
    _wait(tool)
    assert Path(copy.source()).exists()
    QgsProject.instance().removeMapLayer(result.id())
    tool.clean_up()
    assert Path(copy.source()).exists()
    QgsProject.instance().removeMapLayer(copy.id())


def test_drag_uses_the_mean_of_a_box(setup):
    tool, canvas = setup
    _click(tool, canvas, 500250, 3999750, drag_to=(500950, 3998650))
    _wait(tool)
    assert tool.examples[0].polygon_wkt.startswith("Polygon") and tool.marked == 1
    sim = gdal.Open(_similarity_layers()[0].source()).ReadAsArray()
    assert np.nanmin(sim[:, :12]) > 0.9


def test_click_outside_an_embedding_raster_reports(setup, qgis_iface):
    tool, canvas = setup
    messages = []
    tool.failed.connect(messages.append)
    qgis_iface.setActiveLayer(QgsRasterLayer("", "none"))
    tool.add_example(QgsPointXY(0, 0))
    assert messages and "embedding raster" in messages[0]
    assert not _similarity_layers()


def test_a_memory_layer_in_the_project_does_not_stop_the_tool(setup):
    """A memory layer's long source was taken for a file path: 'File name too long' escaped from the
    map's update (and from clean_up, in the middle of unloading the plugin)."""
    from qgis.core import QgsVectorLayer

    fields = "&".join(f"field=f{i}:double" for i in range(30))
    scratch = QgsVectorLayer(f"Point?crs=EPSG:32631&{fields}", "scratch", "memory")
    assert len(scratch.source()) > 300
    QgsProject.instance().addMapLayer(scratch)
    tool, canvas = setup
    _click(tool, canvas, 500650, 3999150)
    _wait(tool)
    _click(tool, canvas, 501850, 3999150)
    _wait(tool)
    assert _similarity_layers()[0].name() == "Similarity to 1 example(s) in embeddings"
    tool.clean_up()
    QgsProject.instance().removeMapLayer(scratch.id())


def _write_embedding_raster(path, data: np.ndarray, srl: bool = True) -> None:
    """``data`` (D, H, W) as a raster at 100 m pixels (UTM 17N): an SRL embedding raster, or a plain one."""
    from conftest import UTM17N, _crs_wkt

    from srl_core.embedding_format import field_names, raster_metadata
    from srl_core.raster.geotiff import create_geotiff

    d, h, w = data.shape
    ds = create_geotiff(str(path), w, h, d, np.float32, (500000, 100, 0, 4000000, 0, -100), _crs_wkt(UTM17N),
                        nodata=float("nan"), metadata=raster_metadata("synthetic", d, 16, 16) if srl else {},
                        band_names=field_names(d) if srl else None)
    for i in range(d):
        ds.GetRasterBand(i + 1).WriteArray(data[i])
    ds = None


def test_a_flat_similarity_map_is_said_in_the_message_bar(qgis_iface, qgis_canvas, qgis_new_project,
                                                           tmp_path):
    """The map tool styled a map whose scores span rounding noise over the full colour ramp and said
    nothing; Processing showed the same map's warning (found by an audit)."""
    from qgis.core import Qgis

    rng = np.random.default_rng(1)
    flat = rng.normal(0, 1, 8)[:, None, None] + rng.normal(0, 1e-4, (8, 16, 24))
    _write_embedding_raster(tmp_path / "flat.tif", flat.astype(np.float32))
    tool = _tool_on(QgsRasterLayer(str(tmp_path / "flat.tif"), "flat"), qgis_iface, qgis_canvas)
    qgis_iface.messageBar().clear_messages()
    try:
        assert tool.add_example(QgsPointXY(500650, 3999150))
        _wait(tool)
        said = qgis_iface.messageBar().get_messages(Qgis.Warning)
        assert any("tells no place from another" in message for message in said)
    finally:
        qgis_canvas.unsetMapTool(tool)
        tool.clean_up()


def _plain_raster_and_a_bar(tmp_path):
    """plain.tif, a 4-band raster SRL did not make (left half one way, right half another), and an iface
    with a real message bar (its buttons are clicked: not pytest-qgis's record of messages)."""
    from qgis.gui import QgsMessageBar

    class Iface:
        def __init__(self) -> None:
            self.bar, self.active = QgsMessageBar(), None

        def activeLayer(self):  # noqa: N802
            return self.active

        def setActiveLayer(self, layer):  # noqa: N802
            self.active = layer

        def messageBar(self):  # noqa: N802
            return self.bar

    data = np.zeros((4, 16, 24), np.float32)
    data[0, :, :12], data[1, :, 12:] = 1, 1  # two halves pointing two ways
    _write_embedding_raster(tmp_path / "plain.tif", data, srl=False)
    return Iface()


def test_one_offer_to_treat_bands_as_embeddings_for_the_last_click(qgis_canvas, qgis_new_project, tmp_path):
    """Each click on a plain raster pushed another lasting offer: one left behind, clicked after another
    was accepted, replaced the examples with its own old click and recomputed the map (a GUI audit)."""
    from qgis.PyQt.QtWidgets import QPushButton

    iface = _plain_raster_and_a_bar(tmp_path)
    tool = _tool_on(QgsRasterLayer(str(tmp_path / "plain.tif"), "plain"), iface, qgis_canvas)
    try:
        _click(tool, qgis_canvas, 500850, 3999150)
        _click(tool, qgis_canvas, 501550, 3998550)
        (offer,) = iface.bar.items()
        (button,) = [b for b in offer.findChildren(QPushButton) if "Treat bands" in b.text()]
        button.click()
        _wait(tool)
        assert iface.bar.items() == [] or all(not i.findChildren(QPushButton) for i in iface.bar.items())
        assert len(tool.examples) == 1 and tool.examples[0].x > 501000  # the last click's
    finally:
        qgis_canvas.unsetMapTool(tool)
        tool.clean_up()


def test_a_box_on_a_plain_raster_stays_a_box_once_its_bands_are_accepted(qgis_canvas, qgis_new_project,
                                                                          tmp_path):
    """'Treat bands as embeddings' in the message bar took the example again as the one pixel under the
    mouse's release: the map was of that pixel, named as usual (found by an audit)."""
    from qgis.PyQt.QtWidgets import QPushButton

    iface = _plain_raster_and_a_bar(tmp_path)
    tool = _tool_on(QgsRasterLayer(str(tmp_path / "plain.tif"), "plain"), iface, qgis_canvas)
    try:
        _click(tool, qgis_canvas, 500850, 3999150, drag_to=(501550, 3998550))  # half each; released on B
        (button,) = [b for b in iface.bar.findChildren(QPushButton) if "Treat bands" in b.text()]
        button.click()
        _wait(tool)
        assert len(tool.examples) == 1 and tool.examples[0].polygon_wkt.startswith("Polygon")
        sim = gdal.Open(_similarity_layers()[0].source()).ReadAsArray()
        assert abs(np.nanmean(sim[:, :12]) - np.nanmean(sim[:, 12:])) < 0.1  # the box's mean is between
    finally:
        qgis_canvas.unsetMapTool(tool)
        tool.clean_up()


def test_the_similarity_map_goes_on_top_of_the_layers(setup, embedding_raster):
    """Added above the active layer, the map went under a clusters map made before: a click seemed to do
    nothing (a GUI audit)."""
    tool, canvas = setup
    from qgis.core import QgsLayerTreeRegistryBridge

    project = QgsProject.instance()
    cover = QgsRasterLayer(str(embedding_raster), "Clusters (k=2) of embeddings")
    project.addMapLayer(cover)  # above the embeddings, as a cluster run leaves it
    # QGIS's window adds new layers above the active one (the embeddings, now second)
    point = QgsLayerTreeRegistryBridge.InsertionPoint(project.layerTreeRoot(), 1)
    project.layerTreeRegistryBridge().setLayerInsertionPoint(point)
    _click(tool, canvas, 500650, 3999150)
    _wait(tool)
    (layer,) = _similarity_layers()
    assert QgsProject.instance().layerTreeRoot().layerOrder()[0].id() == layer.id()


def test_a_quality_warning_shown_is_not_pushed_again(tmp_path):
    """An interpolation's map and its uncertainty carry one warning: it was pushed twice, until closed."""
    from srl_plugin import styling

    iface = _plain_raster_and_a_bar(tmp_path)
    flagged = []
    for name in ("map", "uncertainty"):
        rng = np.random.default_rng(1)
        flat = rng.normal(0, 1, 8)[:, None, None] + rng.normal(0, 1e-4, (8, 16, 24))
        _write_embedding_raster(tmp_path / f"{name}.tif", flat.astype(np.float32))
        ds = gdal.Open(str(tmp_path / f"{name}.tif"), gdal.GA_Update)
        ds.SetMetadataItem("SRL_QUALITY_WARNING", "The map does not extrapolate beyond the samples.")
        ds = None
        flagged.append(QgsRasterLayer(str(tmp_path / f"{name}.tif"), name))
    for layer in flagged:
        styling.warn_in_message_bar(layer, iface, styling.WARNING_SECONDS)
    assert len(iface.bar.items()) == 1
