"""The training-free tile encoders are offered and run wherever a tile model is chosen in Processing."""

from __future__ import annotations

import json

import numpy as np
import processing
from conftest import LANDSAT_CROP
from osgeo import gdal

from srl_plugin.algorithms.params import installed_model_ids


def test_training_free_models_are_listed_and_embed_a_five_band_raster(srl_provider, tmp_path):
    assert {"bandstats-multiscale", "mosaiks-rcf"} <= set(installed_model_ids("tile"))
    out = tmp_path / "mosaiks.tif"
    result = processing.run(
        "srl:embed_raster",
        {"INPUT": str(LANDSAT_CROP), "MODEL": "mosaiks-rcf", "TILE_SIZE": 16, "DEVICE": "cpu",
         "OUTPUT": str(out)},
    )
    ds = gdal.Open(str(out))
    assert ds.RasterCount == 256 and ds.GetMetadataItem("SRL_MODEL_ID") == "mosaiks-rcf"
    assert json.loads(ds.GetMetadataItem("SRL_MODEL_SETTINGS"))["seed"] == 0
    assert result["TILES"] == 56 and np.isfinite(ds.ReadAsArray()[:, :, 1:]).all()


def test_the_tile_model_dialogs_default_to_auto(srl_provider):
    from qgis.core import QgsApplication

    from srl_core.training_free import AUTO_MODEL
    from srl_plugin.algorithms.params import AUTO_TILE_MODEL

    assert AUTO_TILE_MODEL == AUTO_MODEL
    for alg_id in ("srl:embed_raster", "srl:sample_tiles_at_points"):
        model = QgsApplication.processingRegistry().algorithmById(alg_id).parameterDefinition("MODEL")
        assert model.options()[0] == "auto" and model.defaultValue() == "auto"
