"""Screenshots of the plugin's dialogs and styled results for the README.

Run under a virtual X server from the repository root:

    xvfb-run -a .venv/bin/python docs/screenshots/make_screenshots.py

It loads the plugin into a plain main window (a small stand-in for QGIS's interface), runs
the algorithms through Processing on the committed samples ``tests/data/nc_landsat_crop.tif``
(Landsat 7) and ``tests/data/meuse`` (soil samples), so the outputs are named and styled
exactly as in QGIS, and writes PNGs beside this file. The tile model is the first bundled
5-band tile model; without one, a small Tile2Vec encoder is trained on the crop for a few
hundred steps into a temporary folder.
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

SAMPLE = ROOT / "tests" / "data" / "nc_landsat_crop.tif"


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


def tile_model(work: Path) -> str:
    from srl_core.bundle import list_bundles

    for card, _path in list_bundles():
        if card.kind == "tile" and int(card.config.get("in_channels", 0)) == 5:
            return card.id
    from training.tile2vec import Tile2VecConfig, export_bundle, train_tile2vec

    print("no bundled 5-band tile model: training a small Tile2Vec encoder on the crop")
    result = train_tile2vec(
        [str(SAMPLE)],
        Tile2VecConfig(tile_size=16, z_dim=16, steps=300, batch_size=32, nodata=-99999),
        device="cpu",
    )
    export_bundle(result, work / "models" / "crop-tile2vec", "crop-tile2vec", description="Screenshot model")
    return "crop-tile2vec"


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
    model_id = tile_model(work)
    from srl_plugin.settings import set_device

    set_device("cpu")

    landsat = QgsRasterLayer(str(SAMPLE), "Landsat 7 (NC crop)")
    QgsProject.instance().addMapLayer(landsat)
    iface.setActiveLayer(landsat)

    # 1. The Processing dialog the "Embed the active layer" action opens.
    alg_id, params = srl_plugin.plugin.embed_request(landsat)
    dialog = processing.createAlgorithmDialog(alg_id, {**params, "MODEL": model_id, "STRIDE": 4})
    dialog.resize(900, 640)
    grab(dialog, "embed_dialog.png")

    # 2. Run the chain through Processing, loading (and styling) the outputs like QGIS does.
    emb = processing.runAndLoadResults(
        "srl:embed_raster",
        {"INPUT": landsat.id(), "MODEL": model_id, "STRIDE": 4, "OUTPUT": str(work / "embeddings.tif")},
    )["OUTPUT"]
    processing.runAndLoadResults("srl:cluster", {"INPUT": emb, "K": 6, "OUTPUT": str(work / "clusters.tif")})
    processing.runAndLoadResults("srl:rgb_view", {"INPUT": emb, "OUTPUT": str(work / "rgb.tif")})
    processing.runAndLoadResults(
        "srl:similarity",
        {"INPUT": emb, "QUERY_POINT": _centre_of(landsat, 0.7, 0.35), "OUTPUT": str(work / "similarity.tif")},
    )
    by_name = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    clusters = next(v for k, v in by_name.items() if k.startswith("Clusters"))
    rgb = next(v for k, v in by_name.items() if k.startswith("Embedding RGB"))
    similarity = next(v for k, v in by_name.items() if k.startswith("Similarity"))
    render([landsat], "landsat_crop.png")
    render_with_legend([clusters], "clusters.png", "k-means clusters of tile embeddings")
    render_with_legend([similarity], "similarity.png", "Similarity to a clicked tile")
    render([rgb], "rgb_view.png")

    # 3. Interpolation of the Meuse zinc samples, prediction and uncertainty side by side.
    meuse = str(ROOT / "tests" / "data" / "meuse" / "meuse.shp")
    result = processing.runAndLoadResults(
        "srl:interpolate",
        {
            "INPUT": meuse,
            "FIELD": "zinc",
            "RESOLUTION": 40,
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

    # 4. The main window with the toolbar: the similarity layer over the true-colour image.
    from qgis.core import QgsContrastEnhancement, QgsMultiBandColorRenderer

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
    similarity.renderer().setOpacity(0.7)
    canvas.setDestinationCrs(landsat.crs())
    canvas.setLayers([similarity, landsat])
    canvas.setExtent(landsat.extent())
    window.show()
    canvas.refreshAllLayers()
    process_events(50)
    canvas.waitWhileRendering()
    process_events(50)
    grab(window, "main_window.png")

    # 5. The model manager.
    plugin.show_model_manager()
    plugin.model_manager.refresh(select=model_id)
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


def _centre_of(layer, fx: float, fy: float) -> str:
    e = layer.extent()
    x = e.xMinimum() + fx * e.width()
    y = e.yMinimum() + fy * e.height()
    return f"{x},{y} [{layer.crs().authid() or 'EPSG:3358'}]"


if __name__ == "__main__":
    main()
