"""Use inside QGIS's Processing machinery: a graphical model chaining embed -> cluster built in
code, batch-style runs, and cancelling (Processing feedback and QgsTask) leaving no output."""

from __future__ import annotations

import time

import numpy as np
import processing
import pytest
from conftest import LANDSAT_CROP
from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterLayer,
)

from srl_plugin import tasks


def _embed_and_cluster_model(model_id: str) -> QgsProcessingModelAlgorithm:
    model = QgsProcessingModelAlgorithm("embed_and_cluster", "SRL tests")
    model.addModelParameter(
        QgsProcessingParameterRasterLayer("raster", "Raster"), QgsProcessingModelParameter("raster")
    )
    embed = QgsProcessingModelChildAlgorithm("srl:embed_raster")
    embed.setChildId("embed")
    embed.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("raster")])
    embed.addParameterSources("MODEL", [QgsProcessingModelChildParameterSource.fromStaticValue(model_id)])
    embed.addParameterSources("DEVICE", [QgsProcessingModelChildParameterSource.fromStaticValue("cpu")])
    cluster = QgsProcessingModelChildAlgorithm("srl:cluster")
    cluster.setChildId("cluster")
    cluster.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("embed", "OUTPUT")]
    )
    cluster.addParameterSources("K", [QgsProcessingModelChildParameterSource.fromStaticValue(3)])
    output = QgsProcessingModelOutput("clusters")
    output.setChildId("cluster")
    output.setChildOutputName("OUTPUT")
    cluster.setModelOutputs({"clusters": output})
    model.addChildAlgorithm(embed)
    model.addChildAlgorithm(cluster)
    return model


def test_graphical_model_embed_then_cluster(srl_provider, tiny_tile_model, tmp_path):
    model = _embed_and_cluster_model(tiny_tile_model)
    assert model.dependentChildAlgorithms("embed") == {"cluster"}
    out = tmp_path / "model_clusters.tif"
    result = processing.run(model, {"raster": str(LANDSAT_CROP), "cluster:clusters": str(out)})
    assert result["cluster:clusters"] == str(out)
    classes = gdal.Open(str(out)).ReadAsArray()
    assert classes.shape == (8, 8)
    assert (classes[:, 0] == 0).all()  # the nodata border column stays unclassified
    assert set(np.unique(classes[:, 1:])) == {1, 2, 3}
    # The model survives a save/load round trip (as a .model3 file would).
    path = tmp_path / "embed_cluster.model3"
    assert model.toFile(str(path))
    again = QgsProcessingModelAlgorithm()
    assert again.fromFile(str(path)) and set(again.childAlgorithms()) == {"embed", "cluster"}


def test_a_model_step_cannot_write_over_the_raster_an_earlier_step_read(srl_provider, tiny_tile_model,
                                                                        tmp_path):
    """Each step refuses to write over its own inputs; the model's last step, given the model's input
    raster as its output, replaced the analyst's 6-band scene with a cluster map, without a word."""
    import hashlib
    import shutil

    raster = tmp_path / "my_scene.tif"
    shutil.copy(LANDSAT_CROP, raster)
    before = hashlib.sha256(raster.read_bytes()).hexdigest()
    model = _embed_and_cluster_model(tiny_tile_model)
    feedback = QgsProcessingFeedback()
    with pytest.raises(QgsProcessingException):
        processing.run(model, {"raster": str(raster), "cluster:clusters": str(raster)}, feedback=feedback)
    assert hashlib.sha256(raster.read_bytes()).hexdigest() == before
    assert f"The output {raster} is the file of layer" in feedback.textLog()


def test_batch_rows_with_plain_values(srl_provider, tiny_tile_model, tmp_path):
    """The batch dialog runs one row after another with plain (string/number) values."""
    rows = [
        {
            "INPUT": str(LANDSAT_CROP),
            "MODEL": tiny_tile_model,
            "TILE_SIZE": 16,
            "STRIDE": 16,
            "OUTPUT": str(tmp_path / "b16.tif"),
        },
        {
            "INPUT": str(LANDSAT_CROP),
            "MODEL": tiny_tile_model,
            "TILE_SIZE": 32,
            "STRIDE": 32,
            "OUTPUT": str(tmp_path / "b32.tif"),
        },
    ]
    alg = QgsApplication.processingRegistry().createAlgorithmById("srl:embed_raster")  # as dialogs do
    context = QgsProcessingContext()
    for row in rows:
        ok, message = alg.checkParameterValues(row, context)
        assert ok, message
        assert "srl:embed_raster" in alg.asPythonCommand(row, context)
        processing.run("srl:embed_raster", row)
    assert gdal.Open(str(tmp_path / "b16.tif")).RasterXSize == 8
    assert gdal.Open(str(tmp_path / "b32.tif")).RasterXSize == 4


def test_cancel_during_processing_run_leaves_no_output(srl_provider, tiny_tile_model, tmp_path):
    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda value: feedback.cancel())
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "cancelled.tif"
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(
            "srl:embed_raster",
            {"INPUT": str(LANDSAT_CROP), "MODEL": tiny_tile_model, "STRIDE": 4, "OUTPUT": str(out)},
            feedback=feedback,
        )
    assert not list(folder.iterdir())


def test_cancel_a_background_task_leaves_no_output(qgis_app, tiny_tile_model, tmp_path):
    from srl_core.tiles import embed_raster

    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "task.tif"
    outcome = {}
    task = tasks.SrlTask(
        "embed",
        lambda progress: embed_raster(
            LANDSAT_CROP, out, tiny_tile_model, stride=2, device="cpu", progress=progress
        ),
        lambda result, error: outcome.update(result=result, error=error),
    )
    task.progressChanged.connect(lambda value: task.cancel())
    tasks.start(task)
    end = time.monotonic() + 60
    while "error" not in outcome and time.monotonic() < end:
        QgsApplication.processEvents()
        time.sleep(0.01)
    assert outcome == {"result": None, "error": "Cancelled."}
    assert not list(folder.iterdir())


def test_batch_processing_dialog_runs_rows(srl_provider, embedding_raster, qgis_iface, monkeypatch, tmp_path):
    """QGIS's own batch dialog: two rows of 'Cluster embeddings' with different k."""
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from processing.tools import dataobjects

    monkeypatch.setattr(qgis_iface, "browserModel", lambda: None, raising=False)
    alg = QgsApplication.processingRegistry().createAlgorithmById("srl:cluster")
    dialog = BatchAlgorithmDialog(alg)
    panel = dialog.mainWidget()
    panel.checkLoadLayersOnCompletion.setChecked(False)
    while panel.batchRowCount() < 2:
        panel.addRow()
    context = dataobjects.createContext()
    outputs = [tmp_path / "k2.tif", tmp_path / "k3.tif"]
    for row, (k, out) in enumerate(zip((2, 3), outputs)):
        panel.wrappers[row][panel.parameter_to_column["INPUT"]].setParameterValue(
            str(embedding_raster), context
        )
        panel.wrappers[row][panel.parameter_to_column["K"]].setParameterValue(k, context)
        panel.tblParameters.cellWidget(row + 1, panel.parameter_to_column["OUTPUT"]).setValue(str(out))
        panel.tblParameters.cellWidget(row + 1, panel.parameter_to_column["OUTPUT_POINTS"]).setValue("")
    for row in range(panel.batchRowCount() - 1, 1, -1):
        panel.tblParameters.removeRow(row + 1)
        del panel.wrappers[row]
    dialog.runAlgorithm()
    assert [int(gdal.Open(str(o)).ReadAsArray().max()) for o in outputs] == [2, 3]
    dialog.close()


def test_a_models_output_keeps_the_name_the_analyst_gave(srl_provider, tiny_tile_model, tmp_path,
                                                         qgis_new_project):
    """Our layer names replaced a graphical model's output name with one naming the model's
    intermediate file: 'Clusters (k=3) of OUTPUT'. A direct run still gets the descriptive name."""
    from qgis.core import QgsProject

    model = _embed_and_cluster_model(tiny_tile_model)
    processing.runAndLoadResults(model, {"raster": str(LANDSAT_CROP), "cluster:clusters": "TEMPORARY_OUTPUT"})
    names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    assert names == ["clusters"]
    embedded = processing.run("srl:embed_raster", {"INPUT": str(LANDSAT_CROP), "MODEL": tiny_tile_model,
                                                   "DEVICE": "cpu", "OUTPUT": str(tmp_path / "crop.tif")})
    processing.runAndLoadResults("srl:cluster", {"INPUT": embedded["OUTPUT"], "K": 3,
                                                 "OUTPUT": "TEMPORARY_OUTPUT"})
    names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
    assert "Clusters (k=3) of crop" in names
