"""The analysis sub-commands of ``python -m srl_core`` end to end on small synthetic data."""

import numpy as np
from analysis_synthetic import (
    GEOTRANSFORM,
    clustered_embeddings,
    utm31_wkt,
    write_embedding_points,
    write_embedding_raster,
)
from osgeo import gdal

from srl_core.cli import main
from srl_core.vector.points import read_embedding_points, write_points


def test_raster_commands(tmp_path, capsys):
    data, labels = clustered_embeddings(3, 6, 20, 30, seed=1)
    raster = write_embedding_raster(tmp_path / "e.tif", data, model_id="m1")
    model = str(tmp_path / "km.safetensors")
    assert main(["cluster", raster, str(tmp_path / "c.tif"), "--save-model", model, "--sample", "400"]) == 0
    assert "Suggested k = 3" in capsys.readouterr().out
    assert main(["cluster", raster, str(tmp_path / "c0.tif"), "-k", "0", "--sample", "400"]) == 0
    assert "Suggested k = 3" in capsys.readouterr().out  # 0 means suggested, as in the dialog
    assert main(["apply-clusters", model, raster, str(tmp_path / "c2.tif")]) == 0
    np.testing.assert_array_equal(
        gdal.Open(str(tmp_path / "c.tif")).ReadAsArray(), gdal.Open(str(tmp_path / "c2.tif")).ReadAsArray()
    )
    x, y = GEOTRANSFORM[0] + 25, GEOTRANSFORM[3] - 55
    assert main(["similarity", raster, str(tmp_path / "s.tif"), "--pixel", str(x), str(y)]) == 0
    sim = gdal.Open(str(tmp_path / "s.tif")).ReadAsArray()
    assert sim[labels == labels[5, 2]].min() > 0.99
    assert main(["top-k", raster, str(tmp_path / "t.gpkg"), "-k", "5", "--pixel", str(x), str(y)]) == 0
    assert len(read_embedding_points(tmp_path / "t.gpkg")[0]) == 5
    assert main(["rgb-view", raster, str(tmp_path / "rgb.tif")]) == 0
    assert gdal.Open(str(tmp_path / "rgb.tif")).RasterCount == 4
    # a query outside the raster is a clear error, exit code 2, nothing written
    assert main(["similarity", raster, str(tmp_path / "bad.tif"), "--pixel", "0", "0"]) == 2
    assert "outside" in capsys.readouterr().err and not (tmp_path / "bad.tif").exists()


def test_point_commands(tmp_path, capsys):
    rng = np.random.default_rng(0)
    emb = np.repeat(np.eye(4, dtype=np.float32) * 5, 15, axis=0) + rng.normal(scale=0.05, size=(60, 4))
    pts, _ = write_embedding_points(tmp_path / "p.gpkg", emb.astype(np.float32))
    assert main(["cluster", pts, str(tmp_path / "k.gpkg"), "-k", "4"]) == 0
    assert main(["cluster", pts, str(tmp_path / "h.gpkg"), "--method", "hdbscan"]) == 0
    assert "HDBSCAN found 4 clusters" in capsys.readouterr().out
    # a model HDBSCAN cannot save was asked for: refused before any work (exit 0, nothing saved, unsaid)
    assert main(["cluster", pts, str(tmp_path / "h2.gpkg"), "--method", "hdbscan",
                 "--save-model", str(tmp_path / "h.safetensors")]) == 2
    assert "Only k-means models can be saved" in capsys.readouterr().err
    assert not (tmp_path / "h2.gpkg").exists() and not (tmp_path / "h.safetensors").exists()
    table = read_embedding_points(pts)[0]
    fid = str(int(table.fids[0]))
    assert main(["similarity", pts, str(tmp_path / "s.gpkg"), "--fid", fid]) == 0
    assert main(["top-k", pts, str(tmp_path / "t.gpkg"), "-k", "15", "--fid", fid, "--method", "exact"]) == 0
    top = read_embedding_points(tmp_path / "t.gpkg")[0]
    assert sorted(top.attributes["source_fid"]) == sorted(table.fids[:15])
    assert main(["rgb-view", pts, str(tmp_path / "rgb.gpkg")]) == 0

    xy = np.column_stack([rng.uniform(500000, 505000, 40), rng.uniform(4000000, 4005000, 40)])
    write_points(str(tmp_path / "v.gpkg"), xy, utm31_wkt(), {"v": xy[:, 0] / 1000.0})
    args = ["interpolate", str(tmp_path / "v.gpkg"), "v", str(tmp_path / "pr.tif"), str(tmp_path / "un.tif")]
    assert main([*args, "--resolution", "500", "--members", "2"]) == 0
    out = capsys.readouterr().out
    assert "length scales" in out and "spatially blocked folds" in out


def test_top_k_of_zero_and_a_missing_polygon_layer_are_named(tmp_path, capsys):
    """'-k 0' was answered "Give an output for the similarity", and a missing polygon layer "Point file
    not found" (found by an audit)."""
    rng = np.random.default_rng(0)
    pts, _ = write_embedding_points(tmp_path / "p.gpkg", rng.normal(size=(20, 4)).astype(np.float32))
    fid = str(int(read_embedding_points(pts)[0].fids[0]))
    assert main(["top-k", pts, str(tmp_path / "t.gpkg"), "-k", "0", "--fid", fid]) == 2
    assert "number of most similar results must be at least 1, got 0" in capsys.readouterr().err
    raster = write_embedding_raster(tmp_path / "e.tif", rng.normal(size=(4, 8, 8)).astype(np.float32))
    assert main(["similarity", str(raster), str(tmp_path / "s.tif"), "--polygon-layer",
                 str(tmp_path / "missing.gpkg")]) == 2
    assert "Vector file not found" in capsys.readouterr().err
