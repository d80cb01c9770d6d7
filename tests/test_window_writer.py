"""The embedding writer takes finished windows in any order and writes every pixel once, where it belongs."""

from __future__ import annotations

import numpy as np
from osgeo import gdal

from srl_core.raster.geotiff import create_geotiff
from srl_core.raster.grid import TileGrid
from srl_core.raster.writer import StripWriter
from srl_core.tile_windows import grid_windows


def test_windows_in_shuffled_order_give_the_whole_raster(tmp_path):
    dim, rows, cols, block = 3, 45, 70, 16
    data = np.random.default_rng(0).standard_normal((dim, rows, cols)).astype(np.float32)
    data[:, 5:9, 60:] = np.nan  # nodata survives too
    windows = grid_windows(TileGrid(10, 10, 0, 0, cols, rows), 12)  # not aligned with the 16 px blocks
    assert len(windows) == 4 * 6
    order = np.random.default_rng(1).permutation(len(windows))
    path = str(tmp_path / "out.tif")
    ds = create_geotiff(path, cols, rows, dim, "float32", None, None, float("nan"), block_size=block)
    writer = StripWriter(ds, cols, dim, block, path)
    flushed = []
    writer._flush = lambda: flushed.append(1)  # count the block rows flushed when complete
    for i in order:
        w = windows[i]
        writer.write_window(w.row0, w.col0, data[:, w.row0:w.row1, w.col0:w.col1])
    assert len(flushed) == -(-rows // block)  # each row of blocks once, when its last window arrived
    writer.ds = ds = None
    np.testing.assert_array_equal(gdal.Open(path).ReadAsArray(), data)


def test_windows_share_the_grid_evenly():
    """No sliver windows: 100 tiles at side 64 are two windows of 50; every tile in exactly one window."""
    windows = grid_windows(TileGrid(17, 17, 0, 0, 100, 70), 64)
    assert [(w.row0, w.row1, w.col0, w.col1) for w in windows] == [
        (0, 35, 0, 50), (0, 35, 50, 100), (35, 70, 0, 50), (35, 70, 50, 100)]
    count = np.zeros((70, 100), dtype=int)
    for w in grid_windows(TileGrid(17, 17, 0, 0, 100, 70), 16):
        assert 14 <= w.row1 - w.row0 <= 16 and 14 <= w.col1 - w.col0 <= 16
        count[w.row0:w.row1, w.col0:w.col1] += 1
    assert (count == 1).all()
