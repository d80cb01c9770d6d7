"""Command-line start-up: does a command import only what it runs?

Times, in fresh processes run interleaved (the machine may be shared), ``python -m srl_core
embed-raster --help`` against ``python -c "import srl_core.tiles"`` (the engine the command
runs, the least it must import), and ``python -m srl_core models`` (no torch at all). Prints
each one's median wall time and the median of the paired ratios (goal: embed-raster --help
<= 1.1x importing srl_core.tiles).

Also what loading a bundled model adds to a command: importing ``srl_core.location`` alone against
importing it and loading the bundled location model (whose size check before the build once cost
1.8 s, ``tests/test_model_build.py``), and the same for the tile engine and ``tile2vec-l8-rgb-pixels64``.

Usage: ``python benchmarks/bench_startup.py [--rounds 7] [--repo DIR]``; ``--repo`` runs the commands in
another checkout (e.g. an older commit's worktree) to compare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import srl_core.tiles": [sys.executable, "-c", "import srl_core.tiles"],
    "embed-raster --help": [sys.executable, "-m", "srl_core", "embed-raster", "--help"],
    "models": [sys.executable, "-m", "srl_core", "models"],
    "import srl_core.location": [sys.executable, "-c", "import srl_core.location"],
    "+ load location model": [sys.executable, "-c", "import srl_core.location; from srl_core.bundle import "
                              "load_model; load_model('satclip-style-bluemarble-sh20-basis10')"],
    "+ load tile model": [sys.executable, "-c", "import srl_core.tiles; from srl_core.bundle import "
                          "load_model; load_model('tile2vec-l8-rgb-pixels64')"],
}
# (a command, what it adds to): the median of the paired differences is printed
LOADS = {"+ load location model": "import srl_core.location", "+ load tile model": "import srl_core.tiles"}


def run(command: list[str], repo: Path) -> float:
    """Wall seconds of one fresh process."""
    start = time.perf_counter()
    subprocess.run(command, cwd=repo, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 rounds (make benchmarks).")
    parser.add_argument("--repo", type=Path, default=REPO, help="Checkout whose srl_core runs.")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 2
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    names = list(COMMANDS)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(run(COMMANDS[name], args.repo))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{args.repo}: {args.rounds} interleaved rounds, load average {load}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24s} median {median:6.2f} s (range {min(values):.2f}..{max(values):.2f})")
    paired = [h / t for h, t in zip(times["embed-raster --help"], times["import srl_core.tiles"])]
    print(f"embed-raster --help / import srl_core.tiles: {statistics.median(paired):.2f}x "
          f"(rounds {min(paired):.2f}..{max(paired):.2f}; goal <= 1.1)")
    for name, base in LOADS.items():
        added = [1e3 * (a - b) for a, b in zip(times[name], times[base])]
        print(f"{name} adds to {base}: median {statistics.median(added):.0f} ms "
              f"(rounds {min(added):.0f}..{max(added):.0f})")


if __name__ == "__main__":
    main()
