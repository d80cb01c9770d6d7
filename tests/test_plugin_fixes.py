"""Plugin defects found by an audit: the model id of 'Embed point locations', algorithms given no
output (as a graphical model gives an optional output nobody uses), the similarity map tool when its
raster is removed mid-run, the output named in the wrong-extension message, and QGIS-side layer state
srl_core does not see as it reads files: unsaved edits, a raster's no-data value, CRS or open options
set in QGIS, joined and virtual fields."""

from __future__ import annotations

import sys
import time

import processing
import pytest
from conftest import DATA_DIR, TINY_LOCATION_MODEL_ID
from qgis.core import (
    QgsApplication,
    QgsPointXY,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
    QgsRasterLayer,
)

from srl_core.analysis.clustering import EmbeddingKMeans
from srl_core.atomic import partial_path
from srl_core.errors import OutputError
from srl_core.raster.geotiff import require_geotiff_path

MEUSE = str(DATA_DIR / "meuse" / "meuse.shp")


class Recorder(QgsProcessingFeedback):
    """Keeps what a run logs."""

    def __init__(self) -> None:
        super().__init__()
        self.infos: list[str] = []

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.infos.append(info)
        super().pushInfo(info)


def _loaded_names(before: set[str]) -> list[str]:
    project = QgsProject.instance()
    return [project.mapLayer(i).name() for i in set(project.mapLayers()) - before]


# -- 1. Embed point locations names the model of this run --------------------------------------------
def test_embed_points_logs_and_names_the_model_of_this_run(
    srl_provider, tiny_location_model, qgis_new_project, tmp_path
):
    out = str(tmp_path / "e.gpkg")
    feedback = Recorder()
    processing.run("srl:embed_points", {"INPUT": MEUSE, "MODEL": "local", "OUTPUT": out}, feedback=feedback)
    assert "155 points embedded by 'local-rff'." in feedback.infos  # a fresh output: not 'unknown'

    feedback, before = Recorder(), set(QgsProject.instance().mapLayers())
    processing.runAndLoadResults(
        "srl:embed_points", {"INPUT": MEUSE, "MODEL": tiny_location_model, "OUTPUT": out}, feedback=feedback
    )
    assert f"155 points embedded by '{TINY_LOCATION_MODEL_ID}'." in feedback.infos  # not the old file's
    assert _loaded_names(before) == [f"Location embeddings ({TINY_LOCATION_MODEL_ID}) of meuse"]


# -- 2. No output value: refuse only when nothing at all would be produced ---------------------------
def test_rgb_view_without_output_is_a_clear_refusal(srl_provider, embedding_raster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the old failure named the working folder
    refusal = r"^Give an output for the RGB view of an embedding raster: 'RGB view \(raster input\)'\.$"
    with pytest.raises(QgsProcessingException, match=refusal):
        processing.run("srl:rgb_view", {"INPUT": str(embedding_raster)})


def test_cluster_without_any_output_is_a_clear_refusal(srl_provider, embedding_raster, tmp_path):
    refusal = ("^Give an output for the clusters of an embedding raster: 'Clusters \\(raster input\\)', or a "
               "file to save the cluster model to\\.$")
    with pytest.raises(QgsProcessingException, match=refusal):
        processing.run("srl:cluster", {"INPUT": str(embedding_raster), "K": 2})
    # the output given for the other kind of input is named as such: "Give an output" came when one was
    # given (a fuzz run of Processing)
    other = "'Clusters \\(point input\\)', given, is for embedding points"
    with pytest.raises(QgsProcessingException, match=other):
        processing.run("srl:cluster", {"INPUT": str(embedding_raster), "K": 2,
                                        "OUTPUT_POINTS": str(tmp_path / "c.gpkg")})


@pytest.mark.parametrize("kind", ["raster", "points"])
def test_cluster_that_only_saves_its_model(srl_provider, embedding_raster, embedding_points, tmp_path, kind):
    """A model step run for its cluster model alone saves the model a full run would have saved."""
    raster = kind == "raster"
    source = embedding_raster if raster else embedding_points
    key, classes = ("OUTPUT", "c.tif") if raster else ("OUTPUT_POINTS", "c.gpkg")
    alone, full = tmp_path / "alone.safetensors", tmp_path / "full.safetensors"
    result = processing.run("srl:cluster", {"INPUT": str(source), "OUTPUT_MODEL": str(alone)})
    processing.run(
        "srl:cluster", {"INPUT": str(source), key: str(tmp_path / classes), "OUTPUT_MODEL": str(full)}
    )
    saved, expected = EmbeddingKMeans.load(str(alone)), EmbeddingKMeans.load(str(full))
    assert result["OUTPUT_MODEL"] == str(alone) and key not in result
    assert result["CLUSTERS"] == saved.k == expected.k and result["SCORES"] == expected.suggestion_.summary()
    assert saved.model_id == expected.model_id
    assert abs(saved.cluster_centers_ - expected.cluster_centers_).max() < 1e-5
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("c.")) == [classes]


def test_hdbscan_model_only_is_refused_before_any_work(srl_provider, embedding_points, tmp_path):
    with pytest.raises(QgsProcessingException, match="^Only k-means models can be saved; HDBSCAN does not"):
        processing.run(
            "srl:cluster",
            {"INPUT": str(embedding_points), "METHOD": 1, "OUTPUT_MODEL": str(tmp_path / "m.safetensors")},
        )
    assert not list(tmp_path.glob("m*"))


# -- 3. The similarity map tool outlives the removal of its raster -----------------------------------
def _wait(tool, seconds: float = 30.0) -> None:
    end = time.monotonic() + seconds
    while tool.busy and time.monotonic() < end:
        QgsApplication.processEvents()
        time.sleep(0.01)
    assert not tool.busy


def test_similarity_tool_survives_its_raster_removed_mid_run(
    qgis_iface, qgis_canvas, qgis_new_project, embedding_raster, monkeypatch
):
    from srl_plugin.gui.similarity_tool import SimilarityMapTool

    hooked: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, trace: hooked.append(error))
    project = QgsProject.instance()
    layer = QgsRasterLayer(str(embedding_raster), "embeddings")
    project.addMapLayer(layer)
    qgis_canvas.setDestinationCrs(layer.crs())
    qgis_canvas.setLayers([layer])
    qgis_canvas.setExtent(layer.extent())
    tool = SimilarityMapTool(qgis_canvas, None)
    try:
        assert tool.add_example(QgsPointXY(500650, 3999150))
        project.removeMapLayer(layer.id())  # before the background run reports
        _wait(tool)
        assert hooked == [] and tool.examples == [] and tool.marked == 0
        assert list(tool._folder.iterdir()) == []  # the result nobody can see is not left behind
        assert not [lyr for lyr in project.mapLayers().values() if lyr.name().startswith("Similarity")]

        again = QgsRasterLayer(str(embedding_raster), "embeddings2")
        project.addMapLayer(again)
        qgis_canvas.setLayers([again])
        assert tool.add_example(QgsPointXY(500650, 3999150))
        _wait(tool)
        names = [lyr.name() for lyr in project.mapLayers().values()]
        assert "Similarity to 1 example(s) in embeddings2" in names and hooked == []
    finally:
        tool.clean_up()


# -- 4. The wrong-extension message names the user's output -----------------------------------------
@pytest.mark.parametrize(("name", "suffix"), [("c.png", "'.png'"), ("c_noext", "'no extension'")])
def test_geotiff_extension_message_names_the_users_file(tmp_path, name, suffix):
    with pytest.raises(OutputError) as refused:
        require_geotiff_path(str(partial_path(tmp_path / name)))
    message = str(refused.value)
    assert f"the output {name} must end in .tif or .tiff, not {suffix}." in message
    assert "partial" not in message


def test_processing_extension_message_names_the_users_file(srl_provider, embedding_raster, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"the output c\.png must end in \.tif or \.tiff"):
        processing.run(
            "srl:cluster", {"INPUT": str(embedding_raster), "K": 2, "OUTPUT": str(tmp_path / "c.png")}
        )


def _edited_points(tmp_path, embeddings: bool):
    """A point layer in QGIS with 10 of its 30 points deleted in the edit buffer, not saved."""
    import numpy as np
    from analysis_synthetic import utm31_wkt
    from qgis.core import QgsVectorLayer

    from srl_core.vector.points import write_points

    rng = np.random.default_rng(0)
    xy = np.column_stack([rng.uniform(500000, 510000, 30), rng.uniform(4000000, 4010000, 30)])
    path = str(tmp_path / "edited.gpkg")
    emb = rng.normal(size=(30, 8)).astype(np.float32) if embeddings else None
    write_points(path, xy, utm31_wkt(), {"v": rng.normal(size=30)}, embeddings=emb, model_id="synthetic-loc")
    layer = QgsVectorLayer(path, "edited", "ogr")
    QgsProject.instance().addMapLayer(layer)
    layer.startEditing()
    layer.deleteFeatures([f.id() for f in layer.getFeatures()][:10])
    assert layer.featureCount() == 20
    return layer


@pytest.mark.parametrize("alg, params, embeddings", [
    ("srl:embed_points", {"MODEL": "local", "OUTPUT": "e.gpkg"}, False),
    ("srl:interpolate", {"FIELD": "v", "OUTPUT": "p.tif", "OUTPUT_UNCERTAINTY": "u.tif"}, False),
    ("srl:rgb_view", {"OUTPUT_POINTS": "v.gpkg"}, True),
    ("srl:cluster", {"OUTPUT_POINTS": "c.gpkg"}, True),
])
def test_a_layer_with_unsaved_edits_is_refused(srl_provider, tmp_path, alg, params, embeddings):
    """srl_core reads the layer's file: 10 points deleted in QGIS but not saved were embedded, coloured
    and clustered all the same (30 points out for the 20 shown), without a word."""
    layer = _edited_points(tmp_path, embeddings)
    outputs = {k: str(tmp_path / v) if isinstance(v, str) and "." in v else v for k, v in params.items()}
    try:
        with pytest.raises(QgsProcessingException, match="'edited' has unsaved edits"):
            processing.run(alg, {"INPUT": layer, **outputs})
        assert not any((tmp_path / v).exists() for v in params.values() if isinstance(v, str) and "." in v)
    finally:
        layer.rollBack()
        QgsProject.instance().removeMapLayer(layer.id())


def test_selected_features_of_an_edited_layer_are_read_with_the_edits(srl_provider, tmp_path):
    """Processing copies the selected features, edits included: that copy is what srl_core reads."""
    from osgeo import ogr
    from qgis.core import QgsProcessingFeatureSourceDefinition

    layer = _edited_points(tmp_path, False)
    try:
        layer.selectAll()
        out = str(tmp_path / "sel.gpkg")
        processing.run("srl:embed_points", {"INPUT": QgsProcessingFeatureSourceDefinition(layer.id(), True),
                                            "MODEL": "local", "OUTPUT": out})
        ds = ogr.Open(out)
        assert ds.GetLayer(0).GetFeatureCount() == 20
        ds = None
    finally:
        layer.rollBack()
        QgsProject.instance().removeMapLayer(layer.id())


def _crop_layer(tmp_path, source: str = ""):
    import shutil

    from qgis.core import QgsRasterLayer

    path = tmp_path / "crop.tif"
    shutil.copy(DATA_DIR / "nc_landsat_crop.tif", path)
    layer = QgsRasterLayer(f"{path}{source}", "crop", "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    return layer


def _set_crs(layer) -> None:
    from qgis.core import QgsCoordinateReferenceSystem

    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32617"))


def _set_user_nodata(layer) -> None:
    from qgis.core import QgsRasterRange

    for band in range(1, layer.bandCount() + 1):
        layer.dataProvider().setUserNoDataValue(band, [QgsRasterRange(7, 7)])


def _ignore_source_nodata(layer) -> None:
    layer.dataProvider().setUseSourceNoDataValue(2, False)


@pytest.mark.parametrize("change, source, message", [
    (_set_user_nodata, "", "'crop' has a no-data value set in QGIS"),
    (_ignore_source_nodata, "", r"'crop' has its file's no-data value turned off in QGIS \(.*band 2\)"),
    (_set_crs, "", r"'crop' has a CRS set in QGIS \(EPSG:32617 - WGS 84 / UTM zone 17N\) that its file "
                   r"does not have \(un"),
    (None, "|option:NUM_THREADS=1", r"'crop' is opened with GDAL open options \(NUM_THREADS=1\)"),
])
def test_raster_layer_settings_srl_cannot_see_are_refused(srl_provider, tmp_path, change, source, message):
    """srl_core reads the file: a no-data value set in QGIS was embedded as data (tiles of it got
    embeddings, clusters a class), a CRS assigned in QGIS was dropped (the output placed by the file's,
    or points on the raster as shown 'off' it), and open options failed as 'No such file'."""
    layer = _crop_layer(tmp_path, source)
    if change is not None:
        change(layer)
    out = tmp_path / "e.tif"
    try:
        with pytest.raises(QgsProcessingException, match=message):
            processing.run("srl:embed_raster", {"INPUT": layer, "MODEL": "bandstats", "TILE_SIZE": 16,
                                                "OUTPUT": str(out)})
        assert not out.exists()
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


@pytest.mark.parametrize("kind", ["virtual", "joined"])
def test_a_joined_or_virtual_field_to_interpolate_is_named_as_such(srl_provider, tmp_path, kind):
    """Such a field is in QGIS's layer, not in its file: srl_core said the file had no such field."""
    from qgis.core import QgsField, QgsVectorLayer, QgsVectorLayerJoinInfo
    from qgis.PyQt.QtCore import QVariant

    layer = QgsVectorLayer(MEUSE, "meuse", "ogr")
    QgsProject.instance().addMapLayer(layer)
    others = []
    if kind == "virtual":
        layer.addExpressionField('"zinc" * 2', QgsField("zinc2", QVariant.Double))
    else:
        table = QgsVectorLayer(MEUSE, "meuse_copy", "ogr")
        QgsProject.instance().addMapLayer(table)
        others.append(table)
        join = QgsVectorLayerJoinInfo()
        join.setJoinLayer(table)
        join.setJoinFieldName("zinc")
        join.setTargetFieldName("zinc")
        join.setJoinFieldNamesSubset(["copper"])
        join.setPrefix("j_")
        assert layer.addJoin(join)
    field = "zinc2" if kind == "virtual" else "j_copper"
    assert layer.fields().indexOf(field) >= 0
    try:
        with pytest.raises(QgsProcessingException, match=f"'{field}' of layer 'meuse' is a {kind} field"):
            processing.run("srl:interpolate", {"INPUT": layer, "FIELD": field,
                                               "OUTPUT": str(tmp_path / "p.tif"),
                                               "OUTPUT_UNCERTAINTY": str(tmp_path / "u.tif")})
    finally:
        for other in [layer, *others]:
            QgsProject.instance().removeMapLayer(other.id())


# -- 6. Vector layers' state SRL cannot see: a CRS set in QGIS, a delimited-text layer (session 26) -------
def _embedding_points_as(embedding_points, tmp_path, driver: str, suffix: str, prj: bool):
    """The synthetic embedding points copied to a shapefile or CSV (with or without .prj), in UTM 32N."""
    from osgeo import gdal

    path = tmp_path / f"points{suffix}"
    as_xy = ["-lco", "GEOMETRY=AS_XY"] if suffix == ".csv" else []
    options = ["-t_srs", "EPSG:32632", "-f", driver, *as_xy]
    gdal.VectorTranslate(str(path), str(embedding_points), options=options)
    if not prj and suffix == ".shp":
        (tmp_path / "points.prj").unlink()
    return path


@pytest.mark.parametrize("prj", [True, False], ids=["wrong-prj", "no-prj"])
@pytest.mark.parametrize("alg, params", [
    ("srl:cluster", {"K": 2, "OUTPUT_POINTS": "out.gpkg"}),
    ("srl:similarity", {"QUERY_FIDS": "1", "OUTPUT_POINTS": "out.gpkg"}),
    ("srl:rgb_view", {"OUTPUT_POINTS": "out.gpkg"}),
])
def test_a_point_layer_crs_set_in_qgis_is_refused(srl_provider, embedding_points, tmp_path, prj, alg,
                                                  params):
    """The analyses copy the points of the layer's file: with a CRS set in QGIS over a wrong .prj they
    were placed a UTM zone away from the input without a word; over a missing one the run failed asking
    for a CRS the analyst had already given."""
    from qgis.core import QgsCoordinateReferenceSystem, QgsVectorLayer

    shapefile = _embedding_points_as(embedding_points, tmp_path, "ESRI Shapefile", ".shp", prj)
    layer = QgsVectorLayer(str(shapefile), "sites", "ogr")
    layer.setCrs(QgsCoordinateReferenceSystem("EPSG:32631"))
    QgsProject.instance().addMapLayer(layer)
    out = tmp_path / "out.gpkg"
    try:
        stored = "EPSG:32632" if prj else "none"
        message = (rf"'sites' has a CRS set in QGIS \(EPSG:32631.*\) that its file does not have "
                   rf"\({stored}.*Save")
        with pytest.raises(QgsProcessingException, match=message):
            processing.run(alg, {"INPUT": layer, **params, "OUTPUT_POINTS": str(out)})
        assert not out.exists()
    finally:
        QgsProject.instance().removeMapLayer(layer.id())


def test_a_delimited_text_layer_of_embeddings_is_refused_by_name(srl_provider, embedding_points, tmp_path):
    """A CSV of embedding points shown by QGIS from its x/y columns was read by SRL as degrees and refused
    as 'cannot be converted to lon/lat'."""
    from qgis.core import QgsVectorLayer

    csv = _embedding_points_as(embedding_points, tmp_path, "CSV", ".csv", True)
    layer = QgsVectorLayer(f"file://{csv}?type=csv&xField=X&yField=Y&crs=EPSG:32632", "csv sites",
                           "delimitedtext")
    assert layer.isValid() and layer.featureCount() == 40
    with pytest.raises(QgsProcessingException, match="'csv sites' is read by QGIS's delimitedtext provider"):
        processing.run("srl:cluster", {"INPUT": layer, "K": 2, "OUTPUT_POINTS": str(tmp_path / "out.gpkg")})


def test_a_cluster_model_is_saved_only_under_a_name_apply_takes(srl_provider, embedding_raster, tmp_path,
                                                               capsys):
    """Cluster saved its model under any name ('km', 'km.pkl'), which Apply a saved cluster model then refused
    with "Incorrect parameter value" (an audit); refused before any work, naming the setting."""
    from qgis.core import QgsProcessingException

    from srl_core.cli import main

    out = tmp_path / "out"
    out.mkdir()
    for name in ("km", "km.pkl"):
        refused = f"Save the cluster model must end in .safetensors.*'{name}'"
        with pytest.raises(QgsProcessingException, match=refused):
            processing.run("srl:cluster", {"INPUT": str(embedding_raster), "OUTPUT": str(out / "c.tif"),
                                           "OUTPUT_MODEL": str(out / name)})
        args = ["cluster", str(embedding_raster), str(out / "c.tif"), "--save-model", str(out / name)]
        assert main(args) == 2
        assert "--save-model must end in .safetensors" in capsys.readouterr().err
    assert list(out.iterdir()) == []  # nothing written
    model = out / "km.safetensors"
    processing.run("srl:cluster", {"INPUT": str(embedding_raster), "OUTPUT_MODEL": str(model)})
    applied = processing.run("srl:apply_cluster_model", {
        "CLUSTER_MODEL": str(model), "INPUT": str(embedding_raster), "OUTPUT": str(out / "a.tif")})
    assert applied["CLUSTERS"] >= 2


@pytest.mark.parametrize("alg, extra, message", [
    ("srl:cluster", {"K": float("nan")}, "'Number of clusters"),
    ("srl:similarity", {"QUERY_POINT": "", "QUERY_FIDS": "1", "TOP_K": 3e9}, "'Number of most similar"),
    ("srl:rgb_view", {"SEED": 1e12}, "'Random seed"),
])
def test_whole_numbers_a_qgis_parameter_cannot_hold_are_refused_by_name(srl_provider, embedding_points,
                                                                         tmp_path, alg, extra, message):
    """QGIS checks the value given against the minimum, then converts it: 1e12 became 0 (the default, a
    division by zero, top-k silently not written) and NaN -2147483648 (a fuzz run of Processing)."""
    params = {"INPUT": str(embedding_points), "OUTPUT_POINTS": str(tmp_path / "o.gpkg"), **extra}
    if alg == "srl:similarity":
        params["OUTPUT_TOP_K"] = str(tmp_path / "top.gpkg")
    with pytest.raises(QgsProcessingException, match=message + r"[^']*' must be a whole number"):
        processing.run(alg, params)
    assert not (tmp_path / "o.gpkg").exists() and not (tmp_path / "top.gpkg").exists()


def test_query_feature_ids_holding_none_are_refused_by_name(srl_provider, embedding_points, tmp_path):
    with pytest.raises(QgsProcessingException, match="'Query feature ids' holds no feature id"):
        processing.run("srl:similarity", {"INPUT": str(embedding_points), "QUERY_FIDS": " , ",
                                          "OUTPUT_POINTS": str(tmp_path / "s.gpkg")})


def test_the_model_cards_page_is_written_only_to_an_html_name(srl_provider, tmp_path, monkeypatch):
    """OUTPUT_HTML wrote HTML over a raster named as the output, and a failed write ended in "a bug in SRL"
    (a fuzz run of Processing); a full disk leaves no partial page."""
    import errno
    from pathlib import Path

    raster = tmp_path / "victim.tif"
    raster.write_bytes(b"II*\x00 not html")
    with pytest.raises(QgsProcessingException, match="written as HTML: name the output victim.html"):
        processing.run("srl:list_models", {"OUTPUT_HTML": str(raster)})
    assert raster.read_bytes() == b"II*\x00 not html"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched, pytest.raises(
            QgsProcessingException, match="Could not write .*full.html: No space left on device"):
        patched.setattr(Path, "write_text", full_disk)
        processing.run("srl:list_models", {"OUTPUT_HTML": str(tmp_path / "full.html")})
    page = tmp_path / "cards.html"
    processing.run("srl:list_models", {"OUTPUT_HTML": str(page)})
    assert "<h3>bandstats</h3>" in page.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cards.html", "victim.tif"]


def test_whole_number_parameters_read_as_qgis_reads_them(srl_provider):
    """The check of whole numbers keeps QGIS's reading (strings, defaults, rounding half away from zero,
    expressions evaluated once) and quotes the value an expression gave (a review)."""
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProperty

    from srl_core.errors import InputError

    alg = QgsApplication.processingRegistry().createAlgorithmById("srl:cluster")
    context = QgsProcessingContext()
    read = [alg.parameterAsInt(p, "K", context) for p in ({"K": 2.5}, {"K": -2.5}, {"K": " 7 "}, {},
                                                          {"K": QgsProperty.fromExpression("3 + 1")})]
    assert read == [3, -3, 7, 0, 4]
    with pytest.raises(InputError, match=r"'Number of clusters[^']*' must be a whole number .*, not 1e\+12"):
        alg.parameterAsInt({"K": QgsProperty.fromExpression("1e12")}, "K", context)
