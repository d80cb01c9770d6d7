"""Training algorithms through processing.run: a few steps on the real Landsat crop give a bundle
that the other algorithms list and use; cancel writes nothing."""

from __future__ import annotations

import json

import processing
import pytest
from conftest import LANDSAT_CROP, half_polygon
from osgeo import gdal
from qgis.core import QgsProcessingException, QgsProcessingFeedback


@pytest.mark.parametrize("spectral_stats,centre,radiometric,objective,pixels,bands",
                         [(False, True, 0.0, 0, 0, 8), (True, False, 0.2, 0, 0, 8 + 2 * 5),
                          (True, True, 0.0, 1, 0, 8 + 2 * 5 * 3), (True, False, 0.0, 0, 6, 8 + 6 + 2 * 5),
                          (True, False, 0.0, 2, 6, 8 + 6 + 2 * 5)])
def test_train_tile_encoder_installs_a_usable_bundle(srl_provider, user_models_dir, tmp_path, spectral_stats,
                                                     centre, radiometric, objective, pixels, bands):
    result = processing.run(
        "srl:train_tile_encoder",
        {
            "INPUT": [str(LANDSAT_CROP)],
            "MODEL_ID": "crop-t2v",
            "TILE_SIZE": 16,
            "Z_DIM": 8,
            "STEPS": 3,
            "BATCH_SIZE": 4,
            "SPECTRAL_STATS": spectral_stats,
            "SPECTRAL_CENTRE": centre,
            "RADIOMETRIC": radiometric,
            "OBJECTIVE": objective,
            "PIXEL_FEATURES": pixels,
            "DEVICE": "cpu",
        },
    )
    folder = user_models_dir / "crop-t2v"
    assert result["OUTPUT"] == str(folder) and result["OUTPUT_ID"] == "crop-t2v"
    card = json.loads((folder / "card.json").read_text())
    assert card["kind"] == "tile" and card["training"]["steps_done"] == 3
    assert card["training"]["config"]["radiometric"] == radiometric
    assert card["training"]["config"]["objective"] == ("triplet", "infonce", "vicreg")[objective]
    assert card["training"]["config"]["expander"] == (256 if objective == 2 else 0)  # VICReg's own default
    assert card["config"].get("pixel_features", 0) == pixels
    command = card["training"]["command"]  # the call with its values, and when it started
    assert command.startswith("processing.run(\"srl:train_tile_encoder\"") and "'Z_DIM':8" in command
    assert card["training"]["started_utc"]
    listed = processing.run("srl:list_models", {})
    assert "crop-t2v" in listed["CARDS"]
    out = tmp_path / "emb.tif"
    processing.run("srl:embed_raster", {"INPUT": str(LANDSAT_CROP), "MODEL": "crop-t2v", "OUTPUT": str(out)})
    assert gdal.Open(str(out)).RasterCount == bands == card["embedding_size"]


def test_a_model_reading_the_trained_folder_keeps_the_bundle_in_the_user_model_folder(
        srl_provider, user_models_dir, tmp_path):
    """train:OUTPUT connected to the next step's model folder, not itself a model output: QGIS gives it a
    folder in Processing's temporary folder, and the bundle (hours of training) was written there and
    deleted when QGIS closed, never listed. It goes to the user model folder, which the next step reads."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.core import QgsProcessingModelChildParameterSource as Source

    model = QgsProcessingModelAlgorithm("train_then_embed", "SRL tests")
    raster = QgsProcessingParameterRasterLayer("r", "Raster")
    model.addModelParameter(raster, QgsProcessingModelParameter("r"))
    train = QgsProcessingModelChildAlgorithm("srl:train_tile_encoder")
    train.setChildId("train")
    for name, value in {"MODEL_ID": "in-a-model", "STEPS": 2, "BATCH_SIZE": 4, "TILE_SIZE": 16, "Z_DIM": 8,
                        "DEVICE": "cpu"}.items():
        train.addParameterSources(name, [Source.fromStaticValue(value)])
    train.addParameterSources("INPUT", [Source.fromModelParameter("r")])
    embed = QgsProcessingModelChildAlgorithm("srl:embed_raster")
    embed.setChildId("embed")
    embed.addParameterSources("INPUT", [Source.fromModelParameter("r")])
    embed.addParameterSources("MODEL_FOLDER", [Source.fromChildOutput("train", "OUTPUT")])
    output = QgsProcessingModelOutput("emb")
    output.setChildId("embed")
    output.setChildOutputName("OUTPUT")
    embed.setModelOutputs({"emb": output})
    model.addChildAlgorithm(train)
    model.addChildAlgorithm(embed)
    result = processing.run(model, {"r": str(LANDSAT_CROP), "embed:emb": str(tmp_path / "emb.tif")})
    folder = user_models_dir / "in-a-model"
    assert (folder / "card.json").exists()
    assert result["CHILD_RESULTS"]["train"]["OUTPUT"] == str(folder)
    card = json.loads((folder / "card.json").read_text())
    assert gdal.Open(str(tmp_path / "emb.tif")).RasterCount == card["embedding_size"]


def test_train_inside_a_polygon_mask_installs_a_bundle_that_names_it(srl_provider, user_models_dir, tmp_path):
    """The MASK parameter as a polygon layer: the run used to fail after training, writing the card."""
    land = half_polygon(LANDSAT_CROP, tmp_path / "land.gpkg")
    processing.run("srl:train_tile_encoder", {
        "INPUT": [str(LANDSAT_CROP)], "MASK": str(land), "MODEL_ID": "masked", "TILE_SIZE": 16, "Z_DIM": 8,
        "STEPS": 2, "BATCH_SIZE": 4, "DEVICE": "cpu"})
    card = json.loads((user_models_dir / "masked" / "card.json").read_text())
    assert card["training"]["valid_area_mask"] == str(land)


@pytest.mark.parametrize("normalisation,per_raster", [(0, True), (1, False)])
def test_rasters_of_two_scalings_train_each_by_its_own_statistics_by_default(
        srl_provider, user_models_dir, tmp_path, normalisation, per_raster):
    """The crop beside an 8-bit-like rescaled copy: the dialog's default standardises each by its own
    statistics and the card says so; 'pooled' (the second choice) is kept when asked for."""
    from test_training_normalisation import rescaled_crop

    scaled = rescaled_crop(tmp_path / "scaled.tif", 0.05, 3.0)
    processing.run("srl:train_tile_encoder", {
        "INPUT": [str(LANDSAT_CROP), scaled], "MODEL_ID": "two-scalings", "TILE_SIZE": 16, "Z_DIM": 8,
        "STEPS": 2, "BATCH_SIZE": 4, "NORMALISATION": normalisation, "DEVICE": "cpu"})
    card = json.loads((user_models_dir / "two-scalings" / "card.json").read_text())
    assert card["training"]["config"]["normalisation"] == ("auto", "pooled")[normalisation]
    assert card["inputs"]["normalisation"].get("per_raster", False) is per_raster


@pytest.mark.parametrize("nodata", [None, -99999.0])
def test_a_nodata_value_given_to_training_is_used_and_kept_on_the_card(srl_provider, user_models_dir,
                                                                       tmp_path, nodata):
    """The crop with its no-data value removed from the file: its fill (-99999) is data unless the
    NODATA parameter names it, as the command line's --nodata did (Processing had no way to)."""
    undeclared = tmp_path / "undeclared.tif"
    gdal.Translate(str(undeclared), str(LANDSAT_CROP), noData="none")
    params = {"INPUT": [str(undeclared)], "MODEL_ID": "fill", "TILE_SIZE": 16, "Z_DIM": 8, "STEPS": 2,
              "BATCH_SIZE": 4, "DEVICE": "cpu"}
    if nodata is not None:
        params["NODATA"] = nodata
    processing.run("srl:train_tile_encoder", params)
    card = json.loads((user_models_dir / "fill" / "card.json").read_text())
    assert card["inputs"].get("nodata") == nodata
    means = card["inputs"]["normalisation"]["mean"]
    assert (min(means) < -1000) is (nodata is None)  # the fill pulls the statistics down when taken as data


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


@pytest.mark.parametrize("basis,size", [(0, 8), (3, 8 + 3 * 3)])
def test_train_location_encoder_on_small_global_imagery(srl_provider, user_models_dir, monkeypatch, tmp_path,
                                                        basis, size):
    """A few steps on a synthetic 32 x 64 'globe' (the real one is a download) give a bundle
    that 'Embed point locations' uses; with APPEND_BASIS the untrained basis follows the embedding."""
    import numpy as np

    from training.location import trainer
    from training.location.imagery import GlobalImage
    from training.location.sampling import LandMask

    lat = np.linspace(90, -90, 32)[:, None, None]
    lon = np.linspace(-180, 180, 64)[None, :, None]
    pixels = (
        127
        + 120
        * np.concatenate(
            [
                np.cos(np.radians(lat)) + 0 * lon,
                np.sin(np.radians(lon)) + 0 * lat,
                np.sin(np.radians(2 * lat)) * np.cos(np.radians(lon)),
            ],
            axis=2,
        )
        / 2
    )
    image = GlobalImage(pixels.astype(np.uint8), ("bluemarble",))
    monkeypatch.setattr(trainer, "load_global_image", lambda sources, height: image)
    monkeypatch.setattr(
        trainer.LandMask,
        "from_package",
        classmethod(lambda cls: LandMask(np.tile(np.arange(64) < 40, (32, 1)))),
    )
    result = processing.run(
        "srl:train_location_encoder",
        {
            "MODEL_ID": "tiny-globe",
            "SOURCES": [0],
            "LEGENDRE_POLYS": 3,
            "EMBEDDING_SIZE": 8,
            "HIDDEN": 16,
            "STEPS": 3,
            "BATCH_SIZE": 16,
            "APPEND_BASIS": basis,
            "DEVICE": "cpu",
        },
    )
    card = json.loads((user_models_dir / "tiny-globe" / "card.json").read_text())
    assert result["OUTPUT_ID"] == "tiny-globe" and card["kind"] == "location"
    assert card["embedding_size"] == size
    appended = {"name": "sphericalharmonics", "legendre_polys": 3} if basis else None
    assert card["config"].get("append") == appended
    assert card["config"]["network"]["w0_initial"] == 1.0  # the command line's recipe (was the network's 30)
    from srl_core.vector.points import write_points

    pts = tmp_path / "p.gpkg"
    write_points(str(pts), np.array([[0.0, 0.0], [10.0, 45.0]]), "EPSG:4326", {"n": np.array([1, 2])})
    out = processing.run(
        "srl:embed_points", {"INPUT": str(pts), "MODEL": "tiny-globe", "OUTPUT": str(tmp_path / "e.gpkg")}
    )
    from osgeo import ogr

    ds = ogr.Open(out["OUTPUT"])  # held: its layer is only valid while the dataset lives
    defn = ds.GetLayer(0).GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    assert sum(n.startswith("emb_") and n[4:].isdigit() for n in names) == size


def test_training_never_writes_into_the_bundled_models_folder(srl_provider, user_models_dir, tmp_path,
                                                              monkeypatch):
    """OUTPUT inside SRL's own models folder with Overwrite replaced the shipped 'bandstats' with a Tile2Vec
    model (found by an audit, on the real checkout). Refused before training, here on a copy of the folder;
    only `make models` (--rebuild-bundled) writes there."""
    import shutil

    import srl_core.bundle as bundle
    import srl_core.model_ids as model_ids

    shipped = tmp_path / "models"
    shutil.copytree(bundle.BUNDLED_MODELS_DIR / "bandstats", shipped / "bandstats")
    for module in (bundle, model_ids):
        monkeypatch.setattr(module, "BUNDLED_MODELS_DIR", shipped)
    before = (shipped / "bandstats" / "card.json").read_bytes()
    for model_id, folder in (("bandstats", shipped / "bandstats"), ("mine", shipped / "mine")):
        with pytest.raises(QgsProcessingException, match="folder of the models shipped with SRL"):
            processing.run("srl:train_tile_encoder", {
                "INPUT": [str(LANDSAT_CROP)], "MODEL_ID": model_id, "OUTPUT": str(folder), "OVERWRITE": True,
                "TILE_SIZE": 16, "Z_DIM": 8, "STEPS": 2, "BATCH_SIZE": 4, "DEVICE": "cpu"})
    assert (shipped / "bandstats" / "card.json").read_bytes() == before and not (shipped / "mine").exists()


def test_a_mask_of_selected_features_only_is_refused_not_dropped(srl_provider, user_models_dir, tmp_path):
    """Given as "selected features only" (a script's or a model's selection), the mask was dropped: the
    model trained on the whole raster, its card saying no mask (found by an audit)."""
    from qgis.core import QgsProcessingFeatureSourceDefinition, QgsProject, QgsVectorLayer

    land = half_polygon(LANDSAT_CROP, tmp_path / "land.gpkg")
    half_polygon(LANDSAT_CROP, land, side="left")
    layer = QgsVectorLayer(f"{land}|layername=land", "land", "ogr")
    QgsProject.instance().addMapLayer(layer)
    try:
        layer.selectByExpression("\"side\" = 'left'")
        selected = QgsProcessingFeatureSourceDefinition(layer.id(), True)
        with pytest.raises(QgsProcessingException, match="is given as selected features only"):
            processing.run("srl:train_tile_encoder", {
                "INPUT": [str(LANDSAT_CROP)], "MASK": selected, "MODEL_ID": "sel", "TILE_SIZE": 16,
                "Z_DIM": 8, "STEPS": 2, "BATCH_SIZE": 4, "DEVICE": "cpu"})
        assert not (user_models_dir / "sel").exists()
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
