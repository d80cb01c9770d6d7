"""The quality check's sample: kept while the output is written, against read back from the file.

Why: every embedding run checks a sample of its output for degenerate embeddings. Read back
decimated from a GeoTIFF without overviews, that sample decodes every block of the output;
kept while writing (:class:`srl_core.embedding_quality.PositionSample`) it costs a key per
tile. This writes a random float32 output in the engine's own layout, strip by strip as the
engine does, and prints both times and their ratio, measured in one run.

    .venv/bin/python benchmarks/bench_quality_sample.py --size 1000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srl_core.embedding_quality import PositionSample, raster_sample  # noqa: E402
from srl_core.raster.geotiff import create_geotiff  # noqa: E402
from srl_core.raster.writer import output_block_size  # noqa: E402


def measure(size: int, dim: int) -> None:
    block = output_block_size(size, size, dim)
    rng = np.random.default_rng(0)
    sample, kept = PositionSample(size), 0.0
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "embeddings.tif")
        ds = create_geotiff(path, size, size, dim, "float32", (0, 1, 0, 0, 0, -1), "", float("nan"), {},
                            [f"e{i}" for i in range(dim)], block_size=block)
        for row0 in range(0, size, block):
            strip = rng.normal(size=(dim, min(block, size - row0), size)).astype(np.float32)
            started = time.perf_counter()
            sample.add_window(row0, 0, strip)
            kept += time.perf_counter() - started
            ds.WriteArray(strip, 0, row0)
            ds.FlushCache()
        ds = None
        started = time.perf_counter()
        raster_sample(path)
        read = time.perf_counter() - started
        mib = os.path.getsize(path) / 2**20
    print(f"{size} x {size} x {dim} float32 output ({mib:.0f} MiB): read back {read:.2f} s, kept while "
          f"writing {kept:.3f} s ({read / kept:.0f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1000, help="Output side in pixels (tiles).")
    parser.add_argument("--dim", type=int, default=64, help="Embedding size (bands).")
    parser.add_argument("--quick", action="store_true", help="A 300 x 300 output.")
    args = parser.parse_args()
    measure(300 if args.quick else args.size, args.dim)


if __name__ == "__main__":
    main()
