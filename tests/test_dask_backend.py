"""Window-by-window runs on Dask: same output bit for bit, resume after a failure, cancel, optional Dask.

Real data: the bundled Landsat 7 scene (489 x 443 px, 28 x 26 tiles of 17 px) and the bundled
compact tile model, cut into 8 x 8-tile windows (16 of them) so that two workers share the work.
The Dask cluster runs its workers as threads of this process: quick and light on a 2-core CI box.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from srl_core.backends.local import LocalBackend
from srl_core.errors import CancelledError, ClusterLostError, InputError
from srl_core.progress import Progress
from srl_core.signals import Interrupted
from srl_core.tiles import embed_raster

distributed = pytest.importorskip("distributed")
from srl_core.backends.dask import DaskBackend  # noqa: E402

RASTER = str(Path(__file__).resolve().parent.parent / "resources" / "sample_data" / "nc_landsat7_2000.tif")
MODEL = "tile2vec-l8-rgb-compact"
ARGS = dict(bands=[1, 2, 3], device="cpu", window_tiles=8)
WINDOWS = 16


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cl:
        yield cl


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The windowed run in this process, one window after the other."""
    out = tmp_path_factory.mktemp("ref") / "local.tif"
    embed_raster(RASTER, out, MODEL, backend=LocalBackend(), **ARGS)
    return out


def pixels(path: Path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_two_dask_workers_write_the_same_file_bit_for_bit(tmp_path, cluster, reference):
    out = tmp_path / "dask.tif"
    with DaskBackend(scheduler=cluster.scheduler_address) as backend, \
            distributed.get_task_stream(backend.client) as stream:
        result = embed_raster(RASTER, out, MODEL, backend=backend, **ARGS)
    assert out.read_bytes() == reference.read_bytes()  # pixels, layout and metadata
    assert result.tiles_total == 28 * 26 and 0 < result.tiles_embedded <= result.tiles_total
    assert leftovers(tmp_path) == ["dask.tif"]  # no parts folder, no temporary file
    windows = [t for t in stream.data if t["key"].startswith("srl-")]
    assert len(windows) == WINDOWS and len({t["worker"] for t in windows}) == 2  # both workers took part
    # And the windowed result is the in-process streaming result (up to the last bits a
    # different batching may change; on this CPU they are equal).
    default = tmp_path / "default.tif"
    embed_raster(RASTER, default, MODEL, bands=[1, 2, 3], device="cpu")
    np.testing.assert_allclose(pixels(default), pixels(out), rtol=0, atol=1e-5)
    assert np.array_equal(np.isnan(pixels(default)), np.isnan(pixels(out)))


def test_an_embedded_local_cluster_gives_the_same_pixels(tmp_path, reference):
    out = tmp_path / "workers.tif"
    with DaskBackend(workers=2, processes=False) as backend:
        embed_raster(RASTER, out, MODEL, backend=backend, **ARGS)
    assert out.read_bytes() == reference.read_bytes()


class FailingOnce(LocalBackend):
    """Runs windows in this process; the ``fail_at``-th window computed raises once."""

    def __init__(self, fail_at: int) -> None:
        self.fail_at, self.computed = fail_at, 0

    def map_unordered(self, fn, items, on_result, progress):
        def counted(item):
            self.computed += 1
            if self.computed == self.fail_at:
                raise RuntimeError("worker lost")
            return fn(item)

        super().map_unordered(counted, items, on_result, progress)


def test_a_failed_run_resumes_from_its_finished_windows(tmp_path, reference):
    out = tmp_path / "resumed.tif"
    failing = FailingOnce(fail_at=6)
    with pytest.raises(RuntimeError, match="worker lost"):
        embed_raster(RASTER, out, MODEL, backend=failing, **ARGS)
    parts = tmp_path / ".resumed.tif.parts"
    assert not out.exists()
    assert len(list(parts.glob("part-*.npy"))) == 5  # the windows done before the failure
    again = FailingOnce(fail_at=0)
    embed_raster(RASTER, out, MODEL, backend=again, **ARGS)
    assert again.computed == WINDOWS - 5  # only the missing windows were computed
    assert out.read_bytes() == reference.read_bytes()
    assert leftovers(tmp_path) == ["resumed.tif"]


class SignalledAt(FailingOnce):
    """The ``fail_at``-th window is stopped by a signal, as the command line's handler raises it."""

    def __init__(self, fail_at: int, signum: int) -> None:
        super().__init__(fail_at)
        self.signum = signum

    def map_unordered(self, fn, items, on_result, progress):
        def counted(item):
            self.computed += 1
            if self.computed == self.fail_at:
                raise Interrupted(self.signum)
            return fn(item)

        LocalBackend.map_unordered(self, counted, items, on_result, progress)


def test_sigterm_keeps_the_finished_windows_and_ctrl_c_removes_them(tmp_path, reference):
    """SIGTERM is a batch system's time limit or eviction: it threw the finished windows away, so the
    long runs resuming is for started again from zero. Ctrl-C is the user's cancel."""
    out = tmp_path / "stopped.tif"
    with pytest.raises(Interrupted):
        embed_raster(RASTER, out, MODEL, backend=SignalledAt(6, signal.SIGTERM), **ARGS)
    assert len(list((tmp_path / ".stopped.tif.parts").glob("part-*.npy"))) == 5 and not out.exists()
    again = FailingOnce(fail_at=0)
    embed_raster(RASTER, out, MODEL, backend=again, **ARGS)
    assert again.computed == WINDOWS - 5 and out.read_bytes() == reference.read_bytes()
    cancelled = tmp_path / "cancelled.tif"
    with pytest.raises(Interrupted):
        embed_raster(RASTER, cancelled, MODEL, backend=SignalledAt(6, signal.SIGINT), **ARGS)
    assert leftovers(tmp_path) == ["stopped.tif"]


def test_ctrl_c_on_a_resumed_run_keeps_the_earlier_runs_windows(tmp_path, reference, capsys):
    """One Ctrl-C on a resumed run deleted every window of the earlier runs (hours of a long run): a cancel
    discards only the parts of a run that started afresh; a resumed one keeps them and says where."""
    from srl_core.signals import cancelled_exit

    out = tmp_path / "long.tif"
    with pytest.raises(Interrupted):
        embed_raster(RASTER, out, MODEL, backend=SignalledAt(6, signal.SIGTERM), **ARGS)  # 5 windows kept
    with pytest.raises(Interrupted) as stopped:
        embed_raster(RASTER, out, MODEL, backend=SignalledAt(3, signal.SIGINT), **ARGS)  # resumed, Ctrl-C
    parts = tmp_path / ".long.tif.parts"
    assert len(list(parts.glob("part-*.npy"))) == 7 and not out.exists()  # 5 earlier + 2 of this run
    assert cancelled_exit(stopped.value) == 130
    assert f"the 7 windows finished (5 by an earlier run) are kept in {parts}" in capsys.readouterr().err
    again = FailingOnce(fail_at=0)
    embed_raster(RASTER, out, MODEL, backend=again, **ARGS)
    assert again.computed == WINDOWS - 7 and out.read_bytes() == reference.read_bytes()


def test_parts_of_a_vrts_replaced_source_are_not_reused(tmp_path):
    """Only the VRT's own file was stamped: a source replaced since left the old pixels' embeddings in
    the windows finished before."""
    source = tmp_path / "scene.tif"
    gdal.Translate(str(source), RASTER)
    vrt = tmp_path / "scene.vrt"
    gdal.BuildVRT(str(vrt), [str(source)])
    out = tmp_path / "emb.tif"
    with pytest.raises(RuntimeError):
        embed_raster(vrt, out, MODEL, backend=FailingOnce(fail_at=3), normalisation="model", **ARGS)
    gdal.Translate(str(source), RASTER, scaleParams=[[0, 255, 255, 0]])  # other pixels, same size
    rerun = FailingOnce(fail_at=0)  # the card's statistics: nothing else in the fingerprint changes
    embed_raster(vrt, out, MODEL, backend=rerun, normalisation="model", **ARGS)
    assert rerun.computed == WINDOWS


class InAnotherFolder(LocalBackend):
    """Runs windows in this process, from another working folder, as a worker elsewhere does."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def map_unordered(self, fn, items, on_result, progress):
        here = os.getcwd()
        os.chdir(self.folder)
        try:
            super().map_unordered(fn, items, on_result, progress)
        finally:
            os.chdir(here)


def two_folders(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """The client's folder (the working folder now) and a worker's, each with a scene.tif of other pixels."""
    mine, theirs = tmp_path / "client", tmp_path / "worker"
    mine.mkdir()
    theirs.mkdir()
    gdal.Translate(str(mine / "scene.tif"), RASTER)
    gdal.Translate(str(theirs / "scene.tif"), RASTER, scaleParams=[[0, 255, 255, 0]])
    monkeypatch.chdir(mine)
    return mine, theirs


def test_workers_in_another_folder_read_the_clients_file(tmp_path, monkeypatch, reference):
    """A relative input was opened by each worker in its own folder: another file of that name there gave
    its pixels on this raster's grid, unsaid."""
    mine, theirs = two_folders(tmp_path, monkeypatch)
    out = tmp_path / "emb.tif"
    embed_raster("scene.tif", out, MODEL, backend=InAnotherFolder(theirs), **ARGS)
    np.testing.assert_array_equal(pixels(out), pixels(reference))


def _needs_a_module_the_worker_lacks(item):
    raise ModuleNotFoundError("No module named 'srl_core'", name="srl_core")


def test_a_worker_without_srl_core_is_a_setup_to_fix_not_a_bug(cluster):
    """It was reported as an internal error, "a bug in SRL, not in your data"."""
    with DaskBackend(scheduler=cluster.scheduler_address) as backend, \
            pytest.raises(InputError, match="worker cannot import 'srl_core': install SRL"):
        backend.map_unordered(_needs_a_module_the_worker_lacks, [1, 2], lambda i, r: None, Progress())


def test_a_run_that_finished_no_window_leaves_no_parts_folder(tmp_path):
    """A scheduler that could not be reached left a hidden parts folder that no later run removed."""
    with pytest.raises(RuntimeError, match="worker lost"):
        embed_raster(RASTER, tmp_path / "none.tif", MODEL, backend=FailingOnce(fail_at=1), **ARGS)
    assert leftovers(tmp_path) == []


def test_a_relative_gdal_name_reaches_workers_in_another_folder(tmp_path, monkeypatch, reference):
    """A relative file inside a GDAL name (vrt://, /vsizip/, NETCDF:"...") was read in the worker's own
    folder as well."""
    import zipfile

    from srl_core.raster.source import as_workers_reach

    mine, theirs = two_folders(tmp_path, monkeypatch)
    with zipfile.ZipFile(mine / "a.zip", "w") as archive:
        archive.write("scene.tif")
    assert as_workers_reach("/vsizip/a.zip/scene.tif") == f"/vsizip/{mine / 'a.zip'}/scene.tif"
    assert as_workers_reach('NETCDF:"scene.tif":x') == f'NETCDF:"{mine / "scene.tif"}":x'
    out = tmp_path / "emb.tif"
    embed_raster("vrt://scene.tif?bands=1,2,3", out, MODEL, backend=InAnotherFolder(theirs), device="cpu",
                 window_tiles=8)
    np.testing.assert_array_equal(pixels(out), pixels(reference))


def test_statistics_written_beside_the_input_do_not_void_the_parts(tmp_path):
    """QGIS (or gdalinfo -stats) writing the input's .aux.xml changed the parts' stamp, and a stopped run
    started again from zero."""
    scene = tmp_path / "scene.tif"
    gdal.Translate(str(scene), RASTER)
    out = tmp_path / "emb.tif"
    with pytest.raises(RuntimeError):
        embed_raster(scene, out, MODEL, backend=FailingOnce(fail_at=6), normalisation="model", **ARGS)
    ds = gdal.Open(str(scene))  # read-only: the statistics go to scene.tif.aux.xml, as QGIS writes them
    ds.GetRasterBand(1).ComputeStatistics(False)
    ds = None
    assert (tmp_path / "scene.tif.aux.xml").exists()
    again = FailingOnce(fail_at=0)
    embed_raster(scene, out, MODEL, backend=again, normalisation="model", **ARGS)
    assert again.computed == WINDOWS - 5


def test_parts_of_another_run_are_not_reused(tmp_path):
    out = tmp_path / "changed.tif"
    with pytest.raises(RuntimeError):
        embed_raster(RASTER, out, MODEL, backend=FailingOnce(fail_at=3), **ARGS)
    other = FailingOnce(fail_at=0)
    embed_raster(RASTER, out, MODEL, backend=other, max_nodata_fraction=0.2, **ARGS)  # another setting
    assert other.computed == WINDOWS


def test_cancel_stops_the_workers_and_removes_the_parts(tmp_path, cluster):
    out = tmp_path / "cancelled.tif"
    reports: list[float] = []
    progress = Progress(lambda f, m: reports.append(f), lambda: len(reports) >= 4)
    with DaskBackend(scheduler=cluster.scheduler_address) as backend, pytest.raises(CancelledError):
        embed_raster(RASTER, out, MODEL, backend=backend, progress=progress, **ARGS)
    assert leftovers(tmp_path) == []
    # Nothing of this run is left scheduled on the cluster.
    assert not [k for k in cluster.scheduler.tasks if str(k).startswith("srl-")]


def test_without_dask_the_options_say_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    with pytest.raises(InputError, match="pip install"):
        embed_raster(RASTER, tmp_path / "never.tif", MODEL, workers=2)
    assert not (tmp_path / "never.tif").exists()


@pytest.fixture
def small_blocks(reference, tmp_path, monkeypatch) -> Path:
    """The reference embeddings in 16 px blocks, read one block a window: 4 windows."""
    from srl_core.raster import blocks

    path = tmp_path / "embeddings.tif"
    gdal.Translate(str(path), str(reference), creationOptions=["TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16"])
    monkeypatch.setattr(blocks.EmbeddingRasterReader.__init__, "__defaults__", (16 * 16 * 64 * 4,))
    with blocks.EmbeddingRasterReader(str(path)) as reader:
        assert len(reader.windows()) == 4
    return path


def test_cluster_classes_and_similarity_on_dask_are_the_same_files(small_blocks, tmp_path, cluster):
    from srl_core.analysis.clustering import apply_kmeans_raster, fit_kmeans_raster
    from srl_core.analysis.similarity import Query, similarity_raster

    model = fit_kmeans_raster(str(small_blocks), 4, seed=0)
    data = pixels(small_blocks)
    examples = data[:, np.isfinite(data).all(axis=0)].T[[0, 100]]  # two valid pixels' embeddings
    query = Query().add_vectors(examples, model.model_id)
    here = [apply_kmeans_raster(model, str(small_blocks), str(tmp_path / "classes.tif")),
            similarity_raster(str(small_blocks), query, str(tmp_path / "similarity.tif"), "max")]
    with DaskBackend(scheduler=cluster.scheduler_address) as backend:
        there = [apply_kmeans_raster(model, str(small_blocks), str(tmp_path / "classes-dask.tif"),
                                     backend=backend),
                 similarity_raster(str(small_blocks), query, str(tmp_path / "similarity-dask.tif"), "max",
                                   backend=backend)]
    for a, b in zip(here, there):
        assert Path(a).read_bytes() == Path(b).read_bytes()
    assert len(np.unique(pixels(Path(there[0])))) >= 3  # real classes, not an empty raster
    assert not list(tmp_path.glob(".*.parts"))


def test_command_line_runs_on_a_scheduler(tmp_path, cluster, reference, capsys):
    from srl_core.cli import main

    out = tmp_path / "cli.tif"
    code = main(["embed-raster", RASTER, str(out), "--model", MODEL, "--bands", "1,2,3", "--device", "cpu",
                 "--scheduler", cluster.scheduler_address, "--window-tiles", "8"])
    assert code == 0 and out.read_bytes() == reference.read_bytes()
    classes = tmp_path / "classes.tif"
    assert main(["cluster", str(out), str(classes), "-k", "3", "--scheduler", cluster.scheduler_address]) == 0
    assert set(np.unique(pixels(classes))) <= {0, 1, 2, 3}
    assert main(["embed-raster", RASTER, str(tmp_path / "x.tif"), "--model", MODEL, "--workers", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err


def test_processing_runs_on_a_dask_scheduler(srl_provider, tmp_path, cluster, reference):
    import processing

    out = tmp_path / "processing.tif"
    params = {"INPUT": RASTER, "MODEL": MODEL, "BANDS": [1, 2, 3], "DEVICE": "cpu", "OUTPUT": str(out)}
    here = tmp_path / "here.tif"
    processing.run("srl:embed_raster", {**params, "OUTPUT": str(here)})
    processing.run("srl:embed_raster", {**params, "SCHEDULER": cluster.scheduler_address})
    np.testing.assert_allclose(pixels(out), pixels(here), rtol=0, atol=1e-5)  # one 64-tile window here
    classes = tmp_path / "classes.tif"
    processing.run("srl:cluster", {"INPUT": str(out), "K": 3, "SCHEDULER": cluster.scheduler_address,
                                   "OUTPUT": str(classes)})
    assert set(np.unique(pixels(classes))) <= {0, 1, 2, 3}


def test_location_embeddings_of_a_large_table_in_partitions(tiny_location_model, cluster, tmp_path):
    from srl_core.location import embed_lonlat, embed_points_file
    from srl_core.vector.points import read_embedding_points

    rng = np.random.default_rng(0)
    lonlat = np.column_stack([rng.uniform(-180, 180, 20_000), rng.uniform(-90, 90, 20_000)])
    here, _ = embed_lonlat(tiny_location_model, lonlat, device="cpu", batch_size=1000)
    with DaskBackend(scheduler=cluster.scheduler_address) as backend:
        there, valid = embed_lonlat(tiny_location_model, lonlat, device="cpu", batch_size=1000,
                                    backend=backend, partition_rows=2500)  # 3 batches a partition: 7 tasks
        assert valid.all() and np.array_equal(here, there)  # bit for bit
        csv = tmp_path / "points.csv"
        np.savetxt(csv, lonlat[:5000], delimiter=",", header="lon,lat", comments="", fmt="%.6f")
        out = tmp_path / "points.gpkg"
        embed_points_file(str(csv), str(out), tiny_location_model, x_field="lon", y_field="lat", device="cpu",
                          batch_size=1000, partition_rows=1000, backend=backend)
    _, emb, _ = read_embedding_points(str(out))
    reference, _ = embed_lonlat(tiny_location_model, np.loadtxt(csv, delimiter=",", skiprows=1), device="cpu",
                                batch_size=1000)
    assert np.array_equal(emb, reference)
    assert not list(tmp_path.glob(".*"))  # no parts left


@pytest.mark.parametrize("signum, resumed, kept", [
    (signal.SIGINT, False, False), (signal.SIGTERM, False, True), (signal.SIGINT, True, True)])
def test_a_cancel_while_the_points_are_written_removes_their_parts(tiny_location_model, cluster, tmp_path,
                                                                    monkeypatch, signum, resumed, kept):
    """Ctrl-C once every partition was done (while the points were written) left the parts folder, though
    the run said it kept nothing; SIGTERM keeps them to resume, as during the partitions (an audit). A
    resumed run's Ctrl-C keeps the earlier run's partitions."""
    from srl_core import location
    from srl_core.signals import Interrupted

    rng = np.random.default_rng(0)
    csv = tmp_path / "points.csv"
    np.savetxt(csv, np.column_stack([rng.uniform(-180, 180, 3000), rng.uniform(-90, 90, 3000)]),
               delimiter=",", header="lon,lat", comments="", fmt="%.6f")

    def run(signalled: int) -> pytest.ExceptionInfo:
        def stopped(*args, **kwargs):
            raise Interrupted(signalled)

        monkeypatch.setattr(location, "write_points", stopped)
        with DaskBackend(scheduler=cluster.scheduler_address) as backend, pytest.raises(Interrupted) as info:
            location.embed_points_file(str(csv), str(tmp_path / "out.gpkg"), tiny_location_model,
                                       x_field="lon", y_field="lat", device="cpu", partition_rows=1000,
                                       backend=backend)
        return info

    if resumed:
        run(signal.SIGTERM)  # every partition kept
    info = run(signum)
    assert bool(list(tmp_path.glob(".*parts*"))) == kept and not (tmp_path / "out.gpkg").exists()
    assert ("(1 by an earlier run) are kept" in getattr(info.value, "kept", "")) == resumed  # one batch


def test_processing_embeds_points_on_a_dask_scheduler(srl_provider, cluster, tmp_path):
    import processing

    from srl_core.vector.points import read_embedding_points

    meuse = str(Path(RASTER).with_name("meuse.gpkg"))
    params = {"INPUT": meuse, "MODEL": "satclip-style-bluemarble-sh20-basis10", "DEVICE": "cpu"}
    here, there = tmp_path / "here.gpkg", tmp_path / "there.gpkg"
    processing.run("srl:embed_points", {**params, "OUTPUT": str(here)})
    on_dask = {**params, "SCHEDULER": cluster.scheduler_address, "OUTPUT": str(there)}
    processing.run("srl:embed_points", on_dask)
    assert np.array_equal(read_embedding_points(str(here))[1], read_embedding_points(str(there))[1])


def _worker_threads() -> tuple[int, list[int]]:
    import torch
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), sorted({pool["num_threads"] for pool in threadpool_info()})


def test_worker_processes_run_on_the_threads_asked():
    """``threads`` (srl_core.threads) reaches local worker processes; one thread each when not given."""
    from srl_core.backends import resolve_backend

    assert DaskBackend(workers=2, processes=False).threads == 1
    assert DaskBackend(workers=2, processes=False, threads=0).threads == 1
    made = resolve_backend(workers=2, threads=3)
    assert isinstance(made, DaskBackend) and made.threads == 3
    with DaskBackend(workers=1, processes=True, threads=2) as backend:
        (torch_threads, pools), = backend.client.run(_worker_threads).values()
    assert torch_threads == 2 and pools == [2]


def test_a_partition_of_0_points_is_refused_not_taken_for_the_default(tiny_location_model):
    """--partition-rows 0 ran with the default 262,144 while -5 was refused (found by an audit)."""
    from srl_core.bundle import load_model
    from srl_core.location_partitions import EmbedLonLat, embed_partitioned
    from srl_core.progress import ensure_progress

    model = load_model(tiny_location_model)
    task = EmbedLonLat(model.module, model.card.embedding_size, "cpu", 64)
    with pytest.raises(InputError, match="at least 1 point, got 0"):
        embed_partitioned(LocalBackend(), task, np.zeros((10, 2), np.float32), 0, ensure_progress(None))


def test_a_failing_task_is_one_error_not_worker_tracebacks(capfd):
    """Each failed window was also logged by the worker as "Compute Failed" with its traceback (30-65
    lines above the one-line error, found by an audit): the workers log only what is critical."""
    import math

    with (DaskBackend(workers=1, processes=True, threads=1) as backend,
          pytest.raises(ValueError, match="math domain error")):
        backend.map_unordered(math.sqrt, [4.0, -1.0], lambda j, value: None, Progress())
    assert "Compute Failed" not in capfd.readouterr().err


class LostAt(FailingOnce):
    """The ``fail_at``-th window finds its Dask cluster gone, as DaskBackend says it."""

    def map_unordered(self, fn, items, on_result, progress):
        def counted(item):
            self.computed += 1
            if self.computed == self.fail_at:
                raise ClusterLostError("The Dask cluster stopped. Run the same command again.")
            return fn(item)

        LocalBackend.map_unordered(self, counted, items, on_result, progress)


def test_a_lost_cluster_says_where_the_windows_are_kept_without_blaming_the_disk(tmp_path):
    """Said as a full disk ('once there is room') and 'run again' twice, when a scheduler had died."""
    with pytest.raises(ClusterLostError) as caught:
        embed_raster(RASTER, tmp_path / "lost.tif", MODEL, backend=LostAt(fail_at=4), **ARGS)
    message = str(caught.value)
    assert f"It goes on from the 3 windows done so far, kept in {tmp_path / '.lost.tif.parts'}" in message
    assert "room" not in message and message.count("again") == 1


def test_parts_kept_by_sigterm_are_removed_when_the_output_is_finished_in_one_process(tmp_path, reference):
    """A run through workers stopped by SIGTERM, then finished without workers: its hidden float32 copy of
    the windows done stayed beside the output for good."""
    out = tmp_path / "stopped.tif"
    with pytest.raises(Interrupted):
        embed_raster(RASTER, out, MODEL, backend=SignalledAt(6, signal.SIGTERM), **ARGS)
    embed_raster(RASTER, out, MODEL, bands=[1, 2, 3], device="cpu")
    assert leftovers(tmp_path) == ["stopped.tif"]


def _refuses_the_input(item):
    raise InputError("Cannot open raster /data/scene.tif: No such file or directory")


def test_a_workers_refusal_of_the_input_says_it_came_from_a_worker(cluster):
    """'Cannot open raster /data/scene.tif' read as false where the file is there on the user's machine."""
    with DaskBackend(scheduler=cluster.scheduler_address) as backend, \
            pytest.raises(InputError, match="on a worker of the Dask cluster at .*: every worker must reach"):
        backend.map_unordered(_refuses_the_input, [1], lambda i, r: None, Progress())


def test_a_scheduler_without_srl_core_is_a_setup_to_fix_not_a_bug():
    from srl_core.backends.dask import _raise_if_missing_module

    with pytest.raises(InputError, match="in the scheduler's Python environment too"):
        _raise_if_missing_module(RuntimeError("Error during deserialization of the task graph. This "
                                              "frequently occurs if the Scheduler and Client have different "
                                              "environments."))


def test_dask_settings_for_a_point_layer_are_refused_not_ignored(tmp_path):
    """An unreachable scheduler was ignored unsaid for points (the same address failed for a raster)."""
    from analysis_synthetic import write_embedding_points

    from srl_core.analysis import api
    from srl_core.analysis.similarity import Query

    path, _ = write_embedding_points(tmp_path / "p.gpkg", np.random.default_rng(0).normal(size=(30, 4)))
    unreachable, query = "tcp://127.0.0.1:9", Query().add_points(path, [1])
    for run in (lambda: api.cluster(path, str(tmp_path / "c.gpkg"), n_clusters=2, scheduler=unreachable),
                lambda: api.similarity(path, query, str(tmp_path / "s.gpkg"), workers=2)):
        with pytest.raises(InputError, match="Point layers are analysed in this process"):
            run()
    assert leftovers(tmp_path) == ["p.gpkg"]


def test_the_clients_log_is_quiet_while_a_scheduler_runs_and_restored_after(cluster):
    """A lost scheduler printed the client's tracebacks (about 40 lines, from its own thread) above the
    one-line error said."""
    import logging

    log = logging.getLogger("distributed.client")
    before = log.level
    with DaskBackend(scheduler=cluster.scheduler_address) as backend:
        backend.map_unordered(abs, [-1], lambda i, r: None, Progress())
        assert not log.isEnabledFor(logging.ERROR)
    assert log.level == before


def test_a_script_without_the_main_guard_is_told_how_to_run_on_local_workers(tmp_path):
    """Dask's local worker processes start by running the calling script again: without the __main__
    guard they failed with "Nanny failed to start" after hundreds of lines of tracebacks, and nothing
    said what to change (found by running the README as written)."""
    import subprocess

    script = tmp_path / "unguarded.py"
    script.write_text("from srl_core.tiles import embed_raster\n"
                      f"embed_raster({RASTER!r}, {str(tmp_path / 'e.tif')!r}, 'bandstats', workers=2)\n")
    root = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": root})
    assert done.returncode != 0 and 'put the call under `if __name__ == "__main__":`' in done.stderr
    assert not (tmp_path / "e.tif").exists()
