"""Tile grids, extents, opening rasters, and the streaming reader (known answers on synthetic rasters)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from osgeo import gdal, osr

from srl_core.errors import InputError
from srl_core.raster import reader
from srl_core.raster.grid import extent_to_window, make_grid, tile_origins_centred_at, world_to_pixel
from srl_core.raster.reader import (
    Normaliser,
    Prefetcher,
    StripDone,
    TileBatch,
    grid_batches,
    invalid_fractions,
    plan_windows,
    point_batches,
    read_window,
)
from srl_core.raster.source import map_bands, open_source, parse_bands

UTM33 = 32633
GT = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)


def write_raster(path: Path, data: np.ndarray, geotransform: Optional[tuple] = GT,
                 epsg: Optional[int] = UTM33, nodata: Optional[float] = None, block: int = 0) -> str:
    """A GeoTIFF of ``data`` (bands, rows, cols); ``block`` > 0 makes it tiled."""
    gtype = {np.dtype("uint8"): gdal.GDT_Byte, np.dtype("uint16"): gdal.GDT_UInt16,
             np.dtype("float32"): gdal.GDT_Float32}[data.dtype]
    options = ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}"] if block else []
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0], gtype,
                                              options)
    if geotransform is not None:
        ds.SetGeoTransform(geotransform)
    if epsg is not None:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    for i in range(data.shape[0]):
        band = ds.GetRasterBand(i + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(data[i])
    ds = None
    return str(path)


def ramp(bands: int, rows: int, cols: int) -> np.ndarray:
    """Pixel values that identify their position: band*1e6 + row*1000 + col."""
    b, r, c = np.meshgrid(np.arange(bands), np.arange(rows), np.arange(cols), indexing="ij")
    return (b * 1_000_000 + r * 1000 + c).astype(np.float32)


def test_grid_counts_and_output_geotransform() -> None:
    grid = make_grid(100, 70, tile_size=20, stride=10)
    assert (grid.cols, grid.rows) == (9, 6)
    assert grid.tile_origin(2, 3) == (30, 20)
    gt = grid.output_geotransform(GT)
    # Output pixel (0, 0) is centred on the first tile's centre (10, 10) and is one stride wide.
    assert gt == pytest.approx((500000.0 + 5 * 10, 100.0, 0.0, 4000000.0 - 5 * 10, 0.0, -100.0))
    no_overlap = make_grid(100, 70, tile_size=20).output_geotransform(GT)
    assert no_overlap == pytest.approx((500000.0, 200.0, 0.0, 4000000.0, 0.0, -200.0))


def test_grid_with_window_and_gaps() -> None:
    grid = make_grid(1000, 1000, tile_size=8, stride=12, window=(100, 50, 40, 30))
    assert (grid.col_off, grid.row_off, grid.cols, grid.rows) == (100, 50, 3, 2)
    assert grid.rows_window(1, 2, 1, 3) == (112, 62, 20, 8)


@pytest.mark.parametrize("tile,stride", [(0, None), (8, 0), (8.5, None)])
def test_grid_rejects_bad_sizes(tile, stride) -> None:
    with pytest.raises(InputError):
        make_grid(100, 100, tile, stride)


def test_raster_smaller_than_a_tile() -> None:
    with pytest.raises(InputError, match="smaller than one 64 x 64"):
        make_grid(50, 200, 64)
    with pytest.raises(InputError, match="inside the extent"):
        make_grid(500, 500, 64, window=(0, 0, 10, 10))


def test_extent_to_window_snaps_to_pixel_centres_and_clips() -> None:
    # Pixel i spans x = 500000 + 10 i .. +10; centres at +5.
    assert extent_to_window(GT, 100, 100, (500020, 3999500, 500100, 4000000)) == (2, 0, 8, 50)
    assert extent_to_window(GT, 100, 100, (499000, 3990000, 600000, 4100000)) == (0, 0, 100, 100)
    assert extent_to_window(GT, 100, 100, (500021, 3999500, 500104, 4000000))[:3] == (2, 0, 8)
    with pytest.raises(InputError, match=r"does not overlap the raster, which spans x 500000 to 501000 and y "
                                         r"3\.999e\+06 to 4e\+06: give the extent in the raster's CRS"):
        extent_to_window(GT, 100, 100, (0, 0, 10, 10))  # degrees for a raster in metres, say
    with pytest.raises(InputError, match="xmin < xmax"):
        extent_to_window(GT, 100, 100, (5, 0, 1, 10))
    with pytest.raises(InputError, match="rotated"):
        extent_to_window((0, 1, 0.1, 0, 0.1, -1), 100, 100, (0, -5, 5, 0))


def test_points_to_tile_origins() -> None:
    xy = np.array([[500000 + 10 * 20.0, 4000000 - 10 * 30.0], [500000 + 10 * 20.4, 4000000 - 10 * 29.6]])
    assert world_to_pixel(GT, xy) == pytest.approx(np.array([[20, 30], [20.4, 29.6]]))
    # A 10 px tile centred at pixel corner (20, 30) starts at (15, 25).
    assert tile_origins_centred_at(GT, xy, 10).tolist() == [[15, 25], [15, 25]]


def test_invalid_fractions_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    invalid = rng.random((40, 50)) < 0.3
    ys, xs = rng.integers(0, 30, 20), rng.integers(0, 40, 20)
    expected = [invalid[y:y + 10, x:x + 10].mean() for y, x in zip(ys, xs)]
    assert invalid_fractions(invalid, ys, xs, 10) == pytest.approx(expected)


def test_band_mapping() -> None:
    assert map_bands(3, 3, None, "r") == (1, 2, 3)
    assert map_bands(6, 3, [4, 3, 2], "r") == (4, 3, 2)
    assert parse_bands("4, 3,2") == [4, 3, 2]
    with pytest.raises(InputError, match="expects 3 band"):
        map_bands(6, 3, None, "r")
    with pytest.raises(InputError, match="expects 4 band"):
        map_bands(6, 4, [1, 2], "r")
    with pytest.raises(InputError, match="do not exist"):
        map_bands(3, 2, [1, 7], "r")
    with pytest.raises(InputError, match="comma-separated"):
        parse_bands("red,green")


def test_open_source_refuses_bad_georeferencing(tmp_path) -> None:
    data = np.zeros((1, 8, 8), dtype=np.uint8)
    with pytest.raises(InputError, match="no georeferencing"):
        open_source(write_raster(tmp_path / "nogeo.tif", data, geotransform=None, epsg=None), 1)
    with pytest.raises(InputError, match="geographic CRS"):
        open_source(write_raster(tmp_path / "geo.tif", data, (10, 0.01, 0, 50, 0, -0.01), 4326), 1)
    with pytest.raises(InputError, match="non-square"):
        open_source(write_raster(tmp_path / "rect.tif", data, (0, 10, 0, 0, 0, -20)), 1)
    with pytest.raises(InputError, match="Cannot open"):
        open_source(str(tmp_path / "missing.tif"), 1)
    source = open_source(write_raster(tmp_path / "ok.tif", data, nodata=255, block=16), 1)
    assert source.nodata == (255.0,) and source.pixel_size == 10.0 and not source.uses_mask_band


def test_a_container_of_rasters_names_the_subdatasets_to_open_instead(tmp_path) -> None:
    """A GeoPackage of two raster tables (like a NetCDF of variables) has no bands itself: the refusal
    says what it holds and how to name one, instead of only that it is "not a raster"."""
    from srl_core.gdal_exceptions import gdal_exceptions

    path = str(tmp_path / "two.gpkg")
    with gdal_exceptions():
        src = gdal.GetDriverByName("MEM").Create("", 16, 16, 3, gdal.GDT_Byte)
        src.SetGeoTransform(GT)
        gdal.Translate(path, src, format="GPKG", creationOptions=["RASTER_TABLE=spring"])
        gdal.Translate(path, src, format="GPKG",
                       creationOptions=["RASTER_TABLE=autumn", "APPEND_SUBDATASET=YES"])
    with pytest.raises(InputError, match=r"2 subdatasets .*spring.*autumn.*such as GPKG:.*:spring"):
        open_source(path, 3)
    assert open_source(f"GPKG:{path}:autumn", 3).width == 16  # the name it gave opens


def _collect(items) -> tuple[dict, list]:
    tiles, strips = {}, []
    for item in items:
        if isinstance(item, TileBatch):
            # no tile arrives after its strip was closed
            assert not strips or all(r >= strips[-1].row1 for r in item.rows)
            for t, r, c in zip(item.tiles, item.rows, item.cols):
                assert (int(r), int(c)) not in tiles
                tiles[int(r), int(c)] = t
        else:
            strips.append(item)
    return tiles, strips


@pytest.mark.parametrize("block", [16, 0])
@pytest.mark.parametrize("stride,window_bytes", [(4, 10_000), (6, 2_000_000), (10, 30_000), (13, 5_000)])
def test_grid_batches_cut_exact_tiles(tmp_path, monkeypatch, stride: int, window_bytes: int,
                                      block: int) -> None:
    """Every tile once, with its own pixels, whatever the overlap, strips, column windows and
    source blocks; and no source row is read twice for the same column window."""
    data = ramp(2, 61, 75)
    source = open_source(write_raster(tmp_path / "r.tif", data, block=block), 2)
    grid = make_grid(source.width, source.height, 10, stride)
    strip_rows, chunk_cols = plan_windows(grid, 2, window_bytes=window_bytes)
    reads = []

    def recording_read(ds, src, x, y, w, h, keep=None):
        reads.append((x, y, h))
        return read_window(ds, src, x, y, w, h, keep)

    monkeypatch.setattr(reader, "read_window", recording_read)
    norm = Normaliser([0, 0], [1, 1])
    tiles, strips = _collect(grid_batches(source, grid, norm, 7, 0.5, strip_rows, chunk_cols))
    assert len(tiles) == grid.count
    for (r, c), tile in tiles.items():
        x, y = grid.tile_origin(r, c)
        np.testing.assert_array_equal(tile, data[:, y:y + 10, x:x + 10])
    assert [(s.row0, s.row1) for s in strips] == [
        (r, min(grid.rows, r + strip_rows)) for r in range(0, grid.rows, strip_rows)]
    for x in {x for x, _, _ in reads}:
        rows = [row for rx, y, h in reads if rx == x for row in range(y, y + h)]
        assert len(rows) == len(set(rows))


def test_block_rows_too_large_to_hold_are_read_by_strip_and_decoded_once(tmp_path, monkeypatch) -> None:
    """A block row past the read-ahead budget (a very wide raster) is read strip by strip: the tiles
    stay exact, its decoded blocks stay in GDAL's cache for the strips after the first (rather than
    being decoded again for each strip: 5-7x slower on a 24,492 px wide Landsat mosaic), and the cache
    is left as it was at the end."""
    data = ramp(3, 96, 150).astype(np.uint16)
    path = tmp_path / "wide.tif"
    gdal.Translate(str(path), write_raster(tmp_path / "plain.tif", data),
                   creationOptions=["TILED=YES", "BLOCKXSIZE=32", "BLOCKYSIZE=32", "COMPRESS=LZW"])
    source = open_source(str(path), 3)
    grid = make_grid(source.width, source.height, 8)
    monkeypatch.setattr(reader, "READ_AHEAD_BYTES", 1)  # no block row fits
    cached_before_reads = []

    def recording_read(ds, src, x, y, w, h, keep=None):
        cached_before_reads.append((y, gdal.GetCacheUsed()))
        return read_window(ds, src, x, y, w, h, keep)

    monkeypatch.setattr(reader, "read_window", recording_read)
    baseline = gdal.GetCacheUsed()
    tiles, _ = _collect(grid_batches(source, grid, Normaliser([0] * 3, [1] * 3), 7, 0.5, 1, grid.cols))
    assert len(tiles) == grid.count
    for (r, c), tile in tiles.items():
        x, y = grid.tile_origin(r, c)
        np.testing.assert_array_equal(tile, data[:, y:y + 8, x:x + 8])
    assert [y for y, _ in cached_before_reads] == list(range(0, 96, 8))  # strip by strip
    mid_block = [used for y, used in cached_before_reads if y % 32]
    assert mid_block and min(mid_block) >= baseline + 3 * 150 * 32 * 2  # the block row is still decoded
    assert gdal.GetCacheUsed() == baseline


def test_rows_kept_between_strips_do_not_hold_the_whole_last_read(tmp_path, monkeypatch) -> None:
    """Between strips a window's buffer keeps the rows the next strips share, as a view of its last
    read; that view kept the whole read (a block row) alive. With a buffer per column window and per
    reader, 8 readers across a 24,492 px wide mosaic held 2.2 GB they no longer needed. Now a buffer
    never keeps more than twice what it holds, and the tiles stay exact."""
    data = ramp(3, 128, 40).astype(np.uint16)
    path = tmp_path / "tall_blocks.tif"
    gdal.Translate(str(path), write_raster(tmp_path / "plain.tif", data),
                   creationOptions=["TILED=YES", "BLOCKXSIZE=64", "BLOCKYSIZE=64"])
    source = open_source(str(path), 3)
    grid = make_grid(source.width, source.height, 8)
    kept: list[tuple[int, int]] = []  # (bytes held, bytes kept alive) after each strip's drop
    drop_above = reader._RowBuffer.drop_above

    def recording_drop(self, y):
        drop_above(self, y)
        kept.append((self.pixels.nbytes, reader._owner(self.pixels).nbytes))

    monkeypatch.setattr(reader._RowBuffer, "drop_above", recording_drop)
    tiles, _ = _collect(grid_batches(source, grid, Normaliser([0] * 3, [1] * 3), 7, 0.5, 1, grid.cols))
    assert len(tiles) == grid.count
    for (r, c), tile in tiles.items():
        x, y = grid.tile_origin(r, c)
        np.testing.assert_array_equal(tile, data[:, y:y + 8, x:x + 8])
    held = [(h, alive) for h, alive in kept if h]
    assert held and all(alive <= 2 * h for h, alive in held)


def test_grid_batches_nodata_normalisation_and_skip(tmp_path) -> None:
    data = np.full((2, 40, 40), 10.0, dtype=np.float32)
    data[1] = 20.0
    data[:, :, :6] = -1  # nodata: 60% of the first column of 10 px tiles
    data[0, 15, 15] = np.nan  # NaN counts as invalid too
    source = open_source(write_raster(tmp_path / "n.tif", data, nodata=-1), 2)
    grid = make_grid(40, 40, 10)
    skip = np.zeros((4, 4), dtype=bool)
    skip[3, 3] = True
    tiles, _ = _collect(grid_batches(source, grid, Normaliser([10, 10], [2, 5]), 5, 0.5, 2, 4, skip))
    assert sorted(tiles) == [(r, c) for r in range(4) for c in range(1, 4) if (r, c) != (3, 3)]
    np.testing.assert_array_equal(tiles[0, 1][1], np.full((10, 10), 2.0))  # (20 - 10) / 5
    assert tiles[1, 1][0][5, 5] == 0.0 and tiles[1, 1][1][5, 5] == 0.0  # NaN pixel -> band mean
    assert np.isfinite(tiles[1, 1]).all()


def test_point_batches(tmp_path) -> None:
    data = ramp(1, 50, 60)
    source = open_source(write_raster(tmp_path / "p.tif", data), 1)
    origins = np.array([[0, 0], [45, 35], [51, 0], [-1, 5], [20, 10], [20, 10]])
    tiles = {}
    for batch in point_batches(source, origins, 10, Normaliser([0], [1]), 2, 0.5, group_size=16):
        tiles.update({int(i): t for i, t in zip(batch.rows, batch.tiles)})
    assert sorted(tiles) == [0, 1, 4, 5]  # (51, 0) and (-1, 5) are not wholly inside
    for i in tiles:
        x, y = origins[i]
        np.testing.assert_array_equal(tiles[i][0], data[0, y:y + 10, x:x + 10])


def test_prefetcher_passes_items_and_errors() -> None:
    with Prefetcher(lambda: iter(range(10)), depth=2) as stream:
        assert list(stream) == list(range(10))

    def failing():
        yield 1
        raise InputError("broken raster")

    with pytest.raises(InputError, match="broken raster"), Prefetcher(failing) as stream:
        list(stream)
    # Leaving early stops the thread even though the producer is endless.
    with Prefetcher(lambda: iter(StripDone(i, i + 1, 0, 1) for i in range(10**9))) as stream:
        assert next(iter(stream)) == StripDone(0, 1, 0, 1)
