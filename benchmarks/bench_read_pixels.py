"""Reading k pixels' embeddings back (a top-k's results) from an embedding raster larger than GDAL's cache.

Why: ``top_k_raster`` reads its k results' embeddings back after its scan. One 1x1 read per result, in rank
order (the code before session 28), decodes a whole stored block again for nearly every result once the
raster outgrows GDAL's block cache; ``EmbeddingRasterReader.read_pixels`` now reads them cell by cell, as
``sample_at`` reads points. This writes a synthetic embedding raster (SIZE² px, BANDS float32 bands,
256 px DEFLATE tiles, as embed-raster writes them), caps GDAL's cache below its size (``--cache-mb``, as a
laptop's 5 % of RAM is below a large raster), and times, in one run, the same K random pixels read
one by one, by ``read_pixels`` and by ``sample_at``, checking that all three give the same values.

    .venv/bin/python benchmarks/bench_read_pixels.py [--size 2048] [--bands 32] [--k 3000] [--cache-mb 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srl_core.embedding_format import field_names, raster_metadata  # noqa: E402
from srl_core.raster.blocks import EmbeddingRasterReader, Window  # noqa: E402
from srl_core.raster.geotiff import create_geotiff  # noqa: E402
from srl_core.vector.crs import crs_to_wkt  # noqa: E402


def write_raster(path: Path, size: int, bands: int) -> None:
    """A smooth random embedding raster (compresses roughly as real embeddings do), band by band."""
    geotransform = (500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0)
    ds = create_geotiff(str(path), size, size, bands, np.float32, geotransform, crs_to_wkt(32617),
                        float("nan"), raster_metadata("bench", bands, 17, 17), field_names(bands),
                        predictor=False)
    rng = np.random.default_rng(0)
    for b in range(bands):
        coarse = rng.normal(size=(size // 32 + 1, size // 32 + 1)).astype(np.float32)
        band = np.kron(coarse, np.ones((32, 32), np.float32))[:size, :size]
        ds.GetRasterBand(b + 1).WriteArray(band + 0.1 * rng.normal(size=(size, size)).astype(np.float32))
    ds = None


def one_by_one(reader: EmbeddingRasterReader, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The read-back before session 28: a 1x1 read per pixel, in the order given."""
    out = np.empty((len(cols), reader.info.size), np.float32)
    for i, (c, r) in enumerate(zip(cols, rows)):
        out[i] = reader.read(Window(int(c), int(r), 1, 1)).data[:, 0, 0]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--bands", type=int, default=32)
    parser.add_argument("--k", type=int, default=3000)
    parser.add_argument("--cache-mb", type=int, default=64)
    args = parser.parse_args()
    gdal.SetCacheMax(args.cache_mb * 1024 * 1024)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "emb.tif"
        started = time.perf_counter()
        write_raster(path, args.size, args.bands)
        raw = args.size ** 2 * args.bands * 4 / 2 ** 20
        print(f"raster {args.size}² x {args.bands} float32 ({raw:,.0f} MiB raw) written in "
              f"{time.perf_counter() - started:.1f} s; GDAL cache {args.cache_mb} MiB")
        rng = np.random.default_rng(1)
        flat = rng.choice(args.size * args.size, args.k, replace=False)
        cols, rows = flat % args.size, flat // args.size
        timings, values = {}, []
        for name in ("one by one (before)", "read_pixels (now)", "sample_at"):
            with EmbeddingRasterReader(str(path)) as reader:
                started = time.perf_counter()
                if name.startswith("one"):
                    values.append(one_by_one(reader, cols, rows))
                elif name.startswith("read_pixels"):
                    values.append(reader.read_pixels(cols, rows))
                else:
                    values.append(reader.sample_at(reader.pixel_centres(cols, rows)))
                timings[name] = time.perf_counter() - started
        same = all(np.array_equal(values[0], v) for v in values[1:])
        for name, seconds in timings.items():
            print(f"{args.k:,} pixels, {name:20s} {seconds:7.2f} s")
        before, now = timings["one by one (before)"], timings["read_pixels (now)"]
        print(f"before / now: {before / now:.1f}x; now / sample_at: {now / timings['sample_at']:.2f}; "
              f"same values: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
