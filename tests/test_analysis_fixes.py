"""Fixed defects of the analyses: approximate top-k, spatial folds at repeated sites, one output
path given twice, masks of rasters SRL did not make, and local frames across the antimeridian."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from analysis_synthetic import clustered_embeddings, utm31_wkt, write_embedding_points, write_embedding_raster
from conftest import SYNTHETIC_MODEL_ID, _crs_wkt
from osgeo import gdal
from product_rasters import ORIGIN_X, PIXEL, TOP_Y, H, W, unit_vectors, write_raster

from srl_core.analysis import api
from srl_core.analysis.location_features import LocalFrame, choose_scales
from srl_core.analysis.search import SimilarityIndex, faiss_available, recall_at_k
from srl_core.analysis.similarity import Query, top_k_points
from srl_core.analysis.validation import cross_validate, fold_indices
from srl_core.errors import InputError, OutputError
from srl_core.location_scale import extent_km
from srl_core.raster.blocks import EmbeddingRasterReader, Window
from srl_core.vector.points import read_embedding_points, write_points

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")


def _clustered(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(100, d))
    return (centres[rng.integers(0, 100, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)


# -- 1. approximate top-k returns k results, near the exact ones --------------------------------


@needs_faiss
def test_approximate_search_returns_k_results_near_exact_for_a_large_k():
    """The probe count calibrated for 10 results found a fraction of 1000 and marked the rest -1."""
    x = _clustered(20_000)
    queries = _clustered(50, seed=1)
    approx, exact = SimilarityIndex(x, "approximate"), SimilarityIndex(x, "exact")
    for k in (1000, 4000):  # calibrated for k; a large share of the points: every list (exact)
        found = approx.search(queries, k)[1]
        assert found.shape == (50, k) and (found >= 0).all()
        assert recall_at_k(found, exact.search(queries, k)[1]) >= 0.95
    assert approx.approximate.probes_for(4000) == (approx.approximate.nlist, 1.0)


@needs_faiss
def test_top_k_points_approximate_writes_k_points(tmp_path):
    x = _clustered(20_000)
    rng = np.random.default_rng(2)
    path = str(tmp_path / "p.gpkg")
    write_points(path, rng.uniform(0, 1, (len(x), 2)), _crs_wkt(4326), {}, embeddings=x,
                 model_id=SYNTHETIC_MODEL_ID)
    query = Query().add_vectors(x[:1], SYNTHETIC_MODEL_ID)
    out, rows, scores = top_k_points(path, query, 1500, str(tmp_path / "top.gpkg"), method="approximate")
    exact_rows = top_k_points(path, query, 1500, str(tmp_path / "exact.gpkg"), method="exact")[1]
    assert len(read_embedding_points(out)[0].fids) == 1500 and len(rows) == 1500
    assert len(np.intersect1d(rows, exact_rows)) >= 0.9 * 1500  # one query; 0.98 on average
    with pytest.raises(InputError, match="only 20000 embeddings"):
        top_k_points(path, query, 20_001, str(tmp_path / "more.gpkg"), method="approximate")


# -- 2. spatial folds when points repeat at fewer sites than folds -------------------------------


def _mean_of_train(y: np.ndarray):
    return lambda train, test: np.full(len(test), y[train].mean())


def test_spatial_folds_shrink_to_the_distinct_locations_and_say_so():
    sites = np.array([[0.0, 0.0], [500, 0], [0, 700], [1000, 1000]])
    xy = np.repeat(sites, 3, axis=0)
    y = np.arange(len(xy), dtype=float)
    score, pred = cross_validate(_mean_of_train(y), xy, y, "spatial", n_folds=5)
    assert score.folds == 4 and np.isfinite(pred).all()
    assert "not 5: the points are at only 4 distinct locations" in score.describe()
    random = cross_validate(_mean_of_train(y), xy, y, "random", n_folds=5)[0]  # whole sites per fold too
    assert random.folds == 4 and "only 4 distinct locations" in random.note
    with pytest.raises(InputError, match="2 or more distinct locations.*cross-validation folds"):
        fold_indices(np.zeros((6, 2)), "spatial", 3)


# -- 3. one path for both similarity outputs -------------------------------------------------------


def test_similarity_refuses_one_path_for_both_outputs_before_writing(embedding_points, tmp_path):
    query = Query().add_points(str(embedding_points), [1])
    out = tmp_path / "same.gpkg"
    with pytest.raises(OutputError, match="Two outputs of this run are the same file"):
        api.similarity(str(embedding_points), query, str(out), top_k=3, top_k_output=str(out))
    assert not out.exists()


def _must_not_run(*args, **kwargs):
    raise AssertionError("the work began before the output's name was checked")


def test_an_output_named_for_the_other_kind_is_refused_before_any_work(embedding_points, tmp_path,
                                                                         monkeypatch):
    """A raster's analysis writes a GeoTIFF and a point layer's a GeoPackage: a name saying otherwise was
    refused only when the result was written, after the k-means or colour-view fit of minutes."""
    from srl_core.location import embed_points_file
    from srl_core.tile_points import embed_tile_points_file

    data, _ = clustered_embeddings(2, 4, 12, 12)
    raster = write_embedding_raster(tmp_path / "emb.tif", data)
    for name in ("fit_kmeans_raster", "fit_rgb_view_raster", "similarity_raster", "cluster_points",
                 "rgb_view_points", "similarity_points", "top_k_raster", "top_k_points"):
        monkeypatch.setattr(api, name, _must_not_run)
    query = Query().add_points(str(embedding_points), [1])
    tif, gpkg = str(tmp_path / "out.tif"), str(tmp_path / "out.gpkg")
    for run in (lambda: api.cluster(raster, gpkg), lambda: api.rgb_view(raster, gpkg),
                lambda: api.similarity(raster, query, gpkg)):
        with pytest.raises(OutputError, match="must end in .tif or .tiff"):
            run()
    points = str(embedding_points)
    for run in (lambda: api.cluster(points, tif), lambda: api.rgb_view(points, tif),
                lambda: api.similarity(points, query, tif),
                lambda: api.similarity(raster, query, None, top_k=3, top_k_output=tif),
                lambda: embed_points_file(str(tmp_path / "missing.gpkg"), tif, "local"),
                lambda: embed_tile_points_file(raster, str(tmp_path / "missing.gpkg"), tif, "bandstats")):
        with pytest.raises(OutputError, match=r"written as GeoPackage \(.gpkg\)"):
            run()
    assert not list(tmp_path.glob("out.*"))


# -- 4. GDAL mask bands of rasters SRL did not make ------------------------------------------------


def _masked_raster(path, *, bottom_up: bool = False) -> tuple[str, np.ndarray]:
    """4 float bands, no nodata value, the 3 western columns masked by an internal per-dataset mask."""
    write_raster(path, unit_vectors(4).astype(np.float32), bottom_up=bottom_up)
    keep = np.ones((H, W), np.uint8) * 255
    keep[:, :3] = 0
    gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", "YES")
    try:
        ds = gdal.Open(str(path), gdal.GA_Update)
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
        ds.GetRasterBand(1).GetMaskBand().WriteArray(keep[::-1] if bottom_up else keep)
        ds = None
    finally:
        gdal.SetConfigOption("GDAL_TIFF_INTERNAL_MASK", None)
    return str(path), keep > 0


def _alpha_raster(path) -> tuple[str, np.ndarray]:
    """3 UInt16 bands and an alpha band (GDAL's mask of RGBA-like rasters), transparent over 3 columns."""
    data = (unit_vectors(3) * 1000 + 1000).astype(np.uint16)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), W, H, 4, gdal.GDT_UInt16)
    ds.SetGeoTransform([ORIGIN_X, PIXEL, 0, TOP_Y, 0, -PIXEL])
    ds.SetProjection(utm31_wkt())
    alpha = np.full((H, W), 65535, np.uint16)
    alpha[:, :3] = 0
    for b, values in enumerate([*data, alpha]):
        ds.GetRasterBand(b + 1).WriteArray(values)
    ds.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds = None
    return str(path), alpha > 0


def test_mask_and_alpha_bands_mark_pixels_invalid(tmp_path):
    for name, (path, keep), size in [
        ("mask", _masked_raster(tmp_path / "mask.tif"), 4),
        ("bottom-up mask", _masked_raster(tmp_path / "flipped.tif", bottom_up=True), 4),
        ("alpha", _alpha_raster(tmp_path / "alpha.tif"), 3),  # an alpha band is no dimension
    ]:
        source = api.open_input(path, bands_as_embeddings=True).source
        with EmbeddingRasterReader(source) as reader:
            block = reader.read(Window(0, 0, W, H))
        assert reader.info.size == size, name
        np.testing.assert_array_equal(block.valid, keep, err_msg=name)


def test_masked_pixels_get_no_class_and_no_colour(tmp_path):
    path, keep = _masked_raster(tmp_path / "mask.tif")
    data = api.open_input(path, bands_as_embeddings=True)
    api.cluster(data, str(tmp_path / "classes.tif"), n_clusters=2)
    api.rgb_view(data, str(tmp_path / "rgb.tif"))
    classes = gdal.Open(str(tmp_path / "classes.tif")).ReadAsArray()
    alpha = gdal.Open(str(tmp_path / "rgb.tif")).ReadAsArray()[3]
    assert (classes[~keep] == 0).all() and (classes[keep] > 0).all()
    assert (alpha[~keep] == 0).all() and (alpha[keep] == 255).all()


# -- 5. local frames across the antimeridian ---------------------------------------------------------


def _across_antimeridian() -> tuple[np.ndarray, np.ndarray]:
    """60 points within 0.2 degrees of (180, 0), and the same cluster moved to (0, 0)."""
    rng = np.random.default_rng(0)
    lon = rng.uniform(179.8, 180.2, 60)
    lat = rng.uniform(-0.2, 0.2, 60)
    return np.column_stack([np.where(lon > 180, lon - 360, lon), lat]), np.column_stack([lon - 180, lat])


def test_local_frame_of_points_across_the_antimeridian_is_centred_among_them():
    across, control = _across_antimeridian()
    frame = LocalFrame(across)
    assert abs(abs(frame.lon0) - 180) < 0.1
    assert extent_km(across) == pytest.approx(extent_km(control), rel=1e-3)
    assert extent_km(across) < 50
    scales, control_scales = choose_scales(frame.to_metres(across)), choose_scales(
        LocalFrame(control).to_metres(control))
    assert scales.max_scale_m == pytest.approx(control_scales.max_scale_m, rel=1e-3)
    # back to longitudes that run on across 180, as the metres do
    lon = frame.to_lonlat(frame.to_metres(across))[:, 0]
    assert np.ptp(lon) < 0.5
    np.testing.assert_allclose((lon + 180) % 360 - 180, across[:, 0], atol=1e-6)


def test_too_few_distinct_locations_names_no_particular_tool():
    with pytest.raises(InputError, match="at least 3 points at distinct locations") as info:
        choose_scales(np.repeat([[0.0, 0.0], [10.0, 0.0]], 3, axis=0))
    assert "Interpolation" not in str(info.value)


# -- 6. a damaged embedding raster is the input's fault ------------------------------------------------


def test_a_truncated_embedding_raster_is_an_input_error_naming_it(tmp_path):
    """A copy cut short (an interrupted copy) failed every analysis as "Internal error ... a bug in SRL,
    not in your data"; the tile engine already said which file it could not read."""
    data, _ = clustered_embeddings(3, 8, 64, 64)
    whole = Path(write_embedding_raster(tmp_path / "whole.tif", data))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    with pytest.raises(InputError, match="cut.tif.*truncated or damaged"):
        api.cluster(str(cut), str(tmp_path / "classes.tif"), n_clusters=3)


def test_replicates_a_centimetre_apart_are_one_site_for_the_scales():
    """Half the sites sampled again 1 cm away set the finest length scale to 2 cm: embeddings of sites
    100 m apart came out nearly orthogonal. Only exact copies were merged."""
    rng = np.random.default_rng(0)
    sites = rng.uniform(0, 4000, size=(150, 2))
    again = np.vstack([sites, sites[:80] + rng.normal(scale=0.01, size=(80, 2))])
    assert choose_scales(again).spacing_m == pytest.approx(choose_scales(sites).spacing_m, rel=1e-3)
    metres_apart = np.vstack([sites, sites[:80] + [3.0, 0.0]])  # 3 m is another place: kept
    assert choose_scales(metres_apart).spacing_m < 4.0


def test_point_copies_of_embeddings_keep_how_they_were_made(tmp_path):
    """Classes, colours, similarity and top-k of a point layer copy its embeddings, but dropped how they
    were made (bands, standardisation, tile size): a model fitted on a copy then applied to 33 px tiles
    said nothing of the 17 px it came from."""
    from osgeo import ogr

    from srl_core.analysis import api
    from srl_core.analysis.similarity import Query
    from srl_core.names import NORMALISATION_KEY, TILE_SIZE_KEY
    from srl_core.vector.points import layer_metadata

    emb = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    path, _ = write_embedding_points(tmp_path / "p.gpkg", emb)
    ds = ogr.Open(path, 1)
    ds.GetLayer(0).SetMetadataItem(TILE_SIZE_KEY, "17")
    ds.GetLayer(0).SetMetadataItem(NORMALISATION_KEY, "raster")
    ds = None
    outputs = [api.cluster(path, str(tmp_path / "c.gpkg"), n_clusters=2).output,
               api.rgb_view(path, str(tmp_path / "r.gpkg")).output,
               api.similarity(path, Query().add_points(path, [1]), str(tmp_path / "s.gpkg"), top_k=3,
                              top_k_output=str(tmp_path / "t.gpkg")).output, str(tmp_path / "t.gpkg")]
    for output in outputs:
        metadata = layer_metadata(output)
        assert (metadata.get(TILE_SIZE_KEY), metadata.get(NORMALISATION_KEY)) == ("17", "raster"), output
