"""The tile reader on a raster too wide to hold a source block row within the read-ahead budget.

Why: the reader reads down each window in whole block rows of the source, as float32, within a
read-ahead budget shared out between its reader threads (256 MiB in all). On a wide raster a
block row no longer fits (the 12 x 9 mosaic of the Landsat scene, 24,492 px wide, 256 px blocks:
81 MB as float32, against 32 MiB per reader with the 8 readers used beside a GPU), so each strip
is read on its own. The reader used to empty GDAL's block cache after every read, so every strip
decoded its block row again; it now keeps a block row's decoded blocks until the last strip
that needs them. (It also no longer copies the rows it holds for every strip: they stay a view
until the next read.) Beside a GPU each of 8 readers reads a band of tile rows across the whole
width, so that is where the strip-by-strip path runs; with one reader it runs on a raster about
80,000 px wide. This times one
reader's share of the tiles (the second of 8 bands of tile rows,
stride = tile, the bundled model's 17 px tiles) with each read-ahead share, for this checkout and
for ``--before`` (an older checkout, e.g. a worktree of eaa45d0), alternated, in subprocesses, and
prints the ratios. ``--quick``: a 6 x 2 mosaic (12,246 px wide), the 8 readers' share, one round.

    .venv/bin/python benchmarks/bench_wide_reads.py [--before DIR] [--mosaic 12x9] [--rounds 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARES = (8, 2, 1)  # readers the read-ahead budget is shared between


def measure(repo: Path, mosaic: Path, readers: int) -> None:
    """Print the seconds and tiles of one reader band read with ``readers``' share of the budget."""
    sys.path[:0] = [str(repo.resolve())]
    from srl_core.raster.grid import make_grid
    from srl_core.raster.reader import Normaliser, TileBatch, grid_batches, plan_windows, reader_bands
    from srl_core.raster.source import open_source
    from srl_core.raster.writer import align_strip_rows, output_block_size

    source = open_source(str(mosaic), 3)
    grid = make_grid(source.width, source.height, 17)
    dim = 86  # the bundled model's embedding size sets the strip height
    strip_rows, chunk_cols = plan_windows(grid, 3, 4 * dim)
    strip_rows = align_strip_rows(strip_rows, output_block_size(grid.cols, grid.rows, dim))
    band = reader_bands(grid.rows, strip_rows, 8)[1]
    started, tiles = time.perf_counter(), 0
    for item in grid_batches(source, grid, Normaliser([0] * 3, [1] * 3), 1024, 0.5, strip_rows, chunk_cols,
                             None, band, readers):
        tiles += len(item.tiles) if isinstance(item, TileBatch) else 0
    print(time.perf_counter() - started, tiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="An older checkout to compare with.")
    parser.add_argument("--mosaic", default="12x9", help="Copies of the scene across x down (default 12x9).")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="A 6 x 2 mosaic, the 8 readers' share, one round.")
    parser.add_argument("--measure", nargs=3, metavar=("REPO", "MOSAIC", "READERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(Path(args.measure[0]), Path(args.measure[1]), int(args.measure[2]))
        return
    sys.path.insert(0, str(HERE))
    from bench_tiles import mosaic_shape, scene_path, write_mosaic

    across, down = (6, 2) if args.quick else mosaic_shape(args.mosaic)
    rounds, shares = (1, SHARES[:1]) if args.quick else (args.rounds, SHARES)
    repos = {"before": args.before} if args.before else {}
    repos["now"] = HERE.parent
    with tempfile.TemporaryDirectory() as folder:
        mosaic = Path(folder) / "mosaic.tif"
        write_mosaic(scene_path(), mosaic, across, down)
        print(f"{across} x {down} mosaic of the Landsat scene, one reader's band of tile rows "
              f"(17 px, stride 17); before = {args.before}; best of {rounds} alternated rounds, seconds:")
        print(f"{'read-ahead share':>16s} {'tiles':>8s} " + " ".join(f"{n:>8s}" for n in repos)
              + f" {'before/now':>10s}" * bool(args.before))
        for readers in shares:
            best, tiles = {}, 0
            for _ in range(rounds):
                for name, repo in repos.items():
                    out = subprocess.run([sys.executable, __file__, "--measure", str(repo), str(mosaic),
                                          str(readers)],
                                         check=True, capture_output=True, text=True).stdout.split()
                    best[name] = min(best.get(name, float("inf")), float(out[0]))
                    tiles = int(out[1])
            ratio = f" {best['before'] / best['now']:10.2f}" if args.before else ""
            times = " ".join(f"{best[n]:8.2f}" for n in repos)
            print(f"{'1/' + str(readers):>16s} {tiles:8d} {times}{ratio}", flush=True)


if __name__ == "__main__":
    main()
