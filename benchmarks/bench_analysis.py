"""Speed and memory of the embedding analyses, measured side by side in one run.

1. k-means on N x 128 embeddings (default 1,000,000): srl_core's EmbeddingKMeans (fit on a
   200,000 sample with mini-batches, then predict all) beside scikit-learn's full-batch KMeans
   on everything: seconds, peak resident memory added, inertia and agreement with the truth.
2. Applying the fitted model to embedding rasters block by block (default 5,000 and 10,000 square,
   64 bands; --quick 1,024 and 2,048): pixels/second and peak memory, which must not grow with
   the raster (GDAL's block cache is capped with --gdal-cache-mib, default 128).
3. Cosine similarity raster over the same raster: pixels/second.
4. Top-10 search over N points: exact vs approximate (faiss IVF, nprobe calibrated at build time)
   queries/second and recall@10 against exact search on held-out queries.

Run:  .venv/bin/python benchmarks/bench_analysis.py [--quick] [--points N] [--raster-size S]
Peak memory is the growth of the process's peak resident set (VmHWM, reset before each case
through /proc/self/clear_refs), so it counts NumPy, BLAS and OpenMP buffers alike.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sklearn.cluster import KMeans  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from srl_core.analysis._common import l2_normalize  # noqa: E402
from srl_core.analysis.clustering import EmbeddingKMeans, apply_kmeans_raster  # noqa: E402
from srl_core.analysis.search import SimilarityIndex, exact_top_k, recall_at_k  # noqa: E402
from srl_core.analysis.similarity import Query, similarity_raster  # noqa: E402
from srl_core.embedding_format import field_names, raster_metadata  # noqa: E402
from srl_core.raster.blocks import block_windows  # noqa: E402
from srl_core.raster.geotiff import create_geotiff  # noqa: E402


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


def bench_kmeans(n: int, k: int) -> EmbeddingKMeans:
    x, truth = mixture(n, 128, k, seed=0)
    with Measure() as ours:
        model = EmbeddingKMeans(k, sample_size=200_000, seed=0).fit(x, "bench")
        labels = model.predict(x)
    with Measure() as full:
        sk = KMeans(k, n_init=1, random_state=0).fit(x)

    def inertia(centres, lab):
        return float(((x - centres[lab]) ** 2).sum() / n)

    print(f"\n== k-means, {n:,} x 128, k={k} ==")
    print(f"{'':28s}{'seconds':>10s}{'peak MiB':>10s}{'inertia/pt':>12s}{'ARI':>7s}")
    rows = [
        ("srl EmbeddingKMeans", ours, inertia(model.cluster_centers_, labels), labels),
        ("sklearn KMeans (full)", full, inertia(sk.cluster_centers_, sk.labels_), sk.labels_),
    ]
    for name, m, inert, lab in rows:
        ari = adjusted_rand_score(truth, lab)
        print(f"{name:28s}{m.seconds:10.1f}{m.peak_mib:10.0f}{inert:12.2f}{ari:7.3f}")
    mem_ratio = full.peak_mib / max(ours.peak_mib, 1)
    print(f"ratio full/srl: time {full.seconds / ours.seconds:.1f}x, peak memory {mem_ratio:.1f}x")
    return model


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


def bench_top_k(n: int, n_queries: int = 200) -> None:
    x = low_rank(n + n_queries, 128, 16, seed=2)
    db, queries = x[:n], x[n:]
    print(f"\n== top-10 search, {n:,} points x 128 (16-d manifold + noise), {n_queries} held-out queries ==")
    with Measure() as build_exact:
        exact = SimilarityIndex(db, "exact")
    with Measure() as q_exact:
        truth = exact.search(queries, 10)[1]
    with Measure() as build_approx:
        approx = SimilarityIndex(db, "approximate")
    with Measure() as q_approx:
        found = approx.search(queries, 10)[1]
    recall = recall_at_k(found, truth)
    # single-query latency too (one query at a time, as an interactive tool asks)
    with Measure() as one_exact:
        for q in queries[:20]:
            exact.search(q[None], 10)
    with Measure() as one_approx:
        for q in queries[:20]:
            approx.search(q[None], 10)
    sanity = exact_top_k(l2_normalize(db[:1000]), l2_normalize(queries[:5]), 10)[1]
    assert sanity.shape == (5, 10)
    print(f"{'':14s}{'build s':>9s}{'batch q/s':>11s}{'single q/s':>12s}{'recall@10':>11s}{'peak MiB':>10s}")
    print(f"{'exact':14s}{build_exact.seconds:9.1f}{n_queries / q_exact.seconds:11,.0f}"
          f"{20 / one_exact.seconds:12,.0f}{1.0:11.3f}{q_exact.peak_mib:10.0f}")  # fmt: skip
    print(f"{'faiss IVF':14s}{build_approx.seconds:9.1f}{n_queries / q_approx.seconds:11,.0f}"
          f"{20 / one_approx.seconds:12,.0f}{recall:11.3f}{build_approx.peak_mib:10.0f}")  # fmt: skip
    print(
        f"approximate: nprobe {approx.approximate.nprobe} of {approx.approximate.nlist} lists, "
        f"recall at build "
        f"{approx.calibrated_recall:.3f}; speed-up {q_exact.seconds / q_approx.seconds:.1f}x (batch), "
        f"{one_exact.seconds / one_approx.seconds:.1f}x (single)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="2,048 x 2,048 raster instead of 10,000 x 10,000."
    )
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--raster-size", type=int, default=None)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--gdal-cache-mib", type=int, default=128, help="GDAL block cache limit.")
    parser.add_argument("--skip", nargs="*", default=[], choices=["kmeans", "raster", "topk"])
    parser.add_argument("--workdir", default=tempfile.gettempdir(),
                        help="Folder for the generated rasters (26 GB free for 10,000 x 10,000 x 64).")
    args = parser.parse_args()
    size = args.raster_size or (2048 if args.quick else 10_000)
    gdal.SetCacheMax(args.gdal_cache_mib * 2**20)
    if "kmeans" not in args.skip:
        bench_kmeans(args.points, args.clusters)
    if "raster" not in args.skip:
        with tempfile.TemporaryDirectory(dir=args.workdir) as folder:
            bench_raster(args.clusters, [size // 2, size], folder)
    if "topk" not in args.skip:
        bench_top_k(args.points)


if __name__ == "__main__":
    main()
