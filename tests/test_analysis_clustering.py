"""k-means and HDBSCAN on embeddings with known clusters."""

import numpy as np
import pytest
from analysis_synthetic import clustered_embeddings, write_embedding_raster
from osgeo import gdal
from sklearn.metrics import adjusted_rand_score

from srl_core.analysis import api
from srl_core.analysis.clustering import (
    EmbeddingKMeans,
    apply_kmeans_raster,
    fit_kmeans_raster,
    hdbscan_labels,
    suggest_k,
)
from srl_core.errors import InputError, ModelError


def test_suggest_k_finds_true_number_of_clusters():
    data, labels = clustered_embeddings(4, 8, 30, 40, seed=3)
    x = data[:, labels >= 0].T
    s = suggest_k(x, range(2, 8))
    assert s.best_k == 4
    assert "Suggested k = 4" in s.summary()


def test_fit_apply_save_reload_on_raster(tmp_path):
    data, labels = clustered_embeddings(3, 8, 40, 50, seed=1)
    path = write_embedding_raster(tmp_path / "e.tif", data, model_id="m1")
    model = fit_kmeans_raster(path, None, sample_size=500)
    assert model.k == 3 and model.model_id == "m1" and model.suggestion_ is not None
    out = apply_kmeans_raster(model, path, str(tmp_path / "classes.tif"))
    ds = gdal.Open(out)
    classes = ds.ReadAsArray()
    assert ds.GetRasterBand(1).GetNoDataValue() == 0
    assert ds.GetRasterBand(1).GetColorTable().GetCount() >= 4
    assert (classes[labels < 0] == 0).all()
    assert set(np.unique(classes[labels >= 0])) == {1, 2, 3}
    assert adjusted_rand_score(labels[labels >= 0], classes[labels >= 0]) == pytest.approx(1.0)

    model.save(str(tmp_path / "km.safetensors"))
    again = EmbeddingKMeans.load(str(tmp_path / "km.safetensors"))
    assert again.model_id == "m1" and again.suggestion_.best_k == 3
    np.testing.assert_array_equal(again.cluster_centers_, model.cluster_centers_)
    # applied to another raster of the same model: same classes for the same embeddings
    other = write_embedding_raster(tmp_path / "other.tif", data[:, ::-1, :].copy(), model_id="m1")
    out2 = apply_kmeans_raster(again, other, str(tmp_path / "classes2.tif"))
    np.testing.assert_array_equal(gdal.Open(out2).ReadAsArray(), classes[::-1, :])


def test_refuses_other_model_and_bad_k(tmp_path):
    data, _ = clustered_embeddings(3, 8, 20, 20)
    path = write_embedding_raster(tmp_path / "e.tif", data, model_id="m1")
    other = write_embedding_raster(tmp_path / "o.tif", data, model_id="m2")
    model = fit_kmeans_raster(path, 3, sample_size=300)
    with pytest.raises(InputError, match="different models"):
        apply_kmeans_raster(model, other, str(tmp_path / "c.tif"))
    assert not (tmp_path / "c.tif").exists()
    with pytest.raises(InputError, match="only 5 embeddings"):
        EmbeddingKMeans(6).fit(np.random.rand(5, 3))
    with pytest.raises(InputError, match="missing"):
        EmbeddingKMeans(2).fit(np.array([[1.0, np.nan], [0, 1], [1, 1]]))
    with pytest.raises(ModelError):
        EmbeddingKMeans.load(str(path))
    with pytest.raises(ModelError, match="not been fitted"):
        EmbeddingKMeans(2).predict(np.zeros((2, 3)))


def test_minibatch_path_and_hdbscan():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16)) * 4
    truth = rng.integers(0, 5, 30_000)
    x = (centres[truth] + rng.normal(scale=0.1, size=(30_000, 16))).astype(np.float32)
    model = EmbeddingKMeans(5, full_batch_below=10_000, sample_size=25_000).fit(x)
    assert model.n_fit_samples_ == 25_000
    assert adjusted_rand_score(truth, model.predict(x)) > 0.99
    small = x[:400]
    labels = hdbscan_labels(small, min_cluster_size=10)
    assert adjusted_rand_score(truth[:400][labels > 0], labels[labels > 0]) > 0.99
    with pytest.raises(InputError, match="at least"):
        hdbscan_labels(small[:3], min_cluster_size=5)


def test_cluster_points_kmeans_and_hdbscan(tmp_path):
    from analysis_synthetic import write_embedding_points

    from srl_core.analysis.clustering import cluster_points
    from srl_core.vector.points import read_embedding_points

    rng = np.random.default_rng(2)
    centres = rng.normal(size=(3, 6)) * 5
    truth = rng.integers(0, 3, 120)
    emb = (centres[truth] + rng.normal(scale=0.1, size=(120, 6))).astype(np.float32)
    path, _ = write_embedding_points(tmp_path / "p.gpkg", emb, model_id="loc1", site=np.arange(120))
    out, labels, model = cluster_points(path, str(tmp_path / "k.gpkg"))
    assert model.k == 3 and model.model_id == "loc1"
    table, emb2, mid = read_embedding_points(out)
    assert mid == "loc1" and set(table.attributes["cluster"]) == {1, 2, 3}
    np.testing.assert_array_equal(table.attributes["site"], np.arange(120))
    assert adjusted_rand_score(truth, table.attributes["cluster"]) == pytest.approx(1.0)
    _, hl, _ = cluster_points(path, str(tmp_path / "h.gpkg"), method="hdbscan", min_cluster_size=10)
    assert adjusted_rand_score(truth[hl > 0], hl[hl > 0]) == pytest.approx(1.0)
    other, _ = write_embedding_points(tmp_path / "o.gpkg", emb, model_id="loc2")
    with pytest.raises(InputError, match="different models"):
        cluster_points(other, str(tmp_path / "x.gpkg"), model=model)


def test_an_embedding_table_with_x_y_columns_and_no_crs_is_still_analysed(tmp_path):
    """Tables whose x/y columns need a CRS to be embedded stay readable by the analyses, which copy the
    coordinates through (the analysis commands have no --crs)."""
    from srl_core.analysis import api

    rng = np.random.default_rng(0)
    lines = ["x,y,emb_000,emb_001,emb_002"]
    for centre in (0.0, 5.0):
        for _ in range(20):
            values = ",".join(f"{v:.4f}" for v in rng.normal(centre, 0.1, 3))
            lines.append(f"{rng.uniform(5, 6):.4f},{rng.uniform(50, 51):.4f},{values}")
    table = tmp_path / "e.csv"
    table.write_text("\n".join(lines) + "\n")
    assert api.cluster(str(table), str(tmp_path / "c.gpkg"), n_clusters=2).n_clusters == 2


# -- classes that mean less than they seem (an audit, session 24) --------------------------------------------
def test_embeddings_that_barely_vary_are_said_and_classes_are_the_nearest_centres(tmp_path):
    """One vector plus variation of 1e-4 of its length: k-means suggested k = 4 without a word (the
    colour view and similarity warned), and far from the origin the float32 distances cancelled, so
    the classes written differed from the fit's (8 clusters written, 6 used)."""
    from srl_core.analysis.clustering import EmbeddingKMeans

    rng = np.random.default_rng(0)
    x = (np.full(4, 1000.0) + rng.normal(scale=0.1, size=(2500, 4))).astype(np.float32)
    model = EmbeddingKMeans(8, seed=0).fit(x)
    assert any("barely vary" in w for w in model.warnings_)
    model.save(str(tmp_path / "k.safetensors"))  # the warning travels with the saved model
    assert EmbeddingKMeans.load(str(tmp_path / "k.safetensors")).warnings_ == model.warnings_
    centres = model.cluster_centers_.astype(np.float64)
    exact = ((x[:, None, :].astype(np.float64) - centres[None]) ** 2).sum(-1)
    agree = (model.predict(x) == exact.argmin(axis=1)).mean()
    assert agree > 0.99 and len(np.unique(model.predict(x))) == 8


def test_one_class_holding_nearly_every_pixel_is_said_and_a_saved_model_that_fits_nothing(tmp_path):
    """Three groups plus 0.5 % of undeclared fill (-9999): the suggested k = 2 put 99.5 % in one class
    at a silhouette of 1.0, silently; a saved model applied to a shifted scene put every pixel in one
    class and printed its old 'Suggested k' and 'n clusters written'."""
    from srl_core.analysis import api

    data, _ = clustered_embeddings(3, 8, 40, 90, seed=1)
    data[:, 20, :18] = -9999.0
    path = write_embedding_raster(tmp_path / "fill.tif", data, model_id="m1")
    result = api.cluster(path, str(tmp_path / "c.tif"))
    assert result.n_clusters == 2
    assert any("Class 1 holds 99.5% of the 3510 pixels" in w for w in result.warnings)
    assert "99.5%" in gdal.Open(result.output).GetMetadataItem("SRL_QUALITY_WARNING")

    clean, _ = clustered_embeddings(3, 8, 40, 90, seed=1)
    fitted = api.cluster(write_embedding_raster(tmp_path / "clean.tif", clean, model_id="m1"),
                         str(tmp_path / "c3.tif"), n_clusters=3)
    fitted.model.save(str(tmp_path / "k.safetensors"))
    shifted = write_embedding_raster(tmp_path / "shifted.tif", clean + 50.0, model_id="m1")
    applied = api.apply_clusters(str(tmp_path / "k.safetensors"), shifted, str(tmp_path / "a.tif"))
    assert any("got no pixels: only 1 class is used" in w for w in applied.warnings)
    assert not any("Suggested k" in line for line in applied.messages())
    assert "got no pixels" in gdal.Open(applied.output).GetMetadataItem("SRL_QUALITY_WARNING")


def test_a_class_empty_in_a_new_raster_is_said_though_another_was_empty_in_the_fit():
    """The fit's empty classes suppressed every empty-class warning: class 3, empty only in the new
    raster, went unsaid."""
    from srl_core.analysis.clustering import class_share_warnings

    (said,) = class_share_warnings(np.array([40, 30, 0, 30, 0]), "pixels", [5])
    assert said.startswith("Class 3 of the 5 got no pixels")
    assert class_share_warnings(np.array([40, 30, 30, 30, 0]), "pixels", [5]) == []


@pytest.mark.parametrize("damage, said", [
    (lambda c, m: (np.where(np.arange(c.size).reshape(c.shape) == 3, np.nan, c), m), "not finite"),
    (lambda c, m: (c[:1], m), "not 2 to 255 vectors"),
    (lambda c, m: (np.repeat(c, 100, axis=0), m), "not 2 to 255 vectors"),
    (lambda c, m: (c, {k: v for k, v in m.items() if k != "normalize"}), "KeyError: 'normalize'"),
    (lambda c, m: (c, {**m, "normalize": '"true"'}), "not true or false"),
    (lambda c, m: (c, {**m, "format_version": "99"}), "newer than this SRL's"),
    (lambda c, m: (c, {**m, "suggestion": '{"a": 1}'}), "TypeError"),
])
def test_a_damaged_cluster_model_is_refused_before_any_class_is_written(tmp_path, damage, said):
    """A NaN centre put every pixel in class 1, 300 centres wrapped past the byte's 255 classes, one centre
    made one class; a missing or mistyped key was "a bug in SRL, not in your data"."""
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    data, _ = clustered_embeddings(3, 8, 20, 20, seed=1)
    path = write_embedding_raster(tmp_path / "e.tif", data, model_id="m1")
    saved = fit_kmeans_raster(path, 3, sample_size=300).save(str(tmp_path / "km.safetensors"))
    with safe_open(str(saved), framework="numpy") as f:
        meta = f.metadata()
    centres, meta = damage(load_file(str(saved))["centers"], meta)
    save_file({"centers": np.ascontiguousarray(centres)}, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ModelError, match=f"is a damaged SRL clustering model .*{said}"):
        api.apply_clusters(str(tmp_path / "bad.safetensors"), path, str(tmp_path / "c.tif"))
    assert not (tmp_path / "c.tif").exists()
