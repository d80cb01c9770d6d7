"""Where an ``embed_raster`` run spends its main thread, stage by stage (shared by the benchmarks).

Timers are wrapped round the engine's own calls (and round the waits for the readers' next
batch) for the length of one run, then removed: the run itself is the engine's, unchanged.
Stages that run in other threads (the readers' decoding, GDAL's compressing threads) show only
as the main thread's waits for them; the writing thread's own stages (beside a GPU) are listed
apart, marked "(writer thread)", and not counted in the main thread's sum.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable, Iterator
from unittest import mock

WRITER = "(writer thread)"


def main_thread_seconds(run: Callable[[], object]) -> dict[str, float]:
    """Seconds ``run`` (an ``embed_raster`` call) spends in the main thread per stage, and in all."""
    import srl_core.raster.reader as reader
    import srl_core.tile_encoder as model_stage
    import srl_core.tiles as engine
    from srl_core.raster.writer import StripWriter
    try:
        import srl_core.raster.writer_thread as writer_thread
    except ImportError:
        writer_thread = None
    main = threading.current_thread()

    spent: dict[str, float] = {}

    def timed(name: str, func: Callable) -> Callable:
        def wrapper(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                label = name if threading.current_thread() is main else f"{name} {WRITER}"
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - started
        return wrapper

    def waits(stream: reader.Prefetcher) -> Iterator:
        items = plain_iter(stream)
        while True:
            item = timed("waiting for readers", next)(items, None)
            if item is None:
                return
            yield item

    plain_iter = reader.Prefetcher.__iter__
    encoder = model_stage.TileEncoder
    if hasattr(encoder, "submit"):  # the engine keeps a batch in flight: submitting, then waiting
        model = [(encoder, "submit", "model stage"),
                 (model_stage.PendingEmbeddings, "result", "waiting for the model")]
    else:  # a checkout from before (--repo): one waiting call per batch
        model = [(encoder, "__call__", "model stage")]
    stages = [(engine, "resolve_model", "loading the model"), (engine, "_standardisation", "statistics"),
              (engine, "_fill_warnings", "fill check"), (encoder, "__init__", "folding the model"),
              *model, (StripWriter, "put", "holding embeddings"),
              (StripWriter, "write_strip", "writing"), (StripWriter, "finish", "writing"),
              (engine, "_quality_warnings", "quality check")]
    if writer_thread is not None:  # a checkout from before (--repo) has no writing thread
        stages += [(writer_thread.WriterThread, "_send", "waiting for the writer"),
                   (writer_thread.WriterThread, "__exit__", "waiting for the writer to finish")]
    with contextlib.ExitStack() as patches:
        for owner, name, label in stages:
            patches.enter_context(mock.patch.object(owner, name, timed(label, getattr(owner, name))))
        patches.enter_context(mock.patch.object(reader.Prefetcher, "__iter__", waits))
        started = time.perf_counter()
        run()
        spent["whole run"] = time.perf_counter() - started
    spent["other"] = spent["whole run"] - sum(v for k, v in spent.items()
                                              if k != "whole run" and not k.endswith(WRITER))
    return spent


def describe(spent: dict[str, float]) -> str:
    """``stage seconds, ...``, the largest first (milliseconds where the run is short)."""
    unit, scale = ("ms", 1e3) if spent["whole run"] < 10 else ("s", 1.0)
    ordered = sorted(spent.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v * scale:.{0 if unit == 'ms' else 3}f}" for k, v in ordered) + f" ({unit})"
