"""Similarity rasters, similarity fields and top-k search with known nearest neighbours."""

import numpy as np
import pytest
from analysis_synthetic import (
    GEOTRANSFORM,
    clustered_embeddings,
    utm31_wkt,
    write_embedding_points,
    write_embedding_raster,
)
from osgeo import gdal, ogr, osr
from shapely.geometry import Polygon, box

from srl_core.analysis._common import l2_normalize
from srl_core.analysis.search import ApproximateIndex, SimilarityIndex, exact_top_k, recall_at_k
from srl_core.analysis.similarity import (
    Query,
    similarity_points,
    similarity_raster,
    top_k_points,
    top_k_raster,
)
from srl_core.errors import InputError
from srl_core.vector.crs import to_lonlat
from srl_core.vector.points import read_embedding_points


def pixel_xy(col, row):
    return GEOTRANSFORM[0] + (col + 0.5) * 10, GEOTRANSFORM[3] - (row + 0.5) * 10


@pytest.fixture
def raster(tmp_path):
    data, labels = clustered_embeddings(3, 8, 30, 45, seed=2)
    return write_embedding_raster(tmp_path / "e.tif", data, model_id="m1"), data, labels


def test_similarity_raster_from_pixel_and_polygon(tmp_path, raster):
    path, data, labels = raster
    q = Query().add_pixels(path, np.array([pixel_xy(2, 5)]))
    np.testing.assert_allclose(q.matrix()[0], data[:, 5, 2])
    out = similarity_raster(path, q, str(tmp_path / "sim.tif"))
    sim = gdal.Open(out).ReadAsArray()
    assert np.isnan(sim[labels < 0]).all()
    assert sim[5, 2] == pytest.approx(1.0, abs=1e-5)
    assert sim[labels == 0].min() > 0.99 and sim[labels == 2].max() < 0.9
    valid = labels >= 0
    expect = l2_normalize(data[:, valid].T) @ l2_normalize(data[:, 5, 2])
    np.testing.assert_allclose(sim[valid], expect, atol=1e-5)

    # polygon over columns 30..44 (class 2) → mean embedding of those valid pixels
    poly = box(GEOTRANSFORM[0] + 300, GEOTRANSFORM[3] - 300, GEOTRANSFORM[0] + 450, GEOTRANSFORM[3])
    qp = Query().add_polygon(path, poly)
    np.testing.assert_allclose(qp.matrix()[0], data[:, 1:, 30:].reshape(8, -1).mean(axis=1), rtol=1e-4)
    # the same polygon from a vector file in another CRS (WGS84)
    wgs = osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ring = to_lonlat(np.asarray(poly.buffer(-1.0).exterior.coords), utm31_wkt())
    gpkg = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "poly.gpkg"))
    layer = gpkg.CreateLayer("poly", srs=wgs, geom_type=ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt(Polygon(ring).wkt))
    layer.CreateFeature(feature)
    gpkg = None
    ql = Query().add_polygon_layer(path, str(tmp_path / "poly.gpkg"))
    np.testing.assert_allclose(ql.matrix()[0], qp.matrix()[0], rtol=1e-4)
    # two examples together, best match: both classes 0 and 2 score high, class 1 low
    qboth = Query().add_pixels(path, np.array([pixel_xy(2, 5)])).add_polygon(path, poly.wkt)
    sim2 = gdal.Open(similarity_raster(path, qboth, str(tmp_path / "s2.tif"), combine="max")).ReadAsArray()
    assert sim2[labels == 2].min() > 0.99 and sim2[labels == 0].min() > 0.99 and sim2[labels == 1].max() < 0.9


def test_a_query_polygon_layer_of_undefined_crs_is_taken_in_the_rasters(tmp_path, raster):
    """A GeoPackage written without a CRS has GDAL's 'Undefined geographic SRS': its polygons, drawn in
    the raster's metres, were reprojected from degrees and covered no pixel."""
    path, data, _ = raster
    poly = box(GEOTRANSFORM[0] + 300, GEOTRANSFORM[3] - 300, GEOTRANSFORM[0] + 450, GEOTRANSFORM[3])
    gpkg = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "drawn.gpkg"))
    layer = gpkg.CreateLayer("drawn", srs=None, geom_type=ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt(poly.wkt))
    layer.CreateFeature(feature)
    gpkg = None
    ql = Query().add_polygon_layer(path, str(tmp_path / "drawn.gpkg"))
    np.testing.assert_allclose(ql.matrix()[0], Query().add_polygon(path, poly).matrix()[0], rtol=1e-5)


def test_top_k_raster_matches_brute_force(tmp_path, raster):
    path, data, labels = raster
    q = Query().add_pixels(path, np.array([pixel_xy(20, 10)]))
    out, cells, scores = top_k_raster(path, q, 7, str(tmp_path / "top.gpkg"))
    valid = np.argwhere(labels >= 0)
    sims = l2_normalize(data[:, labels >= 0].T) @ l2_normalize(data[:, 10, 20])
    best = valid[np.argsort(-sims)[:7]]
    assert {tuple(c) for c in cells} == {(c, r) for r, c in best}
    assert np.all(np.diff(scores) <= 0)
    table, emb, model_id = read_embedding_points(out)
    assert model_id == "m1" and len(table) == 7
    np.testing.assert_array_equal(table.attributes["rank"], np.arange(1, 8))
    np.testing.assert_allclose(table.xy[0], pixel_xy(*cells[0]))


def test_points_similarity_and_top_k_exact(tmp_path):
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(300, 16)).astype(np.float32)
    path, xy = write_embedding_points(tmp_path / "p.gpkg", emb, name=[f"p{i}" for i in range(300)])
    table, _, _ = read_embedding_points(path)
    q = Query().add_points(path, [int(table.fids[11])])
    out, scores = similarity_points(path, q, str(tmp_path / "sim.gpkg"))
    expect = l2_normalize(emb) @ l2_normalize(emb[11])
    np.testing.assert_allclose(scores, expect, atol=1e-5)
    t2, _, _ = read_embedding_points(out)
    np.testing.assert_allclose(t2.attributes["similarity"], expect, atol=1e-5)

    out, rows, top = top_k_points(path, q, 10, str(tmp_path / "top.gpkg"))
    np.testing.assert_array_equal(rows, np.argsort(-expect)[:10])
    t3, e3, _ = read_embedding_points(out)
    assert t3.attributes["name"][0] == "p11" and t3.attributes["rank"][0] == 1
    np.testing.assert_allclose(t3.attributes["score"], top, atol=1e-6)


def test_approximate_index_reaches_recall_on_clustered_data():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 32))
    x = (centres[rng.integers(0, 50, 20_000)] + rng.normal(scale=0.6, size=(20_000, 32))).astype(np.float32)
    queries = x[rng.choice(len(x), 100, replace=False)] + 0.05
    index = ApproximateIndex(x, target_recall=0.95, seed=0)
    truth = exact_top_k(l2_normalize(x), l2_normalize(queries), 10)[1]
    found = index.search(l2_normalize(queries), 10)[1]
    assert index.calibrated_recall >= 0.95
    assert recall_at_k(found, truth) >= 0.9
    assert SimilarityIndex(x[:100]).method == "exact"


def test_top_k_of_a_mean_of_examples_is_exact_by_default_and_approximate_says_it_may_miss(tmp_path,
                                                                                           monkeypatch):
    """'auto' took the approximate index for large layers, whose recall is calibrated on single embeddings:
    the mean of 5 examples from different groups lies between its cells, and it missed up to all of the 10
    best (recall 0.78 on average), under a ranking that looked complete."""
    from srl_core.analysis import search

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 32))
    x = (centres[rng.integers(0, 50, 6000)] + 0.7 * rng.normal(size=(6000, 32))).astype(np.float32)
    path, _ = write_embedding_points(tmp_path / "p.gpkg", x)
    monkeypatch.setattr(search, "APPROXIMATE_ABOVE", 1000)  # this layer counts as a large one
    fids = read_embedding_points(path)[0].fids
    examples = rng.choice(len(x), 5, replace=False)
    query = Query().add_points(path, [int(fids[i]) for i in examples])
    truth = np.argsort(-(l2_normalize(x) @ l2_normalize(l2_normalize(x[examples]).mean(axis=0))))[:10]
    said: list[str] = []
    _, rows, _ = top_k_points(path, query, 10, str(tmp_path / "auto.gpkg"), on_warning=said.append)
    assert sorted(rows) == sorted(truth) and not said
    top_k_points(path, query, 10, str(tmp_path / "approx.gpkg"), method="approximate", on_warning=said.append)
    assert any("the mean of 5 examples can lie between its cells" in w for w in said)


def test_bad_queries(tmp_path, raster):
    path, data, labels = raster
    with pytest.raises(InputError, match="outside"):
        Query().add_pixels(path, np.array([[0.0, 0.0]]))
    with pytest.raises(InputError, match="nodata"):
        Query().add_pixels(path, np.array([pixel_xy(3, 0)]))
    with pytest.raises(InputError, match="no valid pixel"):
        Query().add_polygon(path, box(0, 0, 1, 1))
    with pytest.raises(InputError, match="No query"):
        similarity_raster(path, Query(), str(tmp_path / "x.tif"))
    other = write_embedding_raster(tmp_path / "o.tif", data, model_id="m2")
    q = Query().add_pixels(path, np.array([pixel_xy(2, 5)]))
    with pytest.raises(InputError, match="different models"):
        similarity_raster(other, q, str(tmp_path / "x.tif"))
    mixed = Query().add_pixels(path, np.array([pixel_xy(2, 5)])).add_pixels(other, np.array([pixel_xy(2, 5)]))
    with pytest.raises(InputError, match="different models"):
        similarity_raster(path, mixed, str(tmp_path / "x.tif"))
    with pytest.raises(InputError, match="combine"):
        similarity_raster(path, q, str(tmp_path / "x.tif"), combine="median")
    with pytest.raises(InputError, match="smaller k"):
        exact_top_k(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 5)
    assert not (tmp_path / "x.tif").exists()


def test_pixels_of_length_zero_of_an_export_have_no_similarity_and_are_said(tmp_path):
    """A strip of all-zero embeddings in an export (its fill, undeclared) scored 0, above truly different
    ground, and could be ranked; it is now no data in the map and the ranking, with a warning naming it.
    In SRL's own rasters such vectors are data (MOSAIKS on uniform ground) and keep their score of 0."""
    from srl_core.embedding_products import EmbeddingRaster
    from srl_core.raster.geotiff import create_geotiff

    data, labels = clustered_embeddings(3, 8, 30, 45, seed=2)
    data[:, 10:12, :] = 0.0
    path = str(tmp_path / "export.tif")
    ds = create_geotiff(path, 45, 30, 8, np.float32, GEOTRANSFORM, utm31_wkt(), nodata=float("nan"))
    ds.WriteArray(data)
    ds = None
    export = EmbeddingRaster(path, bands_as_embeddings=True)
    query = Query().add_pixels(export, np.array([pixel_xy(40, 5)]))
    told = []
    out = similarity_raster(export, query, str(tmp_path / "sim.tif"), on_warning=told.append)
    sim = gdal.Open(out).ReadAsArray()
    assert np.isnan(sim[10:12]).all() and np.isfinite(sim[1:10]).all()
    assert "have embeddings of length 0" in told[0]
    assert "length 0" in gdal.Open(out).GetMetadataItem("SRL_QUALITY_WARNING")
    _, cells, scores = top_k_raster(export, query, 44 * 29 - 2 * 45, str(tmp_path / "top.gpkg"))
    assert not np.isin(cells[:, 1], [10, 11]).any() and np.isfinite(scores).all()
    with pytest.raises(InputError, match=r"the raster has only 1215 with data"):
        top_k_raster(export, query, 1216, str(tmp_path / "top2.gpkg"))

    own = write_embedding_raster(tmp_path / "own.tif", data, model_id="m1")
    told = []
    sim = gdal.Open(similarity_raster(own, Query().add_pixels(own, np.array([pixel_xy(40, 5)])),
                                      str(tmp_path / "own_sim.tif"), on_warning=told.append)).ReadAsArray()
    assert (sim[10:12] == 0).all() and not told


def test_best_match_of_many_examples_holds_few_scores_at_once(monkeypatch):
    """combine='max' built a pixels x examples matrix (1.8 GB for 400 examples on a 32 MB raster); it
    now takes the examples a few at a time, with the same scores."""
    from srl_core.analysis import similarity

    rng = np.random.default_rng(0)
    x, q = l2_normalize(rng.normal(size=(500, 8))), l2_normalize(rng.normal(size=(37, 8)))
    monkeypatch.setattr(similarity, "MAX_SCORE_BYTES", 4 * 500 * 5)  # 5 examples at a time
    np.testing.assert_allclose(similarity.cosine_scores(x, q, "max"), (x @ q.T).max(axis=1), rtol=1e-6)
