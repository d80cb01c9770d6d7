"""Peak memory per point of embedding a point layer and of reading an embedding point layer back.

Why: ``embed_points_file`` and the point analyses hold a whole layer in memory (no streaming), so
their memory per point decides how large a layer an analyst's machine can take before QGIS is
killed. With the bundled location model (356 values per point) embedding took about 7.2 kB per
point: the spread check converted all N embeddings to float64, twice, to sample 400 of them; reading
an embedding layer back built an (N, D) float64 copy beside its columns.

This writes random points over Europe (``--points``, a name, a real and an integer field), then, in
fresh processes, embeds them with the bundled location model and reads the output back
(``read_embedding_points``, what every point analysis calls), for this checkout and for
``--before`` (an older checkout, e.g. a worktree of the commit before a change), printing peak
resident memory (``ru_maxrss``), its slope in kB per point between the two sizes, and the ratios.

    .venv/bin/python benchmarks/bench_points_memory.py [--points 50000,200000] [--before DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL = "satclip-style-bluemarble-sh20-basis10"
WGS84 = 4326

CHILD = """
import resource, sys, warnings
sys.path.insert(0, {repo!r})
warnings.simplefilter("ignore")
if {step!r} == "embed":
    from srl_core.location import embed_points_file
    embed_points_file({points!r}, {output!r}, {model!r}, threads=1)
else:
    from srl_core.vector.points import read_embedding_points
    read_embedding_points({output!r})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_layer(path: Path, n: int) -> None:
    sys.path.insert(0, str(HERE.parent))
    from srl_core.vector.crs import spatial_reference
    from srl_core.vector.points import write_points

    rng = np.random.default_rng(0)
    xy = np.column_stack([rng.uniform(-10, 30, n), rng.uniform(35, 60, n)])
    wkt = spatial_reference(WGS84).ExportToWkt()
    write_points(path, xy, wkt, {"name": [f"p{i}" for i in range(n)], "v": rng.normal(size=n),
                                 "k": rng.integers(0, 9, n)})


def peak_mb(repo: Path, step: str, points: Path, output: Path) -> float:
    code = CHILD.format(repo=str(repo.resolve()), step=step, points=str(points), output=str(output),
                        model=MODEL)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", default="50000,200000", help="Two layer sizes, comma-separated.")
    parser.add_argument("--before", type=Path, help="An older checkout to compare with.")
    parser.add_argument("--quick", action="store_true",
                        help="10,000 and 40,000 points (for make benchmarks).")
    args = parser.parse_args()
    sizes = [10_000, 40_000] if args.quick else [int(v) for v in args.points.split(",")]
    repos = {"this": HERE.parent, **({"before": args.before} if args.before else {})}
    with tempfile.TemporaryDirectory() as folder:
        peaks: dict[tuple[str, str, int], float] = {}
        for n in sizes:
            layer = Path(folder) / f"points_{n}.gpkg"
            write_layer(layer, n)
            for name, repo in repos.items():
                out = Path(folder) / f"emb_{name}_{n}.gpkg"
                peaks[name, "embed", n] = peak_mb(repo, "embed", layer, out)
                peaks[name, "read", n] = peak_mb(repo, "read", layer, out)
        print(f"{MODEL}, peak resident memory (MB) and its slope (kB per point) between {sizes[0]:,} and "
              f"{sizes[-1]:,} points:")
        for step in ("embed", "read"):
            for name in repos:
                mb = [peaks[name, step, n] for n in sizes]
                slope = (mb[-1] - mb[0]) * 1024 / (sizes[-1] - sizes[0])
                sizes_mb = " ".join(f"{m:8.0f}" for m in mb)
                print(f"{step:5s} {name:6s} {sizes_mb}   {slope:5.2f} kB/point")
            if "before" in repos:
                ratio = peaks["before", step, sizes[-1]] / peaks["this", step, sizes[-1]]
                print(f"{step:5s} before / this at {sizes[-1]:,} points: {ratio:.2f}x")


if __name__ == "__main__":
    main()
