"""Embeddings SRL did not make in QGIS: the Processing analyses with "treat bands as embeddings"
on a real multi-band raster, a recognised AlphaEarth raster without it, and the similarity map
tool offering to use a raster's bands."""

from __future__ import annotations

import numpy as np
import processing
import pytest
from osgeo import gdal
from product_rasters import (
    LANDSAT,
    ORIGIN_X,
    PIXEL,
    TOP_Y,
    W,
    alphaearth_int8,
    dequantise_alphaearth,
)
from qgis.core import QgsProcessingException, QgsRasterLayer
from test_plugin_similarity_tool import _click, _similarity_layers, _tool_on, _wait

from srl_core.embedding_products import PRODUCT_KEY
from srl_plugin.gui.similarity_tool import is_embedding_raster


def _landsat() -> tuple[np.ndarray, np.ndarray, tuple]:
    ds = gdal.Open(str(LANDSAT))
    values = ds.ReadAsArray().astype(np.float32)
    return values, (values != -99999).all(axis=0), ds.GetGeoTransform()


def test_processing_analyses_treat_landsat_bands_as_embeddings(srl_provider, tmp_path):
    values, valid, gt = _landsat()
    refused = "Treat the bands of a raster SRL did not make as embeddings"
    with pytest.raises(QgsProcessingException, match=refused):
        processing.run("srl:cluster", {"INPUT": str(LANDSAT), "K": 3, "OUTPUT": str(tmp_path / "no.tif")})
    model = tmp_path / "k.safetensors"
    result = processing.run(
        "srl:cluster",
        {
            "INPUT": str(LANDSAT),
            "BANDS_AS_EMBEDDINGS": True,
            "K": 3,
            "SAMPLE_SIZE": 3000,
            "OUTPUT": str(tmp_path / "k.tif"),
            "OUTPUT_MODEL": str(model),
        },
    )
    classes = gdal.Open(result["OUTPUT"]).ReadAsArray()
    assert result["CLUSTERS"] == 3 and set(np.unique(classes[valid])) == {1, 2, 3}
    assert (classes[~valid] == 0).all()
    applied = processing.run(
        "srl:apply_cluster_model",
        {
            "INPUT": str(LANDSAT),
            "BANDS_AS_EMBEDDINGS": True,
            "CLUSTER_MODEL": str(model),
            "OUTPUT": str(tmp_path / "k2.tif"),
        },
    )
    np.testing.assert_array_equal(gdal.Open(applied["OUTPUT"]).ReadAsArray(), classes)

    row, col = 100, 250
    x, y = gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5]
    sim = processing.run(
        "srl:similarity",
        {
            "INPUT": str(LANDSAT),
            "BANDS_AS_EMBEDDINGS": True,
            "QUERY_POINT": f"{x},{y}",
            "OUTPUT": str(tmp_path / "s.tif"),
        },
    )
    out = gdal.Open(sim["OUTPUT"])
    scores = out.ReadAsArray()
    q = values[:, row, col] / np.linalg.norm(values[:, row, col])
    expected = q @ (values[:, valid] / np.linalg.norm(values[:, valid], axis=0))
    np.testing.assert_allclose(scores[valid], expected, atol=1e-5)
    assert out.GetMetadataItem(PRODUCT_KEY) == "float"

    rgb = processing.run(
        "srl:rgb_view",
        {"INPUT": str(LANDSAT), "BANDS_AS_EMBEDDINGS": True, "OUTPUT": str(tmp_path / "rgb.tif")},
    )
    variance = [float(v) for v in rgb["VARIANCE"].split(",")]
    assert len(variance) == 3 and 1.0 >= sum(variance) > variance[0] > 0.5


def test_processing_recognises_a_bottom_up_alphaearth_raster(srl_provider, tmp_path):
    path, _, q = alphaearth_int8(tmp_path / "aef.tif", bottom_up=True)
    x, y = ORIGIN_X + 2.5 * PIXEL, TOP_Y - 3.5 * PIXEL  # column 2, row 3 (north-up)
    result = processing.run(
        "srl:similarity", {"INPUT": path, "QUERY_POINT": f"{x},{y}", "OUTPUT": str(tmp_path / "s.tif")}
    )
    out = gdal.Open(result["OUTPUT"])
    assert out.GetGeoTransform()[5] < 0  # written north-up
    sim = out.ReadAsArray()
    assert sim[3, 2] == pytest.approx(1.0, abs=1e-6)
    v = dequantise_alphaearth(q)[:, 3, 2]
    w = dequantise_alphaearth(q)[:, 3, W - 1]
    assert sim[3, W - 1] == pytest.approx(v @ w / np.linalg.norm(v) / np.linalg.norm(w), abs=1e-5)


def test_similarity_tool_offers_to_treat_bands_as_embeddings(qgis_iface, qgis_canvas, qgis_new_project):
    values, valid, gt = _landsat()
    layer = QgsRasterLayer(str(LANDSAT), "landsat")
    assert layer.isValid() and not is_embedding_raster(layer)
    tool = _tool_on(layer, qgis_iface, qgis_canvas)
    messages = []
    tool.failed.connect(messages.append)
    row, col = 200, 300
    x, y = gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5]
    try:
        _click(tool, qgis_canvas, x, y)
        assert messages and "treat its band values as embeddings" in messages[0]
        assert not _similarity_layers()
        tool.treat_bands_as_embeddings(layer)  # what the message bar's button does
        assert is_embedding_raster(layer)
        _click(tool, qgis_canvas, x, y)
        _wait(tool, 120)
        (result,) = _similarity_layers()
        sim = gdal.Open(result.source()).ReadAsArray()
        c, r = (int((tool.examples[0].x - gt[0]) / gt[1]), int((tool.examples[0].y - gt[3]) / gt[5]))
        assert sim[r, c] == pytest.approx(1.0, abs=1e-5) and np.isnan(sim[~valid]).all()
    finally:
        qgis_canvas.unsetMapTool(tool)
        tool.clean_up()
