"""Cluster, apply a cluster model and similarity search through processing.run on embeddings
with a known answer (two halves / two groups), including the styled, named outputs."""

from __future__ import annotations

import numpy as np
import processing
import pytest
from osgeo import gdal, ogr
from qgis.core import (
    QgsPalettedRasterRenderer,
    QgsProcessingException,
    QgsProject,
    QgsSingleBandPseudoColorRenderer,
)


def _read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def _field(path, name) -> dict[int, float]:
    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    return {f.GetFID(): f.GetField(name) for f in layer}


def test_cluster_raster_recovers_the_two_halves(srl_provider, embedding_raster, tmp_path):
    out = tmp_path / "clusters.tif"
    model = tmp_path / "clusters.safetensors"
    result = processing.run(
        "srl:cluster",
        {"INPUT": str(embedding_raster), "K": 2, "OUTPUT": str(out), "OUTPUT_MODEL": str(model)},
    )
    assert result["CLUSTERS"] == 2 and result["OUTPUT"] == str(out) and model.exists()
    classes = _read(out)
    assert classes.shape == (16, 24)
    assert classes[0, 0] == 0  # nodata pixel stays nodata
    left, right = classes[1:, :12], classes[:, 12:]
    assert len(np.unique(left)) == 1 and len(np.unique(right)) == 1 and left[0, 0] != right[0, 0]
    assert set(np.unique(classes)) == {0, 1, 2}


def test_cluster_suggests_k_and_logs_scores(srl_provider, embedding_raster, tmp_path):
    result = processing.run(
        "srl:cluster", {"INPUT": str(embedding_raster), "K": 0, "OUTPUT": str(tmp_path / "c.tif")}
    )
    assert result["CLUSTERS"] == 2
    assert "Suggested k = 2" in result["SCORES"]


def test_apply_saved_cluster_model_to_points_and_raster(
    srl_provider, embedding_raster, embedding_points, tmp_path
):
    model = tmp_path / "m.safetensors"
    processing.run(
        "srl:cluster",
        {
            "INPUT": str(embedding_points),
            "K": 2,
            "OUTPUT_POINTS": str(tmp_path / "p.gpkg"),
            "OUTPUT_MODEL": str(model),
        },
    )
    out = tmp_path / "applied.gpkg"
    result = processing.run(
        "srl:apply_cluster_model",
        {"INPUT": str(embedding_points), "CLUSTER_MODEL": str(model), "OUTPUT_POINTS": str(out)},
    )
    assert result["CLUSTERS"] == 2
    labels = _field(out, "cluster")
    a = {labels[i] for i in range(1, 21)}
    b = {labels[i] for i in range(21, 41)}
    assert len(a) == 1 and len(b) == 1 and a != b
    # Same embedding model, so the saved clusters apply to the raster too.
    raster_out = tmp_path / "applied.tif"
    processing.run(
        "srl:apply_cluster_model",
        {"INPUT": str(embedding_raster), "CLUSTER_MODEL": str(model), "OUTPUT": str(raster_out)},
    )
    classes = _read(raster_out)
    assert classes[5, 3] == a.pop() and classes[5, 20] == b.pop()


def test_cluster_points_hdbscan(srl_provider, embedding_points, tmp_path):
    out = tmp_path / "h.gpkg"
    processing.run(
        "srl:cluster",
        {"INPUT": str(embedding_points), "METHOD": 1, "MIN_CLUSTER_SIZE": 5, "OUTPUT_POINTS": str(out)},
    )
    labels = _field(out, "cluster")
    assert {labels[i] for i in range(1, 21)} != {labels[i] for i in range(21, 41)}


def test_similarity_raster_from_query_coordinate(srl_provider, embedding_raster, tmp_path):
    out = tmp_path / "sim.tif"
    top = tmp_path / "top.gpkg"
    result = processing.run(
        "srl:similarity",
        {
            "INPUT": str(embedding_raster),
            "QUERY_POINT": "500650,3999150 [EPSG:32617]",
            "TOP_K": 5,
            "OUTPUT": str(out),
            "OUTPUT_TOP_K": str(top),
        },
    )
    sim = _read(out)
    assert np.isnan(sim[0, 0])
    assert np.nanmin(sim[:, :12]) > 0.9 and np.nanmax(sim[:, 12:]) < 0.2
    ranks = _field(result["OUTPUT_TOP_K"], "rank")
    cols = _field(top, "col")
    assert sorted(ranks.values()) == [1, 2, 3, 4, 5] and all(c < 12 for c in cols.values())


def test_similarity_points_by_feature_id(srl_provider, embedding_points, tmp_path):
    out = tmp_path / "sim.gpkg"
    processing.run(
        "srl:similarity", {"INPUT": str(embedding_points), "QUERY_FIDS": "25, 30", "OUTPUT_POINTS": str(out)}
    )
    scores = _field(out, "similarity")
    assert min(scores[i] for i in range(21, 41)) > 0.9 > 0.2 > max(scores[i] for i in range(1, 21))


def test_point_similarity_is_styled_in_quantile_classes(srl_provider, embedding_points, qgis_new_project,
                                                         tmp_path):
    """Graduated symbols in 7 quantile classes of the scores (set through the classification method: the
    mode-taking updateClasses is deprecated since QGIS 3.10)."""
    from qgis.core import QgsGraduatedSymbolRenderer

    out = str(tmp_path / "s.gpkg")
    parameters = {"INPUT": str(embedding_points), "QUERY_FIDS": "25", "OUTPUT_POINTS": out}
    processing.runAndLoadResults("srl:similarity", parameters)
    layers = QgsProject.instance().mapLayers().values()
    (layer,) = [lyr for lyr in layers if lyr.name().startswith("Similarity")]
    renderer = layer.renderer()
    assert isinstance(renderer, QgsGraduatedSymbolRenderer) and len(renderer.ranges()) == 7
    assert renderer.classificationMethod().id() == "Quantile"


def test_similarity_without_query_is_a_clear_error(srl_provider, embedding_raster, tmp_path):
    with pytest.raises(QgsProcessingException, match="Nothing to compare with: give a 'Query coordinate'"):
        processing.run("srl:similarity", {"INPUT": str(embedding_raster), "OUTPUT": str(tmp_path / "s.tif")})
    assert not (tmp_path / "s.tif").exists() and not list(tmp_path.glob(".s.partial*"))


def test_outputs_are_named_and_styled_when_loaded(srl_provider, embedding_raster, qgis_new_project, tmp_path):
    processing.runAndLoadResults(
        "srl:cluster", {"INPUT": str(embedding_raster), "K": 2, "OUTPUT": str(tmp_path / "k.tif")}
    )
    processing.runAndLoadResults(
        "srl:similarity",
        {
            "INPUT": str(embedding_raster),
            "QUERY_POINT": "501850,3999150 [EPSG:32617]",
            "OUTPUT": str(tmp_path / "s.tif"),
        },
    )
    layers = {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}
    clusters = layers["Clusters (k=2) of synthetic_embeddings"]
    assert isinstance(clusters.renderer(), QgsPalettedRasterRenderer)
    assert [c.label for c in clusters.renderer().classes()] == ["Cluster 1", "Cluster 2"]
    sim = layers["Similarity to 1 example(s) in synthetic_embeddings"]
    assert isinstance(sim.renderer(), QgsSingleBandPseudoColorRenderer)
    assert sim.renderer().classificationMax() >= 0.99


def test_rgb_view_raster_and_points(
    srl_provider, embedding_raster, embedding_points, qgis_new_project, tmp_path
):
    from qgis.core import QgsMultiBandColorRenderer

    result = processing.runAndLoadResults(
        "srl:rgb_view", {"INPUT": str(embedding_raster), "OUTPUT": str(tmp_path / "rgb.tif")}
    )
    rgba = _read(tmp_path / "rgb.tif")
    assert rgba.shape == (4, 16, 24) and rgba[3, 0, 0] == 0 and (rgba[3, 1:, :] == 255).all()
    # The two halves get clearly different colours.
    left, right = rgba[:3, 5, 3].astype(int), rgba[:3, 5, 20].astype(int)
    assert np.abs(left - right).max() > 100
    assert len(result["VARIANCE"].split(",")) == 3
    (layer,) = [
        lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("Embedding RGB")
    ]
    assert isinstance(layer.renderer(), QgsMultiBandColorRenderer) and layer.renderer().alphaBand() == 4

    out = tmp_path / "rgb.gpkg"
    processing.run("srl:rgb_view", {"INPUT": str(embedding_points), "OUTPUT_POINTS": str(out)})
    colours = _field(out, "colour")
    assert colours[1] != colours[40] and all(c.startswith("#") for c in colours.values())


def test_similarity_outputs_appear_together_or_not_at_all(
    srl_provider, embedding_raster, tmp_path, monkeypatch
):
    """The similarity raster is complete before the top k fail: Processing must keep neither."""
    from srl_core.analysis import api
    from srl_core.errors import OutputError

    def failing_top_k(*args, **kwargs):
        raise OutputError("simulated failure while writing the top k")

    monkeypatch.setattr(api, "top_k_raster", failing_top_k)
    out, top = tmp_path / "sim.tif", tmp_path / "top.gpkg"
    with pytest.raises(QgsProcessingException, match="simulated failure"):
        processing.run(
            "srl:similarity",
            {"INPUT": str(embedding_raster), "QUERY_POINT": "500650,3999150 [EPSG:32617]", "TOP_K": 5,
             "OUTPUT": str(out), "OUTPUT_TOP_K": str(top)},
        )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != embedding_raster.name) == []


def test_an_unexpected_exception_is_one_sentence_not_a_traceback(srl_provider, embedding_raster, tmp_path,
                                                                 monkeypatch):
    from srl_core.analysis import api

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(api, "similarity_raster", broken)
    with pytest.raises(QgsProcessingException) as caught:
        processing.run(
            "srl:similarity",
            {"INPUT": str(embedding_raster), "QUERY_POINT": "500650,3999150 [EPSG:32617]",
             "OUTPUT": str(tmp_path / "sim.tif")},
        )
    message = str(caught.value)
    assert message.startswith("Internal error in Similarity search: ZeroDivisionError: division by zero.")
    assert "Traceback" not in message and "Log Messages panel" in message
    assert not (tmp_path / "sim.tif").exists()


@pytest.fixture
def two_layer_points(embedding_points, tmp_path):
    """A GeoPackage whose first layer is 10 other points and whose second is the 40 embedding points
    (fids 1-20 group A, 21-40 group B), loaded as the second layer."""
    from qgis.core import QgsVectorLayer

    path = str(tmp_path / "layers.gpkg")
    gdal.VectorTranslate(path, str(embedding_points), layerName="others", where="fid > 30")
    gdal.VectorTranslate(path, str(embedding_points), layerName="points", accessMode="append")
    layer = QgsVectorLayer(f"{path}|layername=points", "points", "ogr")
    QgsProject.instance().addMapLayer(layer)
    yield layer
    QgsProject.instance().removeMapLayer(layer.id())


def _features(path) -> int:
    ds = ogr.Open(str(path))  # held while its layer is read
    return ds.GetLayer(0).GetFeatureCount()


@pytest.mark.parametrize("alg", ["srl:cluster", "srl:rgb_view"])
def test_analyses_read_the_layer_chosen_and_only_the_features_shown(srl_provider, two_layer_points, tmp_path,
                                                                     alg):
    """Points given as the second layer of a GeoPackage, then filtered: the analyses read the file's
    first layer, unfiltered (10 other points, then all 40), whichever layer the analyst had chosen."""
    output = "OUTPUT_POINTS"
    out = processing.run(alg, {"INPUT": two_layer_points.id(), output: str(tmp_path / "a.gpkg")})[output]
    assert _features(out) == 40
    two_layer_points.setSubsetString("fid <= 5")
    out = processing.run(alg, {"INPUT": two_layer_points.id(), output: str(tmp_path / "b.gpkg")})[output]
    assert _features(out) == 5


def test_similarity_queries_are_the_features_of_the_layer_chosen(srl_provider, two_layer_points, tmp_path):
    """Query features from the second layer of a GeoPackage, as a selection: their ids were looked up
    in the file's first layer (the other group's points came out as similar), and a selection of an
    embedding point layer failed with an internal error."""
    from qgis.core import QgsProcessingFeatureSourceDefinition

    two_layer_points.selectByIds(list(range(21, 26)))
    query = QgsProcessingFeatureSourceDefinition(two_layer_points.id(), True)
    out = processing.run("srl:similarity", {"INPUT": two_layer_points.id(), "QUERY_LAYER": query,
                                            "OUTPUT_POINTS": str(tmp_path / "s.gpkg")})["OUTPUT_POINTS"]
    score = _field(out, "similarity")
    group_a = np.mean([score[f] for f in range(1, 21)])
    group_b = np.mean([score[f] for f in range(21, 41)])
    assert group_b > 0.9 and group_a < 0.5
