"""``python -m srl_plugin.demo --out demo-output``: the project's main job, end to end, headless.

Starts QGIS without a window, loads the plugin the way ``qgis_process`` does
(``classFactory`` + ``initProcessing``), lists its Processing algorithms, then runs them
through ``processing.run`` on the bundled sample data (a Landsat 7 scene of North Carolina
and the Meuse soil samples) and renders every output with QGIS's own map renderer into
PNG maps, styled as the plugin styles them in a project.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Optional

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import (  # noqa: E402
    QgsApplication,
    QgsMapLayer,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsRasterLayer,
    QgsReferencedPointXY,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize  # noqa: E402
from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DIR = ROOT / "resources" / "sample_data"
SAMPLE_RASTER = SAMPLE_DIR / "nc_landsat7_2000.tif"
SAMPLE_POINTS = SAMPLE_DIR / "meuse.gpkg"
PANEL = 560


def gdal_metadata(path: str, key: str) -> str:
    """A metadata item srl_core wrote into a raster output."""
    from osgeo import gdal

    return gdal.Open(path).GetMetadataItem(key) or ""


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
    from srl_plugin import styling

    provider = layer.dataProvider()
    styling.stretched_rgb(layer, bands, [provider.cumulativeCut(band, 0.02, 0.98) for band in bands])


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


class Demo:
    """Runs the algorithms one after the other, logging each step's time."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.log_lines: list[str] = []

    def log(self, line: str) -> None:
        print(line, flush=True)
        self.log_lines.append(line)

    def run(self, title: str, algorithm: str, parameters: dict) -> dict:
        import processing

        start = time.monotonic()
        result = processing.run(algorithm, parameters)
        self.log(f"{title} ({algorithm}): {time.monotonic() - start:.1f} s")
        return result

    def path(self, name: str) -> str:
        return str(self.out / name)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="folder for every output")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    app = start_qgis()
    plugin = load_plugin()
    run_demo(plugin, out)
    plugin.unload()
    app.exitQgis()
    return 0


def run_demo(plugin, out: Path) -> None:
    """Every step of the demo; its layers are gone when it returns, before QGIS exits."""
    demo = Demo(out)
    algorithms = sorted(alg.id() for alg in plugin.provider.algorithms())
    (out / "algorithms.txt").write_text("\n".join(algorithms) + "\n", encoding="utf-8")
    demo.log(f"SRL plugin loaded: {len(algorithms)} Processing algorithms: {', '.join(algorithms)}")

    from srl_plugin import styling

    landsat = QgsRasterLayer(str(SAMPLE_RASTER), "Landsat 7, North Carolina (true colour)")
    style_true_colour(landsat)
    panels = [("Landsat 7 sample (bands 3-2-1)", render([landsat], out / "01_sample_raster.png"))]

    demo.run("Models", "srl:list_models", {"OUTPUT_HTML": demo.path("models.html")})
    # Defaults throughout (what users copy): the model, its bands (from the raster's band names)
    # and the standardisation (automatic) are chosen by the algorithm, which logs its choices.
    emb = demo.run(
        "Embed raster tiles",
        "srl:embed_raster",
        {
            "INPUT": str(SAMPLE_RASTER),
            "STRIDE": 4,  # a finer map than one pixel per tile (the default), for the figure
            "OUTPUT": demo.path("tile_embeddings.tif"),
        },
    )["OUTPUT"]
    tile_model = gdal_metadata(emb, "SRL_MODEL_ID")
    clusters = demo.run(
        "Cluster",
        "srl:cluster",
        {
            "INPUT": emb,
            "K": 6,  # the default (0) chooses k by silhouette; six classes read well on this scene
            "OUTPUT": demo.path("clusters.tif"),
            "OUTPUT_MODEL": demo.path("clusters.safetensors"),
        },
    )["OUTPUT"]
    rgb = demo.run(
        "Embedding RGB view",
        "srl:rgb_view",
        {"INPUT": emb, "OUTPUT": demo.path("embedding_rgb.tif")},
    )["OUTPUT"]
    query = QgsReferencedPointXY(landsat.extent().center(), landsat.crs())  # its CRS has no EPSG code
    similarity = demo.run(
        "Similarity search",
        "srl:similarity",
        {
            "INPUT": emb,
            "QUERY_POINT": query,
            "TOP_K": 10,
            "OUTPUT": demo.path("similarity.tif"),
            "OUTPUT_TOP_K": demo.path("similarity_top10.gpkg"),
        },
    )

    cluster_layer = QgsRasterLayer(clusters, "Clusters")
    styling.style_classes(cluster_layer)
    rgb_layer = QgsRasterLayer(rgb, "Embedding RGB view")
    styling.style_embedding_view(rgb_layer)
    sim_layer = QgsRasterLayer(similarity["OUTPUT"], "Similarity")
    styling.style_similarity(sim_layer)
    top_layer = QgsVectorLayer(similarity["OUTPUT_TOP_K"], "Top 10")
    panels += [
        (f"k-means clusters of {tile_model}", render([cluster_layer], out / "02_clusters.png", landsat)),
        ("Embedding RGB view (PCA)", render([rgb_layer], out / "03_embedding_rgb.png", landsat)),
        (
            "Similarity to the scene centre + top 10",
            render([top_layer, sim_layer], out / "04_similarity.png", landsat),
        ),
    ]

    # model 'auto': the Meuse samples span 4 km, far below the bundled model's 1000 km, so
    # location features fitted to the layer's own extent are used (and the log says so)
    demo.run(
        "Embed point locations",
        "srl:embed_points",
        {"INPUT": str(SAMPLE_POINTS), "OUTPUT": demo.path("meuse_location_embeddings.gpkg")},
    )
    interpolated = demo.run(
        "Interpolate zinc",
        "srl:interpolate",
        {
            "INPUT": str(SAMPLE_POINTS),
            "FIELD": "zinc",  # the default is the first numeric field, cadmium
            "LOG": True,  # concentrations: skewed, never negative
            "MAX_DISTANCE": 300.0,  # no extrapolation far from the samples
            "OUTPUT": demo.path("zinc_prediction.tif"),
            "OUTPUT_UNCERTAINTY": demo.path("zinc_uncertainty.tif"),
        },
    )
    demo.log("Interpolation report: " + str(interpolated.get("REPORT", "")).replace("\n", " | "))
    points = QgsVectorLayer(str(SAMPLE_POINTS), "Meuse samples")
    prediction = QgsRasterLayer(interpolated["OUTPUT"], "Zinc prediction")
    styling.style_prediction(prediction)
    uncertainty = QgsRasterLayer(interpolated["OUTPUT_UNCERTAINTY"], "Zinc uncertainty")
    styling.style_uncertainty(uncertainty)
    panels += [
        (
            "Meuse zinc, interpolated (ppm)",
            render([points, prediction], out / "05_zinc_prediction.png", prediction),
        ),
        (
            "Meuse zinc, uncertainty",
            render([points, uncertainty], out / "06_zinc_uncertainty.png", prediction),
        ),
    ]
    compose(panels, out / "map.png")
    demo.log(f"Map: {out / 'map.png'}")
    (out / "demo-log.txt").write_text("\n".join(demo.log_lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())
