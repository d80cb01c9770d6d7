"""Training algorithms through processing.run: a few steps on the real Landsat crop give a bundle
that the other algorithms list and use; cancel writes nothing."""

from __future__ import annotations

import json

import processing
import pytest
from conftest import LANDSAT_CROP
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback


def test_train_tile_encoder_installs_a_usable_bundle(srl_provider, user_models_dir, tmp_path):
    result = processing.run(
        "srl:train_tile_encoder",
        {
            "INPUT": [str(LANDSAT_CROP)],
            "MODEL_ID": "crop-t2v",
            "TILE_SIZE": 16,
            "Z_DIM": 8,
            "STEPS": 3,
            "BATCH_SIZE": 4,
            "DEVICE": "cpu",
        },
    )
    folder = user_models_dir / "crop-t2v"
    assert result["OUTPUT"] == str(folder) and result["OUTPUT_ID"] == "crop-t2v"
    card = json.loads((folder / "card.json").read_text())
    assert card["kind"] == "tile" and card["training"]["steps_done"] == 3
    listed = processing.run("srl:list_models", {})
    assert "crop-t2v" in listed["CARDS"]
    out = tmp_path / "emb.tif"
    processing.run("srl:embed_raster", {"INPUT": str(LANDSAT_CROP), "MODEL": "crop-t2v", "OUTPUT": str(out)})
    assert gdal.Open(str(out)).RasterCount == 8


def test_cancel_during_training_writes_no_bundle(srl_provider, user_models_dir):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel() if value > 0 else None)
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(
            "srl:train_tile_encoder",
            {
                "INPUT": [str(LANDSAT_CROP)],
                "MODEL_ID": "cancelled",
                "TILE_SIZE": 16,
                "Z_DIM": 8,
                "STEPS": 50,
                "BATCH_SIZE": 4,
                "DEVICE": "cpu",
            },
            feedback=feedback,
        )
    assert not list(user_models_dir.iterdir())
