"""Several readers at once (the engine beside a GPU): the same embedding raster as one reader, every
strip written once whatever order the readers finish in, and no reader left running."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

import srl_core.raster.reader as reader_module
import srl_core.tiles as tiles_module
from srl_core.errors import InputError, OutputError
from srl_core.progress import Progress
from srl_core.raster.geotiff import create_geotiff
from srl_core.raster.reader import Prefetcher, reader_bands
from srl_core.raster.writer import StripWriter
from srl_core.raster.writer_thread import WriterThread
from srl_core.threads import MAX_GPU_IO_THREADS, IoPlan, io_plan
from srl_core.tiles import embed_raster

CROP = Path(__file__).resolve().parent / "data" / "nc_landsat_crop.tif"  # Landsat 7, 64 px blocks, nodata


@pytest.mark.parametrize("rows, strip_rows, readers", [(13, 2, 3), (16, 2, 3), (5, 1, 8), (1, 4, 4),
                                                       (100, 16, 1), (7, 1, 7)])
def test_reader_bands_split_the_grid_into_contiguous_whole_strips(rows, strip_rows, readers) -> None:
    bands = reader_bands(rows, strip_rows, readers)
    assert len(bands) == min(readers, -(-rows // strip_rows))
    assert bands[0][0] == 0 and bands[-1][1] == rows
    assert all(a < b for a, b in bands) and all(b == c for (_, b), (c, _) in zip(bands, bands[1:]))
    assert all(a % strip_rows == 0 for a, _ in bands)
    sizes = [-(-(b - a) // strip_rows) for a, b in bands]  # strips per reader, as equal as can be
    assert max(sizes) - min(sizes) <= 1


def test_several_file_threads_run_only_beside_a_gpu() -> None:
    assert io_plan("cpu", 3) == io_plan("cpu", None) == IoPlan(1, 1, False)  # the cores are the model's
    assert io_plan("cuda", 3) == IoPlan(3, 3, True)
    assert io_plan("cuda", None, cores=16) == IoPlan(MAX_GPU_IO_THREADS, MAX_GPU_IO_THREADS, True)
    assert io_plan("cuda", 0, cores=4) == IoPlan(3, 3, True)  # a core left to the model's thread
    assert io_plan("cuda", None, cores=1) == IoPlan(1, 1, True)


def test_strips_written_in_any_order_fill_each_block_row_once(tmp_path) -> None:
    dim, rows, cols, block, strip = 4, 45, 30, 16, 4
    data = np.random.default_rng(0).standard_normal((dim, rows, cols)).astype(np.float32)
    data[:, 9, :] = np.nan  # a row with no tile embedded stays NaN
    path = str(tmp_path / "out.tif")
    ds = create_geotiff(path, cols, rows, dim, "float32", None, None, float("nan"), block_size=block)
    writer = StripWriter(ds, cols, dim, block, path)
    flushed = []
    writer._flush = lambda: flushed.append(1)
    pieces = [(row0, col0) for row0 in range(0, rows, strip) for col0 in (0, 11)]  # two column bands
    for i in np.random.default_rng(1).permutation(len(pieces)):
        row0, col0 = pieces[i]
        col1 = 11 if col0 == 0 else cols
        for row in range(row0, min(rows, row0 + strip)):
            if row != 9:
                writer.put(np.full(col1 - col0, row), np.arange(col0, col1), data[:, row, col0:col1].T)
        writer.write_strip(row0, min(rows, row0 + strip), col0, col1)
    assert len(flushed) == -(-rows // block)  # each row of blocks once, when its last strip arrived
    assert not writer._rows  # nothing held back
    writer.ds = ds = None
    np.testing.assert_array_equal(gdal.Open(path).ReadAsArray(), data)


@pytest.mark.parametrize("read_by_strip", [False, True])
@pytest.mark.parametrize("stride", [9, 23])  # overlapping tiles, and sparse ones (read compacted)
def test_three_readers_give_the_raster_of_one(tmp_path, monkeypatch, stride, read_by_strip) -> None:
    """Bands of 1-2 tile rows, each boundary inside
    the crop's 64 px blocks; nodata border on the crop; the output compressed on 3 threads and
    written by its own thread. ``read_by_strip``: no block row fits the read-ahead budget (a very
    wide raster's case), so each strip is read alone, its blocks kept in GDAL's cache."""
    common = dict(model="tile2vec-l8-rgb-compact", bands=[3, 2, 1], device="cpu", stride=stride,
                  normalisation="model", batch_size=5)
    one = embed_raster(CROP, tmp_path / "one.tif", **common)
    strip_rows = 1 if stride > 17 else 2
    monkeypatch.setattr(tiles_module, "plan_windows", lambda grid, *a, **k: (strip_rows, grid.cols))
    monkeypatch.setattr(tiles_module, "io_plan", lambda device, threads: IoPlan(3, 3, True))
    monkeypatch.setattr(tiles_module, "PROGRESS_INTERVAL_S", 0.0)
    if read_by_strip:
        monkeypatch.setattr(reader_module, "READ_AHEAD_BYTES", 1)
    started, seen = threading.active_count(), []
    progress = Progress(lambda f, m: seen.append(f))
    three = embed_raster(CROP, tmp_path / "three.tif", progress=progress, **common)
    assert threading.active_count() == started  # the readers and the writer are gone
    assert seen == sorted(seen) and seen[-1] == 1.0  # strips finish in any order, progress only goes up
    a, b = gdal.Open(one.path).ReadAsArray(), gdal.Open(three.path).ReadAsArray()
    assert one.tiles_embedded == three.tiles_embedded and np.isnan(a).any()
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # batches cut differently: float rounding only


def test_the_writer_thread_writes_in_order_and_hands_its_error_to_the_caller(tmp_path) -> None:
    dim, rows, cols, block = 3, 20, 6, 16
    data = np.random.default_rng(0).standard_normal((dim, rows, cols)).astype(np.float32)
    path = str(tmp_path / "out.tif")
    ds = create_geotiff(path, cols, rows, dim, "float32", None, None, float("nan"), block_size=block)
    writer = StripWriter(ds, cols, dim, block, path)
    started = threading.active_count()
    with WriterThread(writer, depth=2) as thread:
        for row in range(rows):  # far more calls than the queue holds
            thread.put(np.full(cols, row), np.arange(cols), np.ascontiguousarray(data[:, row, :].T))
            if row % 4 == 3:
                thread.write_strip(row - 3, row + 1, 0, cols)
    assert threading.active_count() == started and not writer._rows
    writer.ds = ds = None
    np.testing.assert_array_equal(gdal.Open(path).ReadAsArray(), data)

    class Stuck:  # a writer that cannot go on until released
        release, taken = threading.Event(), []

        def put(self, rows, cols, embeddings) -> None:
            Stuck.taken.append(len(rows))
            Stuck.release.wait()

    stuck, sent = Stuck(), []
    with WriterThread(stuck, depth=3) as thread:
        sender = threading.Thread(target=lambda: [sent.append(thread.put(np.zeros(100), np.zeros(100),
                                                                           np.zeros((100, 1), np.float32)))
                                                  for _ in range(10)])
        sender.start()
        sender.join(0.5)
        assert len(Stuck.taken) == 1 and len(sent) == 4  # one being written, 3 waiting: no more
        Stuck.release.set()
        sender.join()
    assert len(Stuck.taken) == 10

    class Failing:
        calls = 0

        def put(self, *args) -> None:
            Failing.calls += 1
            raise OutputError("Writing out.tif failed (disk full?)")

    with pytest.raises(OutputError, match="disk full"), WriterThread(Failing(), depth=1) as thread:
        for _ in range(1000):  # the writer gave up: the caller is told, never left waiting
            thread.put(np.zeros(1), np.zeros(1), np.zeros((1, 1)))
    assert Failing.calls == 1 and threading.active_count() == started

    with pytest.raises(OutputError, match="disk full"), WriterThread(Failing()) as thread:
        thread.put(np.zeros(1), np.zeros(1), np.zeros((1, 1)))  # failing in the last call: raised on leaving


def test_prefetcher_runs_several_producers_and_stops_them_all() -> None:
    producers = [lambda: iter(range(10)), lambda: iter(range(10, 15)), lambda: iter([])]
    with Prefetcher(producers, depth=2) as stream:
        assert sorted(stream) == list(range(15))

    def failing():
        yield -1
        raise InputError("broken raster")

    endless = [lambda: iter(range(10**9)), failing]
    with pytest.raises(InputError, match="broken raster"), Prefetcher(endless, depth=2) as stream:
        list(stream)
    started = threading.active_count()
    with Prefetcher([lambda: iter(range(10**9))] * 3, depth=2) as stream:
        next(iter(stream))
        assert threading.active_count() == started + 3
    assert threading.active_count() == started  # leaving early stops every producer


@pytest.mark.parametrize("launched", [False, True])
def test_a_signal_while_the_readers_start_stops_those_started(monkeypatch, launched) -> None:
    """Ctrl-C can land inside ``__enter__``, so ``__exit__`` never runs: the readers already started
    (and the one being started, when it got going) must still be stopped before the error goes on."""
    started = threading.active_count()
    prefetcher = Prefetcher([lambda: iter(range(10**9))] * 3, depth=2)
    second = prefetcher._threads[1]
    real_start = second.start

    def interrupted_start() -> None:
        if launched:
            real_start()
        raise KeyboardInterrupt

    monkeypatch.setattr(second, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt), prefetcher:
        pass
    assert threading.active_count() == started
    assert not prefetcher._threads[2].is_alive() and prefetcher._threads[2].ident is None  # never started
