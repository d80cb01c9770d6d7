"""Samples and point reads of embedding rasters larger than one window: spread over the whole
raster, and bounded by the cells read rather than by the raster or the area the points span."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_synthetic import GEOTRANSFORM, write_embedding_raster
from product_rasters import alphaearth_int8

from srl_core.raster import blocks
from srl_core.raster.blocks import EmbeddingRasterReader, Window

SIDE, D, TILE = 128, 4, 16
TILE_BYTES = TILE * TILE * D * 4


def halves_raster(path, nodata_rows: int = 0) -> np.ndarray:
    """(D, SIDE, SIDE) embeddings whose top half points along dimension 0 and bottom half along
    dimension 1, written as 16-px tiles; the first ``nodata_rows`` rows are nodata."""
    rng = np.random.default_rng(0)
    data = rng.normal(0, 0.05, (D, SIDE, SIDE)).astype(np.float32)
    data[0, : SIDE // 2] += 3
    data[1, SIDE // 2 :] += 3
    data[:, :nodata_rows] = np.nan
    write_embedding_raster(path, data, block_size=TILE)
    return data


def spy_reads(monkeypatch) -> list[Window]:
    """The windows every reader reads from now on."""
    windows: list[Window] = []
    read = EmbeddingRasterReader.read

    def spy(self, window):
        windows.append(window)
        return read(self, window)

    monkeypatch.setattr(EmbeddingRasterReader, "read", spy)
    return windows


@pytest.mark.parametrize("cell_pixels", [blocks.CELL_PIXELS, TILE * TILE])
def test_sample_of_a_raster_larger_than_a_window_covers_it_in_proportion(tmp_path, monkeypatch, cell_pixels):
    path = tmp_path / "halves.tif"
    halves_raster(path)
    monkeypatch.setattr(blocks, "CELL_PIXELS", cell_pixels)
    reads = spy_reads(monkeypatch)
    with EmbeddingRasterReader(path, max_bytes=TILE_BYTES * 32) as reader:
        assert len(reader.windows()) == 2  # top half, bottom half
        sample = reader.sample(500, seed=3)
        again = reader.sample(500, seed=3)
    assert sample.shape == (500, D) and len(np.unique(sample, axis=0)) == 500
    np.testing.assert_array_equal(sample, again)  # deterministic for a seed
    top_share = (sample[:, 0] > 1.5).mean()
    assert 0.4 < top_share < 0.6  # reading windows until 4n pixels were seen gave 0 or 1
    assert max(w.pixels for w in reads) <= max(cell_pixels, SIDE * SIDE // 2)
    if cell_pixels == TILE * TILE:  # tiles spread over the raster, not all of it
        assert sum(w.pixels for w in reads) <= 2 * 8 * TILE * TILE
        assert {w.yoff for w in reads[:8]} == set(range(0, SIDE, TILE))  # one tile in every tile row


def test_sample_reads_more_cells_when_the_first_are_mostly_nodata(tmp_path, monkeypatch):
    path = tmp_path / "nodata.tif"
    data = halves_raster(path, nodata_rows=SIDE - 2 * TILE)  # only the bottom two tile rows are valid
    monkeypatch.setattr(blocks, "CELL_PIXELS", TILE * TILE)
    with EmbeddingRasterReader(path, max_bytes=TILE_BYTES * 32) as reader:
        sample = reader.sample(500, seed=0)
        everything = reader.sample(10_000, seed=0)
    assert sample.shape == (500, D) and np.isfinite(sample).all()
    valid = data[:, np.isfinite(data).all(axis=0)]
    assert len(everything) == valid.shape[1]  # more than there are: every valid pixel once
    np.testing.assert_array_equal(np.sort(everything[:, 2]), np.sort(valid[2]))


def test_a_sample_holds_a_compact_class_on_4_percent_of_the_raster(tmp_path, monkeypatch):
    """Cells enough for 4 n pixels covered a few parts of a raster larger than a window: a lake on 4 % of
    it was missing from most samples, its class merged into another (found by an audit). A sample reads
    at least SAMPLE_READ_BYTES of the raster, here all of it: the lake's share comes out right."""
    rng = np.random.default_rng(1)
    data = rng.normal(0, 0.05, (D, SIDE, SIDE)).astype(np.float32)
    data[0] += 3
    data[:, 80:106, 40:66] = 0.0  # the lake: 26 x 26 px, 4.1 % of the raster
    data[2, 80:106, 40:66] = 5.0
    path = tmp_path / "lake.tif"
    write_embedding_raster(path, data, block_size=TILE)
    monkeypatch.setattr(blocks, "CELL_PIXELS", TILE * TILE)

    def lake_shares(read_bytes: int) -> list[float]:
        with EmbeddingRasterReader(path, max_bytes=TILE_BYTES * 8) as reader:
            return [float((reader.sample(300, seed=seed, min_read_bytes=read_bytes)[:, 2] > 2.5).mean())
                    for seed in range(20)]

    assert min(lake_shares(0)) == 0.0  # the cells alone: some samples without the lake
    assert all(0.01 < share < 0.08 for share in lake_shares(blocks.SAMPLE_READ_BYTES))  # as the fits read


def test_sample_at_far_apart_points_reads_small_windows_and_the_same_values(tmp_path, monkeypatch):
    path = tmp_path / "halves.tif"
    data = halves_raster(path, nodata_rows=1)
    cols = np.array([0, SIDE - 1, 0, SIDE - 1, 40, 41, 47, 5])
    rows = np.array([0, SIDE - 1, SIDE - 1, 5, 40, 42, 47, 1])
    gt = GEOTRANSFORM
    xy = np.column_stack([gt[0] + (cols + 0.5) * gt[1], gt[3] + (rows + 0.5) * gt[5]])
    xy = np.vstack([xy, [[gt[0] - 5, gt[3] + 5]]])  # outside the raster: NaN
    reads = spy_reads(monkeypatch)
    with EmbeddingRasterReader(path, max_bytes=TILE_BYTES) as reader:
        values = reader.sample_at(xy)
    expect = np.vstack([data[:, rows, cols].T, np.full((1, D), np.nan, np.float32)])
    np.testing.assert_array_equal(values, expect)
    assert max(w.pixels for w in reads) <= TILE * TILE  # the bounding window was the whole raster
    assert len(reads) == 5  # one per tile holding points: (0, 0) with (5, 1), (40, 40) to (47, 47)


def test_sample_at_a_bottom_up_raster_matches_the_whole_read(tmp_path):
    path, _, _ = alphaearth_int8(tmp_path / "bottom.tif", bottom_up=True)
    with EmbeddingRasterReader(path, max_bytes=20 * 2 * 64 * 4) as reader:
        info = reader.info
        whole = reader.read(Window(0, 0, info.width, info.height))
        cols, rows = np.meshgrid(np.arange(info.width), np.arange(info.height))
        cols, rows = cols.ravel(), rows.ravel()
        values = reader.sample_at(reader.pixel_centres(cols, rows))
    expect = whole.data[:, rows, cols].T
    expect[~whole.valid[rows, cols]] = np.nan
    np.testing.assert_array_equal(values, expect)
