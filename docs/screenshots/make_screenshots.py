"""Screenshots of the plugin's dialogs and styled results for the README.

Run under a virtual X server from the repository root:

    xvfb-run -a .venv/bin/python docs/screenshots/make_screenshots.py

It loads the plugin into a plain main window (a small stand-in for QGIS's interface), runs
the algorithms through Processing with their defaults on the bundled sample data
(``resources/sample_data``: a Landsat 7 scene and the Meuse soil samples), so the outputs are
named and styled exactly as in QGIS, clicks the similarity map tool on the embedding raster,
and writes PNGs beside this file.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.append("/usr/share/qgis/python/plugins")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas  # noqa: E402
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor  # noqa: E402
from qgis.PyQt.QtWidgets import QMainWindow  # noqa: E402

SAMPLE = ROOT / "resources" / "sample_data" / "nc_landsat7_2000.tif"


def process_events(rounds: int = 20) -> None:
    for _ in range(rounds):
        QgsApplication.processEvents()


def grab(widget, name: str) -> None:
    widget.show()
    process_events()
    widget.grab().save(str(HERE / name))
    print("wrote", HERE / name)


def render_with_legend(layers, name: str, title: str, size: int = 512, overlay=()) -> None:
    """The map with the layer's legend beside it, as the analyst sees it in the layers panel."""
    from qgis.PyQt.QtCore import QRect, Qt
    from qgis.PyQt.QtGui import QFont, QImage, QPainter

    items = layers[0].renderer().legendSymbologyItems()
    width = size + 330
    image = QImage(width, size, QImage.Format_ARGB32)
    image.fill(QColor(255, 255, 255))
    painter = QPainter(image)
    painter.drawImage(0, 0, _map_image([*overlay, *layers], (size, size)))
    font = QFont("DejaVu Sans", 11)
    painter.setFont(font)
    painter.setPen(QColor(0, 0, 0))
    painter.drawText(QRect(size + 16, 12, 310, 44), Qt.TextWordWrap, title)
    painter.drawText(QRect(size + 16, 56, 310, 60), Qt.TextWordWrap, layers[0].name())
    step = min(26, (size - 130) // max(1, len(items)))
    for i, (label, colour) in enumerate(items):
        y = 124 + i * step
        painter.fillRect(size + 16, y, 28, step - 6, colour)
        painter.drawRect(size + 16, y, 28, step - 6)
        painter.drawText(size + 54, y + step - 10, str(label))
    painter.end()
    image.save(str(HERE / name))
    print("wrote", HERE / name)


def _map_image(layers, size):
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(layers[-1].crs())
    settings.setExtent(layers[-1].extent())
    settings.setOutputSize(QSize(*size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    return job.renderedImage()


def render(layers, name: str, size=(512, 512)) -> None:
    _map_image(layers, size).save(str(HERE / name))
    print("wrote", HERE / name)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="srl_shots_"))
    os.environ.setdefault("SRL_MODELS_DIR", str(work / "models"))
    app = QgsApplication([], True)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    import processing
    import qgis.utils

    window = QMainWindow()
    window.setWindowTitle("QGIS with the SRL plugin")
    window.resize(1100, 700)
    canvas = QgsMapCanvas(window)
    window.setCentralWidget(canvas)
    iface = MiniInterface(window, canvas)
    qgis.utils.iface = iface
    import processing.tools.general as general

    general.iface = iface

    import srl_plugin

    plugin = srl_plugin.classFactory(iface)
    plugin.initGui()
    from srl_plugin.settings import set_device

    set_device("cpu")

    landsat = QgsRasterLayer(str(SAMPLE), "Landsat 7 (NC sample)")
    QgsProject.instance().addMapLayer(landsat)
    iface.setActiveLayer(landsat)

    # 1. The Processing dialog the "Embed the active layer" action opens, with its defaults.
    alg_id, params = srl_plugin.plugin.embed_request(landsat)
    dialog = processing.createAlgorithmDialog(alg_id, params)
    dialog.resize(900, 640)
    grab(dialog, "embed_dialog.png")

    # 2. Run the chain through Processing with the defaults, loading (and styling) the outputs as QGIS does.
    emb = processing.runAndLoadResults(
        "srl:embed_raster", {"INPUT": landsat.id(), "STRIDE": 4, "OUTPUT": str(work / "embeddings.tif")}
    )["OUTPUT"]
    processing.runAndLoadResults("srl:cluster", {"INPUT": emb, "K": 6, "OUTPUT": str(work / "clusters.tif")})
    processing.runAndLoadResults("srl:rgb_view", {"INPUT": emb, "OUTPUT": str(work / "rgb.tif")})
    by_name = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    embeddings = next(v for k, v in by_name.items() if k.startswith("Embeddings of"))
    clusters = next(v for k, v in by_name.items() if k.startswith("Clusters"))
    rgb = next(v for k, v in by_name.items() if k.startswith("Embedding RGB"))
    render([landsat], "landsat_crop.png")
    render([embeddings], "embeddings.png")
    render_with_legend([clusters], "clusters.png", "k-means clusters of tile embeddings")
    render([rgb], "rgb_view.png")

    # 3. Interpolation of the Meuse zinc samples, prediction and uncertainty side by side.
    meuse = str(ROOT / "resources" / "sample_data" / "meuse.gpkg")
    result = processing.runAndLoadResults(
        "srl:interpolate",
        {
            "INPUT": meuse,
            "FIELD": "zinc",
            "LOG": True,
            "OUTPUT": str(work / "zinc.tif"),
            "OUTPUT_UNCERTAINTY": str(work / "zinc_sd.tif"),
        },
    )
    print(result["REPORT"])
    by_name = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    prediction = next(v for k, v in by_name.items() if "predicted" in k)
    uncertainty = next(v for k, v in by_name.items() if k.endswith("uncertainty"))
    samples = QgsVectorLayer(meuse, "samples", "ogr")
    samples.renderer().symbol().setSize(1.2)
    samples.renderer().symbol().setColor(QColor(20, 20, 20))
    render_with_legend(
        [prediction], "prediction.png", "Meuse topsoil zinc (ppm), 155 samples", overlay=[samples]
    )
    render_with_legend([uncertainty], "uncertainty.png", "Predictive standard deviation (ppm)")

    # 4. The main window with the toolbar: the similarity map tool clicked on the embedding raster,
    # its marker where the click was, the similarity layer over the true-colour image.
    from qgis.core import QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsPointXY

    true_colour = QgsMultiBandColorRenderer(landsat.dataProvider(), 3, 2, 1)
    for band, setter in zip((3, 2, 1), (true_colour.setRedContrastEnhancement,
                                        true_colour.setGreenContrastEnhancement,
                                        true_colour.setBlueContrastEnhancement)):  # fmt: skip
        low, high = landsat.dataProvider().cumulativeCut(band, 0.02, 0.98)
        enhancement = QgsContrastEnhancement(landsat.dataProvider().dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum, False)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high)
        setter(enhancement)
    landsat.setRenderer(true_colour)
    canvas.setDestinationCrs(landsat.crs())
    canvas.setLayers([embeddings, landsat])
    canvas.setExtent(landsat.extent())
    window.show()
    process_events(20)
    iface.setActiveLayer(embeddings)
    plugin.actions["similarity"].setChecked(True)
    plugin.toggle_similarity_tool()
    extent = landsat.extent()
    plugin.map_tool.add_example(QgsPointXY(extent.xMinimum() + 0.7 * extent.width(),
                                           extent.yMinimum() + 0.35 * extent.height()))
    while plugin.map_tool.busy:
        process_events(5)
    layers = QgsProject.instance().mapLayers().values()
    similarity = next(layer for layer in layers if layer.name().startswith("Similarity"))
    similarity.renderer().setOpacity(0.75)
    canvas.setLayers([similarity, landsat])
    canvas.refreshAllLayers()
    process_events(50)
    canvas.waitWhileRendering()
    process_events(50)
    grab(window, "main_window.png")
    render_with_legend([similarity], "similarity.png", "Similarity to the clicked tile")

    # 5. The model manager.
    plugin.show_model_manager()
    plugin.model_manager.refresh(select="tile2vec-l8-rgb-compact")
    grab(plugin.model_manager, "model_manager.png")
    plugin.unload()
    os._exit(0)  # skip interpreter teardown of QGIS objects (not needed for a one-shot script)


class MiniInterface:
    """The few QgisInterface calls the plugin and Processing dialogs make, on a plain main window."""

    def __init__(self, window, canvas) -> None:
        from qgis.gui import QgsMessageBar

        self._window, self._canvas, self._active = window, canvas, None
        self._bar = QgsMessageBar(window)

    def mainWindow(self):  # noqa: N802
        return self._window

    def mapCanvas(self):  # noqa: N802
        return self._canvas

    def messageBar(self):  # noqa: N802
        return self._bar

    def addToolBar(self, name):  # noqa: N802
        return self._window.addToolBar(name)

    def activeLayer(self):  # noqa: N802
        return self._active

    def setActiveLayer(self, layer):  # noqa: N802
        self._active = layer


if __name__ == "__main__":
    main()
