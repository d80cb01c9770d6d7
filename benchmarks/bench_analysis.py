"""Speed and memory of the embedding analyses against the tools a user would otherwise pick, in one run.

1. k-means on N x 64 embeddings (default 1,000,000): srl_core's EmbeddingKMeans (a 200,000
   sample, NaN check, scikit-learn MiniBatchKMeans) against MiniBatchKMeans fitted on the same
   sample with the same settings; then predicting every row with each. Prints the ratios of fit
   time and of added peak memory (goal <= 1.2).
2. Applying the fitted model to embedding rasters block by block (default 5,000 and 10,000 square,
   64 bands; --quick 1,024 and 2,048): pixels/second and peak memory, which must not grow with
   the raster (GDAL's block cache is capped with --gdal-cache-mib, default 128).
3. Cosine similarity raster over the same raster: pixels/second.
4. Top-10 search over N points with --queries held-out queries (default 1,000), build + search:
   srl exact against faiss IndexFlatIP, srl approximate (IVF with nprobe calibrated at build)
   against faiss IndexIVFFlat built the usual way with the same nlist and nprobe. Prints the
   ratios of time (goal <= 1.2) and of added peak memory (goal <= 1.5), and recall@10.

Cases run interleaved for --rounds rounds (the machine may be shared); each ratio is printed as
the median over the rounds with its range. Everything runs on --threads threads (0: srl_core's
default), srl and its peers alike.

Run:  .venv/bin/python benchmarks/bench_analysis.py [--quick] [--points N] [--raster-size S]
Peak memory is the growth of the process's peak resident set (VmHWM, reset before each case
through /proc/self/clear_refs), so it counts NumPy, BLAS and OpenMP buffers alike.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import faiss  # noqa: E402
from sklearn.cluster import MiniBatchKMeans  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from srl_core.analysis._common import subsample  # noqa: E402
from srl_core.analysis.clustering import EmbeddingKMeans, apply_kmeans_raster  # noqa: E402
from srl_core.analysis.search import SimilarityIndex, recall_at_k  # noqa: E402
from srl_core.analysis.similarity import Query, similarity_raster  # noqa: E402
from srl_core.embedding_format import field_names, raster_metadata  # noqa: E402
from srl_core.raster.blocks import block_windows  # noqa: E402
from srl_core.raster.geotiff import create_geotiff  # noqa: E402
from srl_core.threads import limit_threads  # noqa: E402

SAMPLE = 200_000  # EmbeddingKMeans's default sample


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Measure:
    """Wall time and growth of peak RSS (MiB) over a ``with`` block."""

    def __enter__(self) -> Measure:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        self.rss0 = _status_kb("VmRSS")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.peak_mib = (_status_kb("VmHWM") - self.rss0) / 1024


def mixture(n: int, d: int, k: int, seed: int, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """n points around k random centres (an embedding-like clustered cloud), float32."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)).astype(np.float32) * 3
    labels = rng.integers(0, k, n)
    x = centres[labels]
    x += rng.normal(scale=spread, size=(n, d)).astype(np.float32)
    return x, labels


def bench_kmeans(n: int, k: int, rounds: int) -> None:
    """EmbeddingKMeans (sample, NaN check, MiniBatchKMeans) against MiniBatchKMeans on the same sample."""
    x, truth = mixture(n, 64, k, seed=0)
    print(f"\n== k-means, {n:,} x 64, k={k}, fit on a {SAMPLE:,} sample: srl vs scikit-learn MiniBatchKMeans "
          "(same sample, batch 4096, n_init 3) ==")
    print(f"{'round':>5s}  {'case':24s}{'fit s':>8s}{'fit MiB':>9s}{'predict s':>10s}{'predict MiB':>12s}"
          f"{'ARI':>7s}")

    def ours() -> tuple[Measure, Measure, np.ndarray]:
        with Measure() as fit:
            model = EmbeddingKMeans(k, sample_size=SAMPLE, seed=0).fit(x, "bench")
        with Measure() as predict:
            labels = model.predict(x)
        return fit, predict, labels

    def peer() -> tuple[Measure, Measure, np.ndarray]:
        with Measure() as fit:
            sample = subsample(x, SAMPLE, 0)  # the same rows EmbeddingKMeans fits on
            model = MiniBatchKMeans(k, batch_size=4096, n_init=3, random_state=0, max_no_improvement=20)
            model.fit(sample)
            del sample
        with Measure() as predict:
            labels = model.predict(x)
        return fit, predict, labels

    ratios = []
    for r in range(rounds):  # interleaved, the order alternating: the machine may be shared
        runs = {"srl EmbeddingKMeans": ours, "sklearn MiniBatchKMeans": peer}
        names = list(runs) if r % 2 == 0 else list(runs)[::-1]
        results = {name: runs[name]() for name in names}
        for name, (fit, pred, lab) in results.items():
            print(f"{r + 1:5d}  {name:24s}{fit.seconds:8.1f}{fit.peak_mib:9.0f}{pred.seconds:10.1f}"
                  f"{pred.peak_mib:12.0f}{adjusted_rand_score(truth, lab):7.3f}")
        (a, _, _), (b, _, _) = results["srl EmbeddingKMeans"], results["sklearn MiniBatchKMeans"]
        ratios.append((a.seconds / b.seconds, a.peak_mib / max(b.peak_mib, 1)))
    _print_ratios("srl / MiniBatchKMeans", ["fit time", "fit added memory (goal <= 1.2)"], ratios)


def _print_ratios(title: str, names: list[str], ratios: list[tuple[float, ...]]) -> None:
    """Each ratio's median over the rounds and its range (run-to-run spread)."""
    for i, name in enumerate(names):
        values = sorted(r[i] for r in ratios)
        print(f"{title}: {name} {np.median(values):.2f}x (rounds {values[0]:.2f}..{values[-1]:.2f})")


def make_raster(path: str, size: int, bands: int, k: int) -> None:
    """A size x size x bands embedding raster of k clusters, written block by block."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(k, bands)).astype(np.float32) * 3
    ds = create_geotiff(
        path, size, size, bands, np.float32, (0, 10, 0, size * 10, 0, -10), None, nodata=float("nan"),
        metadata=raster_metadata("bench", bands, 32, 32), band_names=field_names(bands),
    )  # fmt: skip
    for w in block_windows(size, size, 256, 256, bands, max_bytes=256 * 256 * bands * 4 * 8):
        lab = rng.integers(0, k, (w.height, w.width))
        block = centres[lab] + rng.normal(scale=1.0, size=(w.height, w.width, bands)).astype(np.float32)
        for b in range(bands):
            ds.GetRasterBand(b + 1).WriteArray(block[..., b], w.xoff, w.yoff)
    ds = None


def bench_raster(model_k: int, sizes: list[int], folder: str) -> None:
    """Apply k-means and a similarity query to rasters of growing size: speed and peak memory."""
    bands = 64
    x, _ = mixture(50_000, bands, model_k, seed=1)
    model = EmbeddingKMeans(model_k, seed=0).fit(x, "bench")
    query = Query().add_vectors(x[:3], "bench")
    cache_mib = gdal.GetCacheMax() / 2**20
    print(f"\n== rasters x {bands} bands; GDAL block cache limited to {cache_mib:.0f} MiB ==")
    head = f"{'raster':>14s}{'GiB':>6s}{'make s':>8s}  {'case':28s}"
    print(f"{head}{'seconds':>9s}{'pixels/s':>11s}{'peak MiB':>10s}")
    for size in sizes:
        path = str(Path(folder) / f"emb{size}.tif")
        t0 = time.perf_counter()
        make_raster(path, size, bands, model_k)
        made = time.perf_counter() - t0
        gib = size * size * bands * 4 / 2**30
        with Measure() as apply:
            apply_kmeans_raster(model, path, str(Path(folder) / "classes.tif"))
        with Measure() as sim:
            similarity_raster(path, query, str(Path(folder) / "sim.tif"))
        for name, m in (("apply k-means (class raster)", apply), ("cosine similarity raster", sim)):
            label = f"{size:,} x {size:,}"
            rate = size * size / m.seconds
            cols = f"{label:>14s}{gib:6.2f}{made:8.0f}  {name:28s}"
            print(f"{cols}{m.seconds:9.1f}{rate:11,.0f}{m.peak_mib:10.0f}")
        Path(path).unlink()
    print("peak memory = one window (64 MiB budget) + GDAL's block cache; it does not grow with the raster")


def low_rank(n: int, d: int, latent: int, seed: int) -> np.ndarray:
    """n points near a random ``latent``-dimensional subspace of R^d: no clusters to make search easy."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(latent, d)).astype(np.float32)
    x = rng.normal(size=(n, latent)).astype(np.float32) @ basis
    x += 0.3 * rng.normal(size=(n, d)).astype(np.float32)
    return x


def _faiss_flat(db: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """faiss IndexFlatIP as its documentation shows it: normalise a copy in place, add, search."""
    unit = db.copy()
    faiss.normalize_L2(unit)
    index = faiss.IndexFlatIP(db.shape[1])
    index.add(unit)
    del unit
    q = queries.copy()
    faiss.normalize_L2(q)
    return index.search(q, k)[1]


def _faiss_ivf(db: np.ndarray, queries: np.ndarray, k: int, nlist: int, nprobe: int) -> np.ndarray:
    """faiss IndexIVFFlat the usual way: normalise a copy, train on 40 x nlist rows, add, search."""
    unit = db.copy()
    faiss.normalize_L2(unit)
    quantizer = faiss.IndexFlatIP(db.shape[1])
    index = faiss.IndexIVFFlat(quantizer, db.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 0
    index.train(unit[np.random.default_rng(0).choice(len(unit), min(len(unit), 40 * nlist), replace=False)])
    index.add(unit)
    del unit
    index.nprobe = nprobe
    q = queries.copy()
    faiss.normalize_L2(q)
    return index.search(q, k)[1]


def bench_top_k(n: int, n_queries: int, rounds: int) -> None:
    """Build + search of srl's SimilarityIndex against faiss, exact and approximate, time and added memory."""
    x = low_rank(n + n_queries, 64, 16, seed=2)
    db, queries = x[:n], x[n:]
    print(f"\n== top-10 search, {n:,} points x 64 (16-d manifold + noise), {n_queries:,} held-out queries, "
          "build + search: srl vs faiss ==")
    print(f"{'round':>5s}  {'case':30s}{'seconds':>9s}{'added MiB':>11s}{'recall@10':>11s}")
    ratios = []
    def srl_approximate() -> tuple[np.ndarray, tuple[int, int]]:
        index = SimilarityIndex(db, "approximate")
        return index.search(queries, 10)[1], (index.approximate.nlist, index.approximate.nprobe)

    for r in range(rounds):  # interleaved, the order alternating: the machine may be shared
        first = r % 2 == 0
        if not first:
            with Measure() as flat:
                found_flat = _faiss_flat(db, queries, 10)
        with Measure() as exact:
            truth = SimilarityIndex(db, "exact").search(queries, 10)[1]
        if first:
            with Measure() as flat:
                found_flat = _faiss_flat(db, queries, 10)
            with Measure() as approx:
                found, ivf_args = srl_approximate()
        with Measure() as ivf:
            found_ivf = _faiss_ivf(db, queries, 10, *ivf_args)
        if not first:
            with Measure() as approx:
                found, ivf_args = srl_approximate()
        rows = (("srl exact", exact, 1.0), ("faiss IndexFlatIP", flat, recall_at_k(found_flat, truth)),
                ("srl approximate (calibrated)", approx, recall_at_k(found, truth)),
                (f"faiss IVF nlist {ivf_args[0]} nprobe {ivf_args[1]}", ivf, recall_at_k(found_ivf, truth)))
        for name, m, recall in rows:
            print(f"{r + 1:5d}  {name:30s}{m.seconds:9.1f}{m.peak_mib:11.0f}{recall:11.3f}")
        ratios.append((exact.seconds / flat.seconds, exact.peak_mib / max(flat.peak_mib, 1),
                       approx.seconds / ivf.seconds, approx.peak_mib / max(ivf.peak_mib, 1)))
    _print_ratios("srl / faiss", ["exact time (goal <= 1.2)", "exact added memory (goal <= 1.5)",
                                  "approximate time (goal <= 1.2)", "approximate added memory (goal <= 1.5)"],
                  ratios)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="2,048 x 2,048 raster instead of 10,000 x 10,000."
    )
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: srl_core's default).")
    parser.add_argument("--raster-size", type=int, default=None)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--gdal-cache-mib", type=int, default=128, help="GDAL block cache limit.")
    parser.add_argument("--skip", nargs="*", default=[], choices=["kmeans", "raster", "topk"])
    parser.add_argument("--workdir", default=tempfile.gettempdir(),
                        help="Folder for the generated rasters (26 GB free for 10,000 x 10,000 x 64).")
    args = parser.parse_args()
    size = args.raster_size or (2048 if args.quick else 10_000)
    gdal.SetCacheMax(args.gdal_cache_mib * 2**20)
    with limit_threads(args.threads) as threads:
        print(f"{threads} thread(s), faiss {faiss.__version__}, load average "
              + ", ".join(f"{v:.1f}" for v in os.getloadavg()))
        if "kmeans" not in args.skip:
            bench_kmeans(args.points, args.clusters, args.rounds)
        if "raster" not in args.skip:
            with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
                bench_raster(args.clusters, [size // 2, size], folder)
        if "topk" not in args.skip:
            bench_top_k(args.points, args.queries, args.rounds)


if __name__ == "__main__":
    main()
