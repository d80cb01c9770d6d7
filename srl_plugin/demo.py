"""``python -m srl_plugin.demo --out demo-output``: the project's main job, end to end, headless.

Starts QGIS without a window, loads the plugin the way ``qgis_process`` does
(``classFactory`` + ``initProcessing``), lists its Processing algorithms, then runs them
through ``processing.run`` on the bundled sample data (a Landsat 7 scene of North Carolina
and the Meuse soil samples) and renders every output with QGIS's own map renderer into
PNG maps, styled as the plugin styles them in a project.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Optional

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsContrastEnhancement,
    QgsMapLayer,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "resources" / "sample_data"
SAMPLE_RASTER = SAMPLE_DIR / "nc_landsat7_2000.tif"
SAMPLE_POINTS = SAMPLE_DIR / "meuse.gpkg"
PANEL = 560


def start_qgis() -> QgsApplication:
    """A GUI-less QGIS with Processing initialised (the processing package lives with QGIS)."""
    app = QgsApplication([], False)
    app.initQgis()
    plugins = Path(QgsApplication.pkgDataPath()) / "python" / "plugins"
    if str(plugins) not in sys.path:
        sys.path.append(str(plugins))
    from processing.core.Processing import Processing

    Processing.initialize()
    return app


def load_plugin():
    """Load SRL as qgis_process does for a plugin with ``hasProcessingProvider=yes``."""
    from srl_plugin import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    if plugin.provider is None:
        raise SystemExit(
            "The SRL plugin could not register its provider: " + plugin.dependency_report.message()
        )
    return plugin


def style_true_colour(layer: QgsRasterLayer, bands=(3, 2, 1)) -> None:
    """Landsat bands 3, 2, 1 as red, green, blue, each stretched over its 2-98 % range."""
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, *bands)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)  # fmt: skip
    for band, setter in zip(bands, setters):
        low, high = provider.cumulativeCut(band, 0.02, 0.98)
        enhancement = QgsContrastEnhancement(provider.dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum, False)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high)
        setter(enhancement)
    layer.setRenderer(renderer)


def render(layers: list[QgsMapLayer], path: Path, extent_layer: Optional[QgsMapLayer] = None) -> QImage:
    """Render ``layers`` (first on top) with QGIS's map renderer into a PNG and return the image."""
    extent_layer = extent_layer or layers[-1]
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(extent_layer.crs())
    settings.setExtent(extent_layer.extent())
    settings.setOutputSize(
        QSize(PANEL, int(PANEL * extent_layer.extent().height() / extent_layer.extent().width()))
    )
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    image.save(str(path))
    return image


def compose(panels: list[tuple[str, QImage]], path: Path, columns: int = 3) -> None:
    """Put titled map panels side by side in one figure."""
    rows = (len(panels) + columns - 1) // columns
    height = max(img.height() for _, img in panels) + 30
    figure = QImage(PANEL * columns, height * rows, QImage.Format_ARGB32)
    figure.fill(QColor("white"))
    painter = QPainter(figure)
    painter.setFont(QFont("DejaVu Sans", 12))
    for i, (title, img) in enumerate(panels):
        x, y = (i % columns) * PANEL, (i // columns) * height
        painter.drawText(x + 8, y + 20, title)
        painter.drawImage(x, y + 30, img)
    painter.end()
    figure.save(str(path))


def run_step(title: str, func: Callable[[], dict], log) -> dict:
    start = time.monotonic()
    result = func()
    log(f"{title}: {time.monotonic() - start:.1f} s")
    return result
