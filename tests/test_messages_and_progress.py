"""Progress within a pass and cancel in every pass; messages with advice that fits the input,
coordinates in fixed notation with units, and empty selections named by their layer."""

from __future__ import annotations

from pathlib import Path

import processing
import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeatureSourceDefinition, QgsProject, QgsVectorLayer
from test_raster_grid import ramp, write_raster
from test_tile_engine import CROP, mean_model

from srl_core import tiles
from srl_core.errors import CancelledError, InputError
from srl_core.progress import Progress
from srl_core.raster.source import open_source
from srl_core.raster.statistics import band_statistics
from srl_core.tiles import embed_raster
from srl_core.vector.coordinates_text import crs_units, format_point

MEUSE = str(Path(__file__).resolve().parent.parent / "resources" / "sample_data" / "meuse.gpkg")


def test_progress_is_reported_within_a_strip(tmp_path, monkeypatch):
    monkeypatch.setattr(tiles, "PROGRESS_INTERVAL_S", 0.0)  # every batch: the interval is a wall-clock bound
    seen = []
    embed_raster(CROP, tmp_path / "e.tif", mean_model(5, 4), stride=4, batch_size=8,
                 progress=Progress(lambda f, m: seen.append((f, m))))
    within = [f for f, m in seen if "tiles embedded" in m]
    assert len(within) > 100  # 1024 tiles in batches of 8, reported within strips
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions)


def test_band_statistics_can_be_cancelled():
    source = open_source(CROP, 5)
    with pytest.raises(CancelledError):
        band_statistics(source, progress=Progress(is_cancelled=lambda: True))


def test_advice_fits_the_raster(tmp_path):
    world = write_raster(tmp_path / "world.tif", ramp(3, 40, 20), (-180, 9, 0, 90, 0, -9), 4326)
    with pytest.raises(InputError, match="equal-area") as wide:
        embed_raster(world, tmp_path / "o.tif", mean_model(3, 4))
    assert "UTM" not in str(wide.value)
    nc = write_raster(tmp_path / "nc.tif", ramp(3, 40, 20), (-79.0, 0.001, 0, 35.8, 0, -0.001), 4326)
    with pytest.raises(InputError, match=r"UTM zone, 17N \(gdalwarp -t_srs EPSG:32617\)"):
        embed_raster(nc, tmp_path / "o.tif", mean_model(3, 4))

    gt = (500000, 7500, 0, 4000000, 0, -7500)
    coarse = write_raster(tmp_path / "coarse.tif", ramp(3, 40, 40), gt, 32617)
    model = mean_model(3, 4)
    model.card.inputs["pixel_size_m"] = 30.0
    (warning,) = [w for w in embed_raster(coarse, tmp_path / "c.tif", model).warnings if "pixels are" in w]
    assert "7,500.0 m" in warning and "250 times coarser" in warning and "gdalwarp -tr" not in warning


def test_coordinates_in_fixed_notation_with_units():
    assert format_point(643512.3456, 4501003.1, "m") == "(643,512.35 m, 4,501,003.10 m)"
    assert format_point(5.7312341, 50.9711549, "°") == "(5.731234°, 50.971155°)"
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(28992)
    assert crs_units(srs.ExportToWkt()) == "m"


def test_a_point_outside_an_embedding_raster_is_named_in_metres(embedding_raster):
    from srl_core.raster.blocks import EmbeddingRasterReader

    with pytest.raises(InputError, match=r"\(600,000.00 m, 3,000,000.00 m\) lies outside"):
        EmbeddingRasterReader(str(embedding_raster)).pixel_of(600000.0, 3000000.0)


def test_an_empty_selection_names_the_layer(srl_provider, tmp_path):
    layer = QgsVectorLayer(MEUSE, "meuse samples", "ogr")
    QgsProject.instance().addMapLayer(layer)
    try:
        layer.removeSelection()
        selected = QgsProcessingFeatureSourceDefinition(layer.id(), True)
        with pytest.raises(QgsProcessingException, match="Layer 'meuse samples' has no selected features"):
            processing.run("srl:embed_points", {"INPUT": selected, "OUTPUT": str(tmp_path / "e.gpkg")})
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
