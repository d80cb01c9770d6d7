"""What the user sees by default: an embedding raster that is not mostly black, legends rounded to
the data's precision, sample points kept above the rasters made from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import processing
from qgis.core import (
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsProject,
    QgsRasterLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor

from srl_plugin import styling

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RASTER = str(ROOT / "resources" / "sample_data" / "nc_landsat7_2000.tif")
MEUSE = str(ROOT / "resources" / "sample_data" / "meuse.gpkg")


def _brightness(layer: QgsRasterLayer) -> float:
    settings = QgsMapSettings()
    settings.setLayers([layer])
    settings.setDestinationCrs(layer.crs())
    settings.setExtent(layer.extent())
    settings.setOutputSize(QSize(120, 120))
    settings.setBackgroundColor(QColor("white"))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    image = job.renderedImage()
    values = [QColor(image.pixel(x, y)).value() for x in range(20, 100, 4) for y in range(20, 100, 4)]
    return float(np.mean(values))


def test_embedding_raster_default_style_is_not_mostly_black(srl_provider, tmp_path):
    """The compact model's ReLU embedding is mostly 0 in bands 1-3 (the old default: black); the
    default style shows its most informative bands instead. The default model's output too."""
    params = {"INPUT": SAMPLE_RASTER, "MODEL": "tile2vec-l8-rgb-compact", "OUTPUT": str(tmp_path / "e.tif")}
    layer = QgsRasterLayer(processing.run("srl:embed_raster", params)["OUTPUT"], "embeddings")
    styling.style_rgb(layer)  # the old default: bands 1-3
    old = _brightness(layer)
    styling.style_embeddings(layer)
    assert layer.renderer().redBand() != 1 or layer.renderer().greenBand() != 2
    assert _brightness(layer) > old + 40 and _brightness(layer) > 90
    params = {"INPUT": SAMPLE_RASTER, "OUTPUT": str(tmp_path / "auto.tif")}
    layer = QgsRasterLayer(processing.run("srl:embed_raster", params)["OUTPUT"], "embeddings")
    styling.style_embeddings(layer)
    assert _brightness(layer) > 90


def test_legend_rounded_to_the_data_precision(tmp_path):
    assert styling.legend_decimals(113, 1839) == 0 and styling.legend_decimals(0.2, 18.1) == 1
    assert styling.legend_decimals(0.001, 0.004) == 5
    from osgeo import gdal

    path = str(tmp_path / "zinc.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 20, 20, 1, gdal.GDT_Float32)
    ds.SetGeoTransform((0, 1, 0, 20, 0, -1))
    ds.GetRasterBand(1).WriteArray(np.linspace(113.123456, 1839.987654, 400).reshape(20, 20))
    ds = None
    layer = QgsRasterLayer(path, "zinc")
    styling.style_prediction(layer)
    shader = layer.renderer().shader().rasterShaderFunction()
    labels = [item.label for item in shader.colorRampItemList()]
    assert all("." not in label for label in labels) and any("," in label for label in labels)
    assert shader.legendSettings().numericFormat().numberDecimalPlaces() == 0


def test_sample_points_stay_above_the_rasters_made_from_them(srl_provider, qgis_new_project, tmp_path):
    points = QgsVectorLayer(MEUSE, "meuse", "ogr")
    QgsProject.instance().addMapLayer(points)
    processing.runAndLoadResults("srl:interpolate", {"INPUT": points.id(), "MEMBERS": 2,
                                                     "OUTPUT": str(tmp_path / "p.tif"),
                                                     "OUTPUT_UNCERTAINTY": str(tmp_path / "u.tif")})
    order = [node.layer().name() for node in QgsProject.instance().layerTreeRoot().findLayers()]
    assert order[0] == "meuse" and len(order) == 3


def test_an_embedding_raster_with_few_valid_tiles_is_styled(tmp_path):
    """A small mask in a large scene: the decimated sample missed every valid tile, the style raised,
    and QGIS left the layer unstyled and never showed its quality warning."""
    from osgeo import gdal, osr

    path = str(tmp_path / "sparse.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 700, 700, 4, gdal.GDT_Float32)
    ds.SetGeoTransform((500000, 32, 0, 4000000, 0, -32))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32617)
    ds.SetProjection(srs.ExportToWkt())
    data = np.full((4, 700, 700), np.nan, np.float32)
    data[:, 2:4, 2:4] = np.random.default_rng(0).normal(size=(4, 2, 2))
    for band in range(4):
        ds.GetRasterBand(band + 1).WriteArray(data[band])
        ds.GetRasterBand(band + 1).SetNoDataValue(float("nan"))
    ds = None
    layer = QgsRasterLayer(path, "sparse")
    styling.style_embeddings(layer)
    assert layer.renderer().type() == "multibandcolor"


def test_a_new_point_result_goes_above_the_points_it_was_made_from(srl_provider, qgis_new_project, tmp_path):
    """After an interpolation lifted the sample points to the top, the classes of their location embeddings
    were added under them: plain points covered the clusters, and the map seemed unchanged (a GUI audit)."""
    from qgis.core import QgsLayerTreeRegistryBridge

    project = QgsProject.instance()
    points = QgsVectorLayer(MEUSE, "meuse", "ogr")
    project.addMapLayer(points)
    embed = {"INPUT": points.id(), "MODEL": "local", "OUTPUT": str(tmp_path / "e.gpkg")}
    embedded = processing.runAndLoadResults("srl:embed_points", embed)["OUTPUT"]
    under_meuse = QgsLayerTreeRegistryBridge.InsertionPoint(project.layerTreeRoot(), 1)  # as QGIS's window
    project.layerTreeRegistryBridge().setLayerInsertionPoint(under_meuse)
    cluster = {"INPUT": embedded, "K": 3, "OUTPUT_POINTS": str(tmp_path / "c.gpkg")}
    processing.runAndLoadResults("srl:cluster", cluster)
    assert project.layerTreeRoot().findLayers()[0].layer().name().startswith("Clusters (k=3)")
