"""The tile engine's main thread when the model costs nothing: what bounds it beside a fast GPU.

Why: on a GPU the bundled 17 px models embed a mosaic of the Landsat scene faster than its
file is read and its embeddings written, and the main thread (holding embeddings until their
block row is complete, writing the GeoTIFF, the checks) becomes the bound. That part can be
measured on any machine: this runs ``embed_raster`` on the 4 x 3 mosaic (``--mosaic``) of the real
Landsat 8 scene with the model replaced by one that costs nothing but returns real embeddings (the
bundled ``tile2vec-l8-rgb-compact``'s embeddings of the scene, replayed in turn, so that the
output compresses as a real one does), at the GPU's default batch (1024) and a given plan of
readers and compressing threads, and prints the main thread's seconds per stage
(``engine_stages.py``) at strides 17 and 64, each ``--rounds`` times.

``--repo DIR`` imports ``srl_core`` from another checkout (e.g. an older commit's worktree) to
compare the same stages before and after a change. ``--model-us`` gives the model a cost that
uses no core, as a GPU's (the main thread waits for each batch), and ``--tilenet`` the 50 px
TileNet's shape: together they show, on any machine, whether the engine keeps such a model busy
(the writing thread, the readers' bands); each line then prints the model's time over the run's.

    .venv/bin/python benchmarks/bench_main_thread.py [--readers 2 --compress 2] [--rounds 2] [--mosaic 4x3]
        [--write-thread on|off|both] [--model-us 120 --tilenet]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=2, help="Reader threads (default 2).")
    parser.add_argument("--compress", type=int, default=2, help="GDAL compressing threads (default 2).")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="Checkout whose srl_core runs.")
    parser.add_argument("--mosaic", default="4x3", help="Copies of the scene across x down (default 4x3).")
    parser.add_argument("--write-thread", choices=("on", "off", "both"), default="on",
                        help="Embeddings written in a thread of their own, as beside a GPU (default), "
                             "by the main thread, or both alternated.")
    parser.add_argument("--model-us", type=float, default=0.0,
                        help="Microseconds per tile the model takes without using a core, as on a GPU: "
                             "batches are done one after another, each waited for (default 0, free).")
    parser.add_argument("--tilenet", action="store_true",
                        help="The shape of the 50 px TileNet of bench_cuda.py (512-d output, strides 50 and "
                             "64) instead of the bundled model's (64-d, strides 17 and 64).")
    parser.add_argument("--quick", action="store_true", help="A 2 x 2 mosaic, one round.")
    args = parser.parse_args()
    sys.path[:0] = [str(args.repo.resolve()), str(HERE)]
    # srl_core from --repo, imported before bench_tiles puts this checkout first on the path
    engine = importlib.import_module("srl_core.tiles")
    encoder_module = importlib.import_module("srl_core.tile_encoder")
    plan_type = importlib.import_module("srl_core.threads").IoPlan

    from bench_tiles import mosaic_shape, scene_path, write_mosaic
    from engine_stages import describe, main_thread_seconds
    from osgeo import gdal

    if args.tilenet:
        from bench_cuda import tilenet_50px
        model, how = tilenet_50px(), "raster"
    else:
        model, how = "tile2vec-l8-rgb-compact", "model"
    size = 512 if args.tilenet else 64
    tile = 50 if args.tilenet else 17

    with tempfile.TemporaryDirectory() as folder:
        embedded = Path(folder) / "scene_embeddings.tif"
        engine.embed_raster(scene_path(), embedded, "tile2vec-l8-rgb-compact", threads=1)
        real = gdal.Open(str(embedded)).ReadAsArray().astype(np.float32)
        real = np.ascontiguousarray(real.reshape(real.shape[0], -1).T)
        real = real[np.isfinite(real).all(axis=1)]

        class Replay:
            """A model that costs nothing: the next embeddings of ``real``, in turn."""

            def __init__(self, loaded: object, device: str = "cpu", precision: str = "fp32") -> None:
                import torch
                self.device, self.at, self.busy_until = torch.device("cpu"), 0, 0.0

            tiles = 0  # embedded in this run, by every instance

            def _next(self, tiles: np.ndarray) -> np.ndarray:
                picked = real[np.arange(self.at, self.at + len(tiles)) % len(real)]
                self.at += len(tiles)
                Replay.tiles += len(tiles)
                return np.tile(picked, (1, size // picked.shape[1]))  # the TileNet's 512: 8 copies

            def __call__(self, tiles: np.ndarray) -> np.ndarray:  # the engine's call in older checkouts
                return self._next(tiles)

            def submit(self, tiles: np.ndarray) -> object:  # the engine's call since it keeps one in flight
                import torch
                done = None
                if args.model_us:  # a device that runs one batch after another while the host goes on
                    start = max(time.perf_counter(), self.busy_until)
                    self.busy_until = start + len(tiles) * args.model_us / 1e6
                    done = Until(self.busy_until)
                return encoder_module.PendingEmbeddings(torch.from_numpy(self._next(tiles)), done, "replay")

        class Until:
            """A device event: done at a given time; waiting for it uses no core."""

            def __init__(self, at: float) -> None:
                self.at = at

            def synchronize(self) -> None:
                time.sleep(max(0.0, self.at - time.perf_counter()))

        engine.TileEncoder = encoder_module.TileEncoder = Replay
        settings = {"on": [True], "off": [False], "both": [False, True]}[args.write_thread]
        if "write_thread" not in plan_type._fields:  # a checkout from before (--repo): the main thread writes
            settings = [None]
        across, down = (2, 2) if args.quick else mosaic_shape(args.mosaic)
        mosaic = Path(folder) / "mosaic.tif"
        write_mosaic(scene_path(), mosaic, across, down)
        shape = "the TileNet" if args.tilenet else "the bundled model"
        print(f"srl_core from {Path(engine.__file__).parent}; {across} x {down} mosaic of the Landsat scene, "
              f"{shape}'s shape, model {args.model_us} us/tile, "
              f"batch 1024, {args.readers} reader(s), {args.compress} compressing thread(s); main thread "
              "per stage:")
        for stride in (tile, 64):
            for _ in range(1 if args.quick else args.rounds):
                for write_thread in settings:
                    extra = () if write_thread is None else (write_thread,)
                    engine.io_plan = lambda *_, extra=extra: plan_type(args.readers, args.compress, *extra)
                    Replay.tiles = 0
                    spent = main_thread_seconds(partial(
                        engine.embed_raster, mosaic, Path(folder) / "out.tif", model,
                        device="cpu", stride=stride, normalisation=how, batch_size=1024))
                    label = "" if write_thread is None else f", write thread {('off', 'on')[write_thread]}"
                    if args.model_us:  # the share of the run the device would be busy
                        busy = Replay.tiles * args.model_us / 1e6
                        label += f", model alone / whole run {busy / spent['whole run']:.2f}"
                    print(f"stride {stride}{label}: {describe(spent)}", flush=True)


if __name__ == "__main__":
    main()
