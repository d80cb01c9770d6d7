"""``embed-raster`` against the TorchGeo pipeline an analyst would otherwise write, whole process.

Why: the README says the engine is faster than TorchGeo's RasterDataset + GridGeoSampler +
DataLoader with the same model; this reproduces that claim. Each pipeline runs in a fresh
process (start-up, model loading and writing the output included, as an analyst runs them),
paired and alternated round by round, on the same raster, model, tile size, stride, batch size
and CPU threads, and in the same interpreter and torch build. The parent prints, per stride,
the wall time and peak memory (RSS) of each process, their ratio, and the largest difference
between the two pipelines' embeddings of the same tiles: the comparison is of the same work.

TorchGeo needs torchvision, and torchvision needs the torch it was built with, so run this from
a separate environment that has both (the README gives the commands); ``srl_core`` is taken
from this checkout.

    make bench-torchgeo    # builds .venv-torchgeo, then runs this file with its python
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
from pathlib import Path
from typing import Optional

import numpy as np
from osgeo import gdal

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

gdal.UseExceptions()

MODEL = "tile2vec-l8-rgb-compact"
TILE = 17
BATCH = 64
STRIDES = (17, 64)
# a size at which both grids coincide: TorchGeo's rows run from the raster's bottom edge, the
# engine's from its top, and with (size - tile) a multiple of 17 and of 64 they are the same
SIDE_STEPS = (3, 2)  # width and height in steps of lcm(17, 64) = 1088 px beyond one tile


def crop_size() -> tuple[int, int]:
    return tuple(TILE + 1088 * steps for steps in SIDE_STEPS)  # type: ignore[return-value]


def write_test_raster(path: Path) -> None:
    """A 2 x 2 mosaic of the bundled Landsat 8 scene cropped to :func:`crop_size`, in its layout."""
    from bench_tiles import scene_path, write_mosaic  # the parent's only: a child imports its pipeline alone

    mosaic = path.with_name("mosaic_full.tif")
    write_mosaic(scene_path(), mosaic, 2, 2)
    width, height = crop_size()
    ds = gdal.Open(str(mosaic))
    block_x, block_y = ds.GetRasterBand(1).GetBlockSize()
    compress = ds.GetMetadataItem("COMPRESSION", "IMAGE_STRUCTURE") or "NONE"
    gdal.Translate(str(path), ds, srcWin=[0, 0, width, height],
                   creationOptions=["TILED=YES", f"BLOCKXSIZE={block_x}", f"BLOCKYSIZE={block_y}",
                                    f"COMPRESS={compress}"])
    ds = None
    mosaic.unlink()


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or the largest of its children's), MiB."""
    return resource.getrusage(who).ru_maxrss / 1024


def run_torchgeo(raster: str, output: str, stride: int, threads: int, workers: int) -> int:
    """The TorchGeo pipeline: RasterDataset, GridGeoSampler, DataLoader, the model, a GeoTIFF."""
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    from srl_core.bundle import load_model

    torch.set_num_threads(threads)
    loaded = load_model(MODEL)
    module = loaded.module.eval()
    norm = loaded.card.inputs["normalisation"]
    mean = torch.tensor(norm["mean"], dtype=torch.float32)[:, None, None]
    std = torch.tensor(norm["std"], dtype=torch.float32)[:, None, None]

    class Scene(RasterDataset):
        filename_glob = Path(raster).name

    dataset = Scene(paths=str(Path(raster).parent))
    sampler = GridGeoSampler(dataset, size=TILE, stride=stride)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler, collate_fn=stack_samples,
                        num_workers=workers)
    ds = gdal.Open(raster)
    x0, res, _, y0, _, _ = ds.GetGeoTransform()
    cols = (ds.RasterXSize - TILE) // stride + 1
    rows = (ds.RasterYSize - TILE) // stride + 1
    out = np.full((loaded.card.embedding_size, rows, cols), np.nan, dtype=np.float32)
    done = 0
    for batch in loader:
        with torch.inference_mode():
            z = module((batch["image"] - mean) / std).numpy()
        for k, (xs, ys, _) in enumerate(batch["bounds"]):
            col, row = round((xs.start - x0) / (res * stride)), round((y0 - ys.stop) / (res * stride))
            if 0 <= row < rows and 0 <= col < cols:  # chips past the edge (TorchGeo pads them) dropped
                out[:, row, col] = z[k]
                done += 1
    driver = gdal.GetDriverByName("GTiff")
    dst = driver.Create(output, cols, rows, out.shape[0], gdal.GDT_Float32, ["TILED=YES", "COMPRESS=DEFLATE"])
    dst.SetGeoTransform((x0 + res * (TILE - stride) / 2, res * stride, 0, y0 - res * (TILE - stride) / 2, 0,
                         -res * stride))
    dst.SetProjection(ds.GetProjection())
    dst.WriteRaster(0, 0, cols, rows, out.tobytes())
    dst = None
    return done


def run_engine(raster: str, output: str, stride: int, threads: int) -> int:
    from srl_core.cli import main

    code = main(["embed-raster", raster, output, "--model", MODEL, "--stride", str(stride),
                 "--threads", str(threads), "--normalise", "model", "--batch-size", str(BATCH)])
    if code:
        raise SystemExit(code)
    ds = gdal.Open(output)  # held while its band is read: GDAL 3.6 frees the band with the dataset
    return int(np.isfinite(ds.GetRasterBand(1).ReadAsArray()).sum())


def child(args: argparse.Namespace) -> None:
    if args.child == "torchgeo":
        tiles = run_torchgeo(str(args.raster), args.output, args.stride, args.threads, args.workers)
    else:
        tiles = run_engine(str(args.raster), args.output, args.stride, args.threads)
    # a DataLoader worker is a fork: its peak counts the pages it shares with this process, so it is
    # reported beside this process's peak, not added to it (torch's CUDA build also forks ldconfig once)
    print(json.dumps({"tiles": tiles, "peak_mib": peak_rss_mib(),
                      "child_mib": peak_rss_mib(resource.RUSAGE_CHILDREN)}))


def timed(pipeline: str, raster: Path, output: Path, stride: int, threads: int,
          workers: int) -> tuple[float, dict]:
    command = [sys.executable, __file__, "--child", pipeline, "--raster", str(raster),
               "--output", str(output), "--stride", str(stride), "--threads", str(threads),
               "--workers", str(workers)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{pipeline} failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout.strip().splitlines()[-1])


def largest_difference(ours: Path, theirs: Path) -> float:
    a = gdal.Open(str(ours)).ReadAsArray().astype(np.float64)
    b = gdal.Open(str(theirs)).ReadAsArray().astype(np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    return float(np.abs(a - b)[both].max()) if both.any() else float("nan")


def compare(rounds: int, threads: int, workers: int, raster: Optional[Path],
            strides: tuple[int, ...] = STRIDES) -> None:
    import torch
    import torchgeo

    with tempfile.TemporaryDirectory() as folder:
        if raster is None:
            raster = Path(folder) / "scene_mosaic.tif"
            write_test_raster(raster)
        ds = gdal.Open(str(raster))
        print(f"torch {torch.__version__}, torchgeo {torchgeo.__version__}, GDAL {gdal.__version__}, "
              f"{os.cpu_count()} CPUs, load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
        print(f"raster: {raster.name}, {ds.RasterXSize} x {ds.RasterYSize} px, {ds.RasterCount} bands; "
              f"model {MODEL}, {TILE} px tiles, batch {BATCH}, {threads} thread(s), "
              f"DataLoader workers {workers}; "
              f"{rounds} rounds, alternated; time and memory of the whole process")
        print(f"{'stride':>6s} {'tiles':>7s} {'engine s':>9s} {'torchgeo s':>10s} {'speed-up':>8s} "
              f"{'(range)':>12s} {'engine MiB':>10s} {'torchgeo MiB':>12s} {'its worker':>10s} "
              f"{'max |dz|':>9s}")
        for stride in strides:
            ours, theirs = Path(folder) / "engine.tif", Path(folder) / "torchgeo.tif"
            runs: dict[str, list[tuple[float, dict]]] = {"engine": [], "torchgeo": []}
            for r in range(rounds):
                order = ("engine", "torchgeo") if r % 2 == 0 else ("torchgeo", "engine")
                for pipeline in order:
                    out = ours if pipeline == "engine" else theirs
                    runs[pipeline].append(timed(pipeline, raster, out, stride, threads, workers))
            ratios = sorted(t[0] / e[0] for e, t in zip(runs["engine"], runs["torchgeo"]))
            best_e = min(s for s, _ in runs["engine"])
            best_t = min(s for s, _ in runs["torchgeo"])
            mem_e = max(m["peak_mib"] for _, m in runs["engine"])
            mem_t = max(m["peak_mib"] for _, m in runs["torchgeo"])
            worker = max(m["child_mib"] for _, m in runs["torchgeo"]) if workers else 0.0
            tiles = runs["engine"][0][1]["tiles"]
            if runs["torchgeo"][0][1]["tiles"] != tiles:
                print(f"  (TorchGeo embedded {runs['torchgeo'][0][1]['tiles']} tiles, the engine {tiles})")
            print(f"{stride:6d} {tiles:7d} {best_e:9.2f} {best_t:10.2f} {best_t / best_e:7.2f}x "
                  f"{ratios[0]:5.2f}..{ratios[-1]:5.2f} {mem_e:10.0f} {mem_t:12.0f} {worker:10.0f} "
                  f"{largest_difference(ours, theirs):9.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="One round at the sparse stride only.")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of each pipeline's model.")
    parser.add_argument("--workers", type=int, default=1,
                        help="TorchGeo DataLoader worker processes (1: reading beside the model, as the "
                             "engine's reader thread does).")
    parser.add_argument("--raster", type=Path,
                        help="Raster to embed (default: a mosaic of the bundled scene).")
    parser.add_argument("--child", choices=("engine", "torchgeo"), help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--stride", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
    else:
        compare(1 if args.quick else args.rounds, args.threads, args.workers, args.raster,
                STRIDES[-1:] if args.quick else STRIDES)


if __name__ == "__main__":
    main()
