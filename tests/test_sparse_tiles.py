"""Sparse grids (stride > tile) are read compacted; the tiles cut must be exactly the dense reader's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from test_raster_grid import ramp, write_raster

from srl_core.raster.grid import make_grid
from srl_core.raster.reader import Normaliser, TileBatch, grid_batches, point_batches
from srl_core.raster.source import open_source
from srl_core.tiles import embed_raster, embed_tiles_at_points


def _tiles_by_cell(items) -> dict[tuple[int, int], np.ndarray]:
    return {(int(r), int(c)): t for item in items if isinstance(item, TileBatch)
            for t, r, c in zip(item.tiles, item.rows, item.cols)}


@pytest.mark.parametrize("strip_rows, chunk_cols", [(1, 100), (2, 3), (50, 100)])
def test_sparse_grid_cuts_the_same_tiles_as_points(tmp_path, strip_rows, chunk_cols) -> None:
    """UInt16 (read in its own type, converted after compaction), tiled 16 px blocks, nodata, a window."""
    data = (ramp(2, 90, 110) % 60000).astype(np.uint16)
    data[:, 24:31, 41:46] = 9  # nodata: 35 of the 49 pixels of tile (1, 2)
    data[:, 43:46, 60:63] = 9  # and 9 of tile (2, 3), which is kept with those pixels filled
    path = write_raster(tmp_path / "in.tif", data, nodata=9, block=16)
    source = open_source(path, 2)
    normalise = Normaliser([1000.0, 2000.0], [500.0, 900.0])
    grid = make_grid(source.width, source.height, tile_size=7, stride=19, window=(3, 5, 100, 80))
    assert grid.stride > grid.tile_size and (grid.rows, grid.cols) == (4, 5)
    got = _tiles_by_cell(grid_batches(source, grid, normalise, 4, 0.5, strip_rows, chunk_cols))
    cells = [(r, c) for r in range(grid.rows) for c in range(grid.cols)]
    origins = np.array([grid.tile_origin(r, c) for r, c in cells])
    want = {cells[i]: t for item in point_batches(source, origins, 7, normalise, 5, 0.5)
            for t, i in zip(item.tiles, item.rows)}
    assert set(got) == set(want) and len(got) == grid.count - 1 and (1, 2) not in got
    for cell, tile in want.items():
        np.testing.assert_array_equal(got[cell], tile)


def test_sparse_grid_honours_the_mask_band(tmp_path) -> None:
    data = ramp(1, 60, 60)
    path = write_raster(tmp_path / "m.tif", data, block=16)
    ds = gdal.Open(path, gdal.GA_Update)
    ds.CreateMaskBand(gdal.GMF_PER_DATASET)
    mask = np.full((60, 60), 255, np.uint8)
    mask[:12, :12] = 0  # tile (0, 0) wholly masked
    ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    ds = None
    source = open_source(path, 1)
    grid = make_grid(60, 60, tile_size=10, stride=25)
    got = _tiles_by_cell(grid_batches(source, grid, Normaliser([0.0], [1.0]), 8, 0.5, 1, 1))
    assert sorted(got) == [(r, c) for r in range(3) for c in range(3)][1:]  # tiles every 25 px: 3 x 3
    np.testing.assert_array_equal(got[(1, 2)][0], data[0, 25:35, 50:60])


CROP = Path(__file__).resolve().parent / "data" / "nc_landsat_crop.tif"  # Landsat 7, 5 bands, nodata border


def _uint16_copy(path: Path, options: list[str]) -> str:
    """The crop as UInt16 DN (nodata 65535) in another layout: strips or tiles, compressed or not."""
    src = gdal.Open(str(CROP))
    data = src.ReadAsArray()
    data = np.where(data == src.GetRasterBand(1).GetNoDataValue(), 65535, data).astype(np.uint16)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), src.RasterXSize, src.RasterYSize, len(data),
                                              gdal.GDT_UInt16, options)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for band, values in enumerate(data, start=1):
        ds.GetRasterBand(band).SetNoDataValue(65535)
        ds.GetRasterBand(band).WriteArray(values)
    ds = None
    return str(path)


@pytest.mark.parametrize("layout", ["as shipped", "lzw strips", "lzw tiles, no block cache", "raw tiles"])
def test_sparse_embeddings_equal_dense_reads_on_real_data(tmp_path, layout) -> None:
    """embed_raster at stride > tile (the sparse reader: one read per tile row) gives exactly the
    embeddings of the same tiles read whole around each centre (the point path), batch by batch."""
    path = {"as shipped": lambda: str(CROP),
            "lzw strips": lambda: _uint16_copy(tmp_path / "s.tif", ["COMPRESS=LZW", "BLOCKYSIZE=1"]),
            "lzw tiles, no block cache": lambda: _uint16_copy(
                tmp_path / "t.tif", ["COMPRESS=LZW", "TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32"]),
            "raw tiles": lambda: _uint16_copy(tmp_path / "r.tif", ["TILED=YES", "INTERLEAVE=BAND"])}[layout]()
    cache = gdal.GetCacheMax()
    if "no block cache" in layout:
        gdal.SetCacheMax(1)  # the reader must fall back to one read per span
    try:
        common = dict(model="tile2vec-l8-rgb-compact", bands=[3, 2, 1], device="cpu", batch_size=1,
                      normalisation="model")
        result = embed_raster(path, tmp_path / "sparse.tif", stride=23, **common)
        ds = gdal.Open(result.path)
        sparse, gt = ds.ReadAsArray(), ds.GetGeoTransform()
        rows, cols = np.mgrid[0:ds.RasterYSize, 0:ds.RasterXSize]
        xy = np.stack([gt[0] + (cols.ravel() + 0.5) * gt[1], gt[3] + (rows.ravel() + 0.5) * gt[5]], axis=1)
        dense, valid = embed_tiles_at_points(path, xy, **common)
    finally:
        gdal.SetCacheMax(cache)
    assert (result.stride, result.width, result.height) == (23, 5, 5) and 0 < valid.sum() < len(valid)
    np.testing.assert_array_equal(sparse.reshape(len(sparse), -1).T, dense)
