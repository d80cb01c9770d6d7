"""Analyses whose result would look fine and mean nothing say so: a flat similarity map or ranking,
clusters without members or without groups, a colour view of no variance (in the result's lines, the
Processing log and, for rasters, the output's SRL_QUALITY_WARNING); the real sample scene raises none."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from analysis_synthetic import (
    GEOTRANSFORM,
    clustered_embeddings,
    utm31_wkt,
    write_embedding_points,
    write_embedding_raster,
)
from conftest import run_cli
from osgeo import gdal

from srl_core.analysis import api
from srl_core.analysis.similarity import Query
from srl_core.errors import InputError
from srl_core.names import QUALITY_WARNING_KEY

D, H, W = 8, 20, 24
SAMPLE_SCENE = Path(__file__).resolve().parent.parent / "resources" / "sample_data" / "nc_landsat7_2000.tif"


def centre(col: int, row: int) -> tuple[float, float]:
    return GEOTRANSFORM[0] + (col + 0.5) * GEOTRANSFORM[1], GEOTRANSFORM[3] + (row + 0.5) * GEOTRANSFORM[5]


def raster(tmp_path: Path, name: str, data: np.ndarray) -> str:
    return write_embedding_raster(tmp_path / f"{name}.tif", data.astype(np.float32))


def flat(tmp_path: Path) -> str:
    """One vector plus noise 1e-4 of its size: every cosine similarity is 1.000."""
    rng = np.random.default_rng(0)
    return raster(tmp_path, "flat", rng.normal(size=(D, 1, 1)) + 1e-4 * rng.normal(size=(D, H, W)))


def constant(tmp_path: Path) -> str:
    return raster(tmp_path, "constant", np.broadcast_to(np.arange(1.0, D + 1)[:, None, None], (D, H, W)))


def three_values(tmp_path: Path) -> str:
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, D))
    return raster(tmp_path, "three", centres[rng.integers(0, 3, (H, W))].transpose(2, 0, 1))


def structured(tmp_path: Path) -> str:
    return raster(tmp_path, "structured", clustered_embeddings(3, D, H, W, seed=2)[0])


def quality_warning(path: str) -> str:
    return gdal.Open(path).GetMetadataItem(QUALITY_WARNING_KEY) or ""


def pixel_query(path: str) -> Query:
    return Query().add_pixels(path, np.array([centre(3, 5)]))


def test_a_flat_similarity_map_is_said_and_kept_in_its_metadata(tmp_path):
    path = flat(tmp_path)
    out = str(tmp_path / "sim.tif")
    result = api.similarity(path, pixel_query(path), out)
    assert np.nanmax(gdal.Open(out).ReadAsArray()) - np.nanmin(gdal.Open(out).ReadAsArray()) < 1e-3
    assert len(result.warnings) == 1 and "barely differ" in result.warnings[0]
    assert f"warning: {result.warnings[0]}" in result.messages()
    assert quality_warning(out) == result.warnings[0]


def test_a_ranking_of_near_ties_is_said(tmp_path):
    path = flat(tmp_path)
    result = api.similarity(path, pixel_query(path), None, top_k=5, top_k_output=str(tmp_path / "top.gpkg"))
    assert len(result.warnings) == 1 and "ranked arbitrarily" in result.warnings[0]


def test_one_far_off_embedding_does_not_hide_near_ties(tmp_path):
    """One outlier widened the scores' whole range past the check: 900 near-ties ranked without a word
    (found by an audit). The check takes the range of all but the extreme 1 % at either end."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(D, 1, 1)) + 1e-4 * rng.normal(size=(D, H, W))
    data[:, 0, 0] = -5.0 * data[:, 1, 1]  # one embedding pointing away from all the others
    path = raster(tmp_path, "outlier", data)
    result = api.similarity(path, pixel_query(path), None, top_k=5, top_k_output=str(tmp_path / "top.gpkg"))
    said = "stand no higher than the typical one"
    assert any("ranked arbitrarily" in w and said in w for w in result.warnings)
    flat_map = api.similarity(path, pixel_query(path), str(tmp_path / "map.tif"))  # the map, too (a review)
    assert any("the map tells no place from another" in w for w in flat_map.warnings)
    # a rare target of 10 pixels in 480 stands clear of the rest: its ranking is no near-tie (a review)
    island = np.broadcast_to(data[:, 1:2, 1:2], data.shape).copy()
    island[:, 5, :10] = rng.normal(size=(D, 1))
    path = raster(tmp_path, "island", island)
    query = Query().add_pixels(path, np.array([centre(0, 5)]))
    result = api.similarity(path, query, None, top_k=5, top_k_output=str(tmp_path / "isle.gpkg"))
    assert not any("near-ties" in w for w in result.warnings)


def test_a_query_in_a_class_covering_most_of_the_raster_is_not_called_a_map_of_no_place(tmp_path):
    """60 % of the pixels alike (the query's class), 40 % sharply unlike: the map spans 0 to 1, and was
    said to 'tell no place from another'. It is said to tell only those two apart."""
    rng = np.random.default_rng(0)
    data = np.broadcast_to(rng.normal(size=(D, 1, 1)), (D, H, W)) + 1e-4 * rng.normal(size=(D, H, W))
    data[:, :, : int(0.4 * W)] = rng.normal(size=(D, 1, 1))  # the other class
    path = raster(tmp_path, "majority", data)
    query = Query().add_pixels(path, np.array([centre(W - 1, 5)]))
    result = api.similarity(path, query, str(tmp_path / "m.tif"))
    assert not any("tells no place from another" in w for w in result.warnings)
    assert any("of the similarity scores stand within 0.001 of the highest" in w
               and "the map tells those places only from the other 38%" in w for w in result.warnings)


def test_flat_point_similarity_and_ranking_are_said(tmp_path):
    rng = np.random.default_rng(3)
    emb = (rng.normal(size=(1, D)) + 1e-4 * rng.normal(size=(60, D))).astype(np.float32)
    points, _ = write_embedding_points(tmp_path / "p.gpkg", emb)
    query = Query().add_vectors(emb[:1], "synthetic-loc")
    result = api.similarity(points, query, str(tmp_path / "s.gpkg"), top_k=5,
                            top_k_output=str(tmp_path / "t.gpkg"))
    assert ["map tells no place" in w for w in result.warnings] == [True, False]
    assert "ranked arbitrarily" in result.warnings[1]


def test_constant_embeddings_are_not_clustered(tmp_path):
    with pytest.raises(InputError, match="same vector"):
        api.cluster(constant(tmp_path), str(tmp_path / "c.tif"))


def test_clusters_without_members_are_counted_and_said(tmp_path):
    out = str(tmp_path / "c.tif")
    with warnings.catch_warnings(record=True) as raised:
        warnings.simplefilter("always")
        result = api.cluster(three_values(tmp_path), out, n_clusters=8)
    assert not [w for w in raised if "ConvergenceWarning" in type(w.message).__name__]
    assert len(np.unique(gdal.Open(out).ReadAsArray())) == 3
    assert result.warnings == [
        "Only 3 of the 8 clusters have members: the 480 embeddings fitted on (all, or a sample) hold only 3 "
        "distinct values. "
        "The other classes are empty; choose k = 3 or fewer."
    ]
    assert quality_warning(out) == result.warnings[0]


def test_a_suggested_k_without_groups_is_said(tmp_path):
    noise = np.random.default_rng(4).normal(size=(D, H, W))
    result = api.cluster(raster(tmp_path, "noise", noise), str(tmp_path / "c.tif"))
    assert any("no clear groups" in w for w in result.warnings)
    assert api.cluster(structured(tmp_path), str(tmp_path / "s.tif")).warnings == []


def test_a_given_k_without_groups_is_said_and_a_clear_one_is_not(tmp_path):
    """Only a suggested k was checked: k = 5 on pure noise came out as confident classes (an audit)."""
    noise = np.random.default_rng(4).normal(size=(D, H, W))
    for k in (2, 5):
        out = str(tmp_path / f"c{k}.tif")
        result = api.cluster(raster(tmp_path, "noise", noise), out, n_clusters=k)
        said = [w for w in result.warnings if f"The {k} classes show no clear groups" in w]
        assert len(said) == 1 and said[0] in quality_warning(out)
    clear = api.cluster(three_values(tmp_path), str(tmp_path / "c3.tif"), n_clusters=3)
    assert not any("no clear groups" in w for w in clear.warnings)


def test_k_as_large_as_the_embeddings_fits_without_a_silhouette():
    """The silhouette takes 2 to n - 1 classes: k = n, which k-means allows, ended in "a bug in SRL"."""
    from srl_core.analysis.clustering import EmbeddingKMeans

    model = EmbeddingKMeans(n_clusters=6).fit(np.random.default_rng(0).normal(size=(6, 4)))
    assert model.k == 6 and not any("no clear groups" in w for w in model.warnings_)


def test_hdbscan_clusters_of_evenly_spread_points_are_said(tmp_path):
    """5,000 points spread evenly: HDBSCAN found hundreds of 'clusters' without a word (an audit)."""
    from conftest import UTM17N, _crs_wkt

    from srl_core.analysis.clustering import cluster_points
    from srl_core.vector.points import write_points

    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 1000, (2000, 2)) + [500000, 4000000]
    path = tmp_path / "even.gpkg"
    embeddings = rng.normal(size=(2000, 6)).astype(np.float32)
    write_points(str(path), xy, _crs_wkt(UTM17N), {}, embeddings=embeddings, model_id="m")
    said = []
    _, labels, _ = cluster_points(str(path), str(tmp_path / "h.gpkg"), method="hdbscan",
                                  on_warning=said.append)
    assert labels.max() >= 2 and any("density clusters show no clear groups" in w for w in said)


def test_hdbscan_finding_only_noise_names_the_size_to_lower(embedding_points, tmp_path):
    points = str(embedding_points)
    result = api.cluster(points, str(tmp_path / "h.gpkg"), method="hdbscan", min_cluster_size=30)
    assert result.n_clusters == 0
    assert len(result.warnings) == 1 and "minimum cluster size (now 30)" in result.warnings[0]


def test_rgb_view_of_no_variance_is_grey_and_said(tmp_path):
    out = str(tmp_path / "rgb.tif")
    result = api.rgb_view(constant(tmp_path), out)
    rgb = gdal.Open(out).ReadAsArray()
    assert (rgb[:3] == 128).all() and result.explained_variance == (0.0, 0.0, 0.0)
    assert len(result.warnings) == 1 and "barely vary" in result.warnings[0]
    assert quality_warning(out) == result.warnings[0]


def test_rgb_view_of_near_identical_embeddings_beside_an_outlier_is_grey_and_said(tmp_path):
    """With one far-off embedding the view was refitted on the others and stretched their 1e-8 of variance
    into full colour, saying the colours showed them (found by an audit)."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(D, 1, 1)) + 1e-4 * rng.normal(size=(D, H, W))
    data[:, 0, 0] = -5.0 * data[:, 1, 1]
    out = str(tmp_path / "rgb.tif")
    result = api.rgb_view(raster(tmp_path, "outlier", data), out)
    rgb = gdal.Open(out).ReadAsArray()
    assert (rgb[:3] == 128).all() and result.explained_variance == (0.0, 0.0, 0.0)
    assert len(result.warnings) == 1 and "barely vary but for a few far off" in result.warnings[0]


def test_rgb_view_of_an_island_scene_colours_its_land():
    """95 % (then 98.5 %) near-uniform water and the rest land of three covers: the land is no 'few far off'
    to grey out with the water, and the water gets one colour, not its noise stretched (two reviews)."""
    from srl_core.analysis.views import EmbeddingRGB

    rng = np.random.default_rng(0)
    water = np.tile(rng.normal(size=32), (20_000, 1)) + 1e-5 * rng.standard_normal((20_000, 32))
    covers = rng.normal(size=(3, 32)) * 2
    for land_pixels in (1000, 300):
        x = water.copy()
        noise = 0.2 * rng.standard_normal((land_pixels, 32))
        x[:land_pixels] = covers[rng.integers(0, 3, land_pixels)] + noise
        view = EmbeddingRGB().fit(x.astype(np.float32))
        colours = view.transform(x.astype(np.float32))
        assert colours[:land_pixels].std(axis=0).min() > 30 and colours[land_pixels:].std(axis=0).max() < 1
        assert any("of the embeddings barely vary" in w for w in view.warnings)


def test_rgb_view_shows_a_negligible_component_mid_grey(tmp_path):
    rng = np.random.default_rng(5)
    data = 0.01 * rng.normal(size=(D, H, W))
    data[0] = 100 * rng.normal(size=(H, W))
    out = str(tmp_path / "rgb.tif")
    result = api.rgb_view(raster(tmp_path, "dominant", data), out)
    rgb = gdal.Open(out).ReadAsArray()
    assert rgb[0].std() > 10 and (rgb[1:3] == 128).all()
    assert len(result.warnings) == 1 and "PC2" in result.warnings[0] and "PC3" in result.warnings[0]
    assert "PC1" not in result.warnings[0]


def test_processing_log_gets_the_warnings(srl_provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    class Collect(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.warnings: list[str] = []

        def pushWarning(self, text):  # noqa: N802
            self.warnings.append(text)

    runs = {
        "similarity": {"INPUT": flat(tmp_path), "QUERY_POINT": "{},{}".format(*centre(3, 5)),
                       "OUTPUT": str(tmp_path / "s.tif")},
        "cluster": {"INPUT": three_values(tmp_path), "K": 8, "OUTPUT": str(tmp_path / "c.tif")},
        "rgb_view": {"INPUT": constant(tmp_path), "OUTPUT": str(tmp_path / "r.tif")},
    }
    said = {"similarity": "barely differ", "cluster": "Only 3 of the 8", "rgb_view": "barely vary"}
    for alg, parameters in runs.items():
        feedback = Collect()
        processing.run(f"srl:{alg}", parameters, feedback=feedback)
        assert len(feedback.warnings) == 1 and said[alg] in feedback.warnings[0], alg


def test_command_line_prints_the_warnings_without_scikit_learns(tmp_path, capsys):
    path = flat(tmp_path)
    x, y = centre(3, 5)
    code, out, _ = run_cli(["similarity", path, str(tmp_path / "s.tif"), "--pixel", str(x), str(y)], capsys)
    assert code == 0 and "warning: The highest similarity scores stand no higher than the typical one" in out
    code, out, err = run_cli(["cluster", three_values(tmp_path), str(tmp_path / "c.tif"), "-k", "8"], capsys)
    assert code == 0 and "warning: Only 3 of the 8 clusters" in out and "ConvergenceWarning" not in err


@pytest.fixture(scope="module")
def sample_scene_embeddings(tmp_path_factory) -> str:
    """The bundled sample scene embedded by the bundled tile model (a few seconds on a CPU)."""
    from srl_core.tiles import embed_raster

    out = tmp_path_factory.mktemp("scene") / "emb.tif"
    embed_raster(SAMPLE_SCENE, out, "tile2vec-l8-rgb-pixels64", device="cpu")
    return str(out)


def test_the_sample_scene_raises_no_warning(sample_scene_embeddings, tmp_path):
    path = sample_scene_embeddings
    query = Query().add_pixels(path, np.array([[635379.0, 223269.0]]))
    results = [
        api.similarity(path, query, str(tmp_path / "s.tif"), top_k=5, top_k_output=str(tmp_path / "t.gpkg")),
        api.cluster(path, str(tmp_path / "c.tif")),
        api.cluster(path, str(tmp_path / "n.tif"), normalize=True),
        api.cluster(path, str(tmp_path / "k.tif"), n_clusters=12),
        api.rgb_view(path, str(tmp_path / "r.tif")),
    ]
    assert [r.warnings for r in results] == [[]] * len(results)
    assert not any(quality_warning(str(tmp_path / name)) for name in ("s.tif", "c.tif", "r.tif"))


def test_analyses_of_embeddings_flagged_when_made_repeat_the_flag(tmp_path, embedding_raster):
    """Embeddings that embed-raster flagged as degenerate could give a similarity map that is not
    flat (scores over 0.02-0.05) and said nothing: every analysis of them now repeats the flag."""
    from osgeo import gdal

    from srl_core.analysis import api
    from srl_core.names import QUALITY_WARNING_KEY

    ds = gdal.Open(str(embedding_raster), gdal.GA_Update)
    ds.SetMetadataItem(QUALITY_WARNING_KEY, "These embeddings look degenerate.")
    ds = None
    flag = "The input embeddings were flagged when they were made: These embeddings look degenerate."
    assert flag in api.cluster(str(embedding_raster), str(tmp_path / "c.tif"), n_clusters=2).warnings
    assert flag in api.rgb_view(str(embedding_raster), str(tmp_path / "v.tif")).warnings
    query = api.Query().add_pixels(api.open_input(str(embedding_raster)).source, [[500650.0, 3999150.0]])
    assert flag in api.similarity(str(embedding_raster), query, str(tmp_path / "s.tif")).warnings
    # and the maps keep it: in a graphical model the embeddings are an intermediate file never loaded,
    # so the map's own metadata is all QGIS's message bar, or a later analysis, can tell
    for name in ("c.tif", "v.tif", "s.tif"):
        assert quality_warning(str(tmp_path / name)).startswith("These embeddings look degenerate.")


def layer_warning(path: str) -> str:
    ds = gdal.OpenEx(path, gdal.OF_VECTOR)
    return ds.GetLayer(0).GetMetadataItem(QUALITY_WARNING_KEY) or ""


def test_point_outputs_keep_the_inputs_flag_and_their_own_warnings(tmp_path):
    """Cluster, similarity, top-k and colour-view outputs of points copy the embeddings, but kept neither
    the flag they were made with nor the analysis's own warning: whoever opened the copy, or analysed it
    again, was told nothing. Now the copy's SRL_QUALITY_WARNING is the flag, then the analysis's."""
    from srl_core.vector.points import write_points

    rng = np.random.default_rng(3)
    emb = (rng.normal(size=(1, D)) + 1e-4 * rng.normal(size=(60, D))).astype(np.float32)
    xy = np.column_stack([rng.uniform(500000, 510000, 60), rng.uniform(4000000, 4010000, 60)])
    points = str(tmp_path / "p.gpkg")
    write_points(points, xy, utm31_wkt(), {}, embeddings=emb, model_id="synthetic-loc",
                 warnings=["Made badly."])
    flag = "The input embeddings were flagged when they were made: Made badly."
    query = Query().add_vectors(emb[:1], "synthetic-loc")
    outputs = {name: str(tmp_path / f"{name}.gpkg") for name in ("s", "t", "c", "v")}
    result = api.similarity(points, query, outputs["s"], top_k=5, top_k_output=outputs["t"])
    assert result.warnings[0] == flag and "map tells no place" in result.warnings[1]
    assert layer_warning(outputs["s"]) == f"Made badly. {result.warnings[1]}"
    assert layer_warning(outputs["t"]) == f"Made badly. {result.warnings[2]}"
    for name, analysis in (("c", lambda out: api.cluster(points, out, n_clusters=2)),
                           ("v", lambda out: api.rgb_view(points, out))):
        result = analysis(outputs[name])
        assert result.warnings[0] == flag
        assert layer_warning(outputs[name]) == " ".join(["Made badly.", *result.warnings[1:]])
        # and an analysis of the copy repeats what the copy carries
        again = api.similarity(outputs[name], query, str(tmp_path / f"again_{name}.gpkg")).warnings[0]
        assert again.startswith(flag)


def test_top_k_points_of_a_flagged_raster_keep_its_flag(tmp_path):
    path = flat(tmp_path)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.SetMetadataItem(QUALITY_WARNING_KEY, "Made badly.")
    ds = None
    out = str(tmp_path / "top.gpkg")
    result = api.similarity(path, pixel_query(path), None, top_k=5, top_k_output=out)
    assert "ranked arbitrarily" in result.warnings[-1]
    assert layer_warning(out) == f"Made badly. {result.warnings[-1]}"
