"""Tiles sampled at points where some run off the raster: the analyses run on the points that have an
embedding, give the others no value (NULL), keep every point, and say how many were left out.

They used to refuse the whole layer ("N of the embeddings have missing (NaN) values; remove those rows
first"), so the layer `sample-tiles` had just written could not be analysed without a filter step.
Known answer: each analysis of such a layer equals the same analysis of the layer filtered by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr

from srl_core.analysis import api
from srl_core.analysis.similarity import Query
from srl_core.cli import main
from srl_core.errors import InputError
from srl_core.names import VALID_FIELD
from srl_core.vector.points import read_embedding_points, read_points, write_points

RASTER = str(Path(__file__).resolve().parent.parent / "resources" / "sample_data" / "nc_landsat7_2000.tif")
MODEL = "tile2vec-l8-rgb-compact"
OFF_RASTER = 7  # of the 40 points sampled, those whose tile runs off the raster (others may be on nodata)


@pytest.fixture(scope="module")
def sampled(tmp_path_factory) -> tuple[Path, Path]:
    """(tiles sampled at 40 points of the bundled scene, 7 of them off it; the layer without the points that
    have no embedding)."""
    tmp = tmp_path_factory.mktemp("sampled")
    ds = gdal.Open(RASTER)
    gt, wkt, width, height = ds.GetGeoTransform(), ds.GetProjection(), ds.RasterXSize, ds.RasterYSize
    rng = np.random.default_rng(3)
    inside = np.column_stack([rng.uniform(20, width - 20, 33), rng.uniform(20, height - 20, 33)])
    outside = np.column_stack([rng.uniform(width + 50, width + 500, OFF_RASTER), rng.uniform(0, height, 7)])
    cols_rows = np.concatenate([inside[:10], outside[:4], inside[10:], outside[4:]])
    xy = np.column_stack([gt[0] + cols_rows[:, 0] * gt[1], gt[3] + cols_rows[:, 1] * gt[5]])
    write_points(tmp / "sites.gpkg", xy, wkt, {"site": np.arange(len(xy), dtype=np.int32)})
    out = tmp / "tiles.gpkg"
    assert main(["sample-tiles", RASTER, str(tmp / "sites.gpkg"), str(out), "--model", MODEL,
                 "--bands", "1,2,3", "--device", "cpu"]) == 0
    table, emb, model_id = read_embedding_points(out)
    valid = np.asarray(table.attributes[VALID_FIELD]) == 1
    assert OFF_RASTER <= (~valid).sum() < 10 and np.isnan(emb[~valid]).all()
    filtered = tmp / "filtered.gpkg"  # what an analyst had to make by hand before
    write_points(filtered, table.xy[valid], table.crs_wkt,
                 {name: np.asarray(col)[valid] for name, col in table.attributes.items()},
                 embeddings=emb[valid], model_id=model_id, fids=table.fids[valid])
    return out, filtered


def _field(path: Path, name: str) -> tuple[list, int]:
    """(values of field ``name`` in feature order, its OGR type)."""
    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    ftype = layer.GetLayerDefn().GetFieldDefn(layer.GetLayerDefn().GetFieldIndex(name)).GetType()
    return [f.GetField(name) for f in layer], ftype


def _valid(path: Path) -> np.ndarray:
    return np.asarray(read_points(str(path)).attributes[VALID_FIELD]) == 1


def _left_out_said(warnings: list[str], tiles: Path) -> bool:
    missing = int((~_valid(tiles)).sum())
    return any(f"{missing} of the 40 points of tiles.gpkg have no embedding" in w for w in warnings)


def test_kmeans_classes_the_embedded_points_and_leaves_the_others_null(sampled, tmp_path):
    tiles, filtered = sampled
    result = api.cluster(str(tiles), str(tmp_path / "c.gpkg"), n_clusters=3)
    by_hand = api.cluster(str(filtered), str(tmp_path / "f.gpkg"), n_clusters=3)
    classes, ftype = _field(tmp_path / "c.gpkg", "cluster")
    valid = _valid(tiles)
    assert len(classes) == 40 and ftype == ogr.OFTInteger  # every point kept; an Integer field as before
    assert all(c is None for c, v in zip(classes, valid) if not v)
    assert [c for c, v in zip(classes, valid) if v] == _field(tmp_path / "f.gpkg", "cluster")[0]
    assert np.ma.getmaskarray(result.labels).tolist() == (~valid).tolist()
    assert _left_out_said(result.warnings, tiles) and not _left_out_said(by_hand.warnings, tiles)
    ds = ogr.Open(str(tmp_path / "c.gpkg"))  # whoever opens the layer later is told too
    assert "have no embedding" in ds.GetLayer(0).GetMetadataItem("SRL_QUALITY_WARNING")


def test_hdbscan_and_a_saved_model_leave_the_same_points_null(sampled, tmp_path):
    tiles, filtered = sampled
    result = api.cluster(str(tiles), str(tmp_path / "h.gpkg"), method="hdbscan", min_cluster_size=3)
    api.cluster(str(filtered), str(tmp_path / "hf.gpkg"), method="hdbscan", min_cluster_size=3)
    valid = _valid(tiles)
    classes = _field(tmp_path / "h.gpkg", "cluster")[0]
    assert [c for c, v in zip(classes, valid) if v] == _field(tmp_path / "hf.gpkg", "cluster")[0]
    assert result.noise == sum(c == 0 for c in classes)  # noise counted among embedded points only
    model = api.cluster(str(filtered), str(tmp_path / "k.gpkg"), n_clusters=2).model
    applied = api.apply_clusters(model, str(tiles), str(tmp_path / "a.gpkg"))
    assert _left_out_said(applied.warnings, tiles)
    assert [c is None for c in _field(tmp_path / "a.gpkg", "cluster")[0]] == (~valid).tolist()


def test_similarity_and_top_k_score_only_embedded_points(sampled, tmp_path):
    tiles, filtered = sampled
    valid = _valid(tiles)
    example_fid = int(read_points(str(tiles)).fids[np.flatnonzero(valid)[5]])
    query = Query().add_points(str(tiles), [example_fid])
    result = api.similarity(str(tiles), query, str(tmp_path / "s.gpkg"), top_k=20,
                            top_k_output=str(tmp_path / "top.gpkg"))
    api.similarity(str(filtered), Query().add_points(str(filtered), [example_fid]), str(tmp_path / "sf.gpkg"),
                   top_k=20, top_k_output=str(tmp_path / "topf.gpkg"))
    scores = _field(tmp_path / "s.gpkg", "similarity")[0]
    assert all(s is None for s, v in zip(scores, valid) if not v)
    np.testing.assert_allclose([s for s, v in zip(scores, valid) if v],
                               _field(tmp_path / "sf.gpkg", "similarity")[0], rtol=1e-6)
    assert max(s for s in scores if s is not None) == pytest.approx(1.0, abs=1e-5)  # the example itself
    top, top_by_hand = read_points(str(tmp_path / "top.gpkg")), read_points(str(tmp_path / "topf.gpkg"))
    assert list(top.attributes["source_fid"]) == list(top_by_hand.attributes["source_fid"])  # none off it
    np.testing.assert_allclose(_field(tmp_path / "top.gpkg", "score")[0],
                               _field(tmp_path / "topf.gpkg", "score")[0], rtol=1e-6)
    assert _left_out_said(result.warnings, tiles)


def test_a_point_without_embedding_is_refused_as_an_example(sampled):
    tiles, _ = sampled
    table = read_points(str(tiles))
    empty_fid = int(table.fids[~_valid(tiles)][0])
    with pytest.raises(InputError, match=f"Feature {empty_fid} of .* has no embedding"):
        Query().add_points(str(tiles), [empty_fid])


def test_colour_view_of_points_leaves_points_without_embedding_uncoloured(sampled, tmp_path):
    tiles, filtered = sampled
    result = api.rgb_view(str(tiles), str(tmp_path / "v.gpkg"))
    api.rgb_view(str(filtered), str(tmp_path / "vf.gpkg"))
    valid = _valid(tiles)
    colours = _field(tmp_path / "v.gpkg", "colour")[0]
    assert [c is None for c in colours] == (~valid).tolist()
    assert [c for c, v in zip(colours, valid) if v] == _field(tmp_path / "vf.gpkg", "colour")[0]
    assert _left_out_said(result.warnings, tiles)


def test_a_layer_where_no_point_has_an_embedding_is_refused(sampled, tmp_path):
    tiles, _ = sampled
    table, emb, model_id = read_embedding_points(tiles)
    empty = tmp_path / "empty.gpkg"
    write_points(empty, table.xy, table.crs_wkt, embeddings=np.full_like(emb, np.nan), model_id=model_id)
    with pytest.raises(InputError, match="None of the 40 points of .* has an embedding"):
        api.cluster(str(empty), str(tmp_path / "c.gpkg"), n_clusters=2)
    assert not (tmp_path / "c.gpkg").exists()


def test_processing_clusters_a_sampled_layer_as_written(sampled, srl_provider, tmp_path):
    """The graphical-model chain sample tiles -> cluster needs no filter step in between."""
    import processing

    tiles, _ = sampled
    out = tmp_path / "pc.gpkg"
    result = processing.run("srl:cluster", {"INPUT": str(tiles), "K": 3, "OUTPUT_POINTS": str(out)})
    assert result["CLUSTERS"] == 3
    classes = _field(out, "cluster")[0]
    assert [c is None for c in classes] == (~_valid(tiles)).tolist()
