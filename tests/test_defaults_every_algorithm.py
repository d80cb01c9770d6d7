"""Right by default: every algorithm, run with the defaults its Processing dialog shows on the bundled
sample data (the right input layers chosen), gives a useful result or refuses before any work with
one message naming the parameter to change.

The parameters come from the real dialog (``AlgorithmDialog.createProcessingParameters``), so a
default the dialog shows is what runs. The only overrides are the input layers, as a user picks
them, and, for training, the number of steps (a test cannot train for minutes; the defaults train
the same way, longer).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import processing
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException, QgsProject, QgsRasterLayer, QgsVectorLayer

from srl_core.embedding_format import embedding_fields_in
from srl_core.embedding_quality import raster_sample, spread
from srl_core.vector.points import read_points

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RASTER = ROOT / "resources" / "sample_data" / "nc_landsat7_2000.tif"
MEUSE = ROOT / "resources" / "sample_data" / "meuse.gpkg"


@pytest.fixture
def project(qgis_iface, srl_provider, tmp_path, user_models_dir, monkeypatch):
    """The sample raster, the Meuse points and an embedding raster made with embed_raster's defaults."""
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: None, raising=False)  # not in the stub iface
    embeddings = tmp_path / "embeddings.tif"
    processing.run("srl:embed_raster", {"INPUT": str(SAMPLE_RASTER), "OUTPUT": str(embeddings)})
    layers = {
        "raster": QgsRasterLayer(str(SAMPLE_RASTER), "nc_landsat7_2000"),
        "points": QgsVectorLayer(str(MEUSE), "meuse", "ogr"),
        "embeddings": QgsRasterLayer(str(embeddings), "embeddings"),
    }
    assert all(layer.isValid() for layer in layers.values())
    QgsProject.instance().addMapLayers(list(layers.values()))
    yield layers
    QgsProject.instance().removeAllMapLayers()


def dialog_parameters(alg_id: str, chosen: dict) -> dict:
    """What the algorithm's dialog would run with: its defaults, plus the layers the user chose."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    dialog = AlgorithmDialog(alg, parent=None)
    try:
        dialog.mainWidget().setParameters(chosen)
        return dialog.mainWidget().createProcessingParameters()
    finally:
        dialog.close()
        dialog.deleteLater()


def run_with_defaults(alg_id: str, chosen: dict) -> dict:
    return processing.run(alg_id, dialog_parameters(alg_id, chosen))


def refusal(alg_id: str, chosen: dict) -> str:
    """The one message with which the dialog or the algorithm refuses these defaults."""
    from processing.gui.AlgorithmDialogBase import AlgorithmDialogBase

    try:
        run_with_defaults(alg_id, chosen)
    except AlgorithmDialogBase.InvalidParameterValue as exc:  # the dialog's own check, before any work
        return f"Wrong or missing parameter value: {exc.parameter.description()}"
    except QgsProcessingException as exc:
        return str(exc)
    pytest.fail(f"{alg_id} ran with its defaults where a refusal was expected")


def test_embed_raster(project):
    out = run_with_defaults("srl:embed_raster", {"INPUT": project["raster"].id()})["OUTPUT"]
    assert spread(raster_sample(out)).median_cosine < 0.9
    assert gdal.Open(out).GetMetadataItem("SRL_BANDS") == "1,2,3"


def test_embed_points(project):
    out = run_with_defaults("srl:embed_points", {"INPUT": project["points"].id()})["OUTPUT"]
    table = read_points(out)
    emb = np.column_stack([table.attributes[f] for f in embedding_fields_in(list(table.attributes))])
    assert len(emb) == 155 and spread(emb).median_cosine < 0.9


def test_sample_tiles_at_points_refuses_points_off_the_raster(project):
    message = refusal("srl:sample_tiles_at_points",
                      {"INPUT": project["raster"].id(), "POINTS": project["points"].id()})
    assert "meuse" in message and "Points" in message and "nc_landsat7_2000" in message


def test_sample_tiles_at_points(project, tmp_path):
    """Points over the raster, everything else as the dialog shows it (model "auto"). It once failed
    after the work was done, naming the loaded layer after the model object "auto" was not."""
    from srl_core.vector.points import write_points

    ds = gdal.Open(str(SAMPLE_RASTER))
    x0, dx, _, y0, _, dy = ds.GetGeoTransform()
    cols, rows = np.meshgrid(np.linspace(60, ds.RasterXSize - 60, 4), np.linspace(60, ds.RasterYSize - 60, 3))
    xy = np.column_stack([x0 + cols.ravel() * dx, y0 + rows.ravel() * dy])
    path = write_points(tmp_path / "sites.gpkg", xy, ds.GetProjection(), {"site": list(range(len(xy)))})
    sites = QgsVectorLayer(str(path), "sites", "ogr")
    QgsProject.instance().addMapLayer(sites)
    result = run_with_defaults("srl:sample_tiles_at_points", {"INPUT": project["raster"].id(),
                                                             "POINTS": sites.id()})
    table = read_points(result["OUTPUT"])
    emb = np.column_stack([table.attributes[f] for f in embedding_fields_in(list(table.attributes))])
    assert result["VALID"] == 12 and spread(emb).median_cosine < 0.9


def test_cluster(project):
    out = run_with_defaults("srl:cluster", {"INPUT": project["embeddings"].id()})["OUTPUT"]
    classes = gdal.Open(out).ReadAsArray()
    assert len(np.unique(classes[classes > 0])) >= 2


def test_apply_cluster_model_asks_for_the_model_file(project):
    assert "Cluster model" in refusal("srl:apply_cluster_model", {"INPUT": project["embeddings"].id()})


def test_similarity_asks_for_a_query(project):
    message = refusal("srl:similarity", {"INPUT": project["embeddings"].id()})
    assert "'Query coordinate'" in message and "'Query features'" in message


def test_interpolate(project):
    result = run_with_defaults("srl:interpolate", {"INPUT": project["points"].id()})
    values = gdal.Open(result["OUTPUT"]).ReadAsArray()
    cadmium = read_points(str(MEUSE)).attributes["cadmium"]
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 2 * cadmium.max()
    assert "Field: cadmium" in result["REPORT"] and "Resolution: 50" in result["REPORT"]


def test_rgb_view(project):
    out = run_with_defaults("srl:rgb_view", {"INPUT": project["embeddings"].id()})["OUTPUT"]
    rgb = gdal.Open(out).ReadAsArray().astype(float)
    assert rgb.shape[0] in (3, 4) and rgb[:3].std() > 0


def test_list_models(project):
    result = run_with_defaults("srl:list_models", {})
    assert result["COUNT"] >= 2 and "tile2vec-l8-rgb-compact" in result["CARDS"]


def test_import_checkpoint_asks_for_the_checkpoint(project):
    assert "Checkpoint" in refusal("srl:import_checkpoint", {})


def test_train_tile_encoder(project, user_models_dir):
    from srl_plugin.algorithms import training_available

    if not training_available():
        pytest.skip("the training package is not shipped here")
    run_with_defaults("srl:train_tile_encoder", {"INPUT": [project["raster"].id()], "STEPS": 5})
    card = json.loads((user_models_dir / "my-tile2vec" / "card.json").read_text())
    assert card["kind"] == "tile" and len(card["inputs"]["bands"]) == 6
    # the measured recipe: 16 learned values + band statistics over the tile, its centred half and quarter
    assert card["embedding_size"] == 16 + 2 * 6 * 3


def test_train_location_encoder(project, user_models_dir):
    from srl_plugin.algorithms import training_available

    if not training_available():
        pytest.skip("the training package is not shipped here")
    try:
        run_with_defaults("srl:train_location_encoder", {"STEPS": 5})
    except QgsProcessingException as exc:  # its imagery comes from an optional package
        assert "pip install" in str(exc)
        return
    assert (user_models_dir / "my-location-encoder" / "card.json").is_file()


def test_every_algorithm_is_covered(srl_provider):
    tested = {name[len("test_"):].split("_refuses")[0].split("_asks")[0] for name in globals()
              if name.startswith("test_")}
    ids = {alg.name() for alg in srl_provider.algorithms()}
    assert ids <= tested, ids - tested
