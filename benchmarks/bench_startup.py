"""Command-line start-up: does a command import only what it runs?

Times, in fresh processes run interleaved (the machine may be shared), ``python -m srl_core
embed-raster --help`` against ``python -c "import srl_core.tiles"`` (the engine the command
runs, the least it must import), and ``python -m srl_core models`` (no torch at all). Prints
each one's median wall time and the median of the paired ratios (goal: embed-raster --help
<= 1.1x importing srl_core.tiles).

Usage: ``python benchmarks/bench_startup.py [--rounds 7]``.
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
}


def run(command: list[str]) -> float:
    """Wall seconds of one fresh process."""
    start = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="2 rounds (make benchmarks).")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 2
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    names = list(COMMANDS)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name].append(run(COMMANDS[name]))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{args.rounds} interleaved rounds, load average {load}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:24s} median {median:6.2f} s (range {min(values):.2f}..{max(values):.2f})")
    paired = [h / t for h, t in zip(times["embed-raster --help"], times["import srl_core.tiles"])]
    print(f"embed-raster --help / import srl_core.tiles: {statistics.median(paired):.2f}x "
          f"(rounds {min(paired):.2f}..{max(paired):.2f}; goal <= 1.1)")


if __name__ == "__main__":
    main()
