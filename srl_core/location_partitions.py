"""The location engine on a backend: a large point table in partitions, one task each.

:func:`srl_core.location.embed_lonlat` comes here when given a backend (or ``workers`` or
``scheduler``). The valid (lon, lat) rows are cut into partitions of ``partition_rows``
(a multiple of the batch size, so that every row goes to the model in the same batch as
in one process: the result is the same, bit for bit). A task carries its partition's
coordinates (16 bytes a point) and returns its embeddings; the model is sent to each
worker once. With an output path, each finished partition is a part
(:mod:`srl_core.raster.parts`) and a killed or failed run resumes from them.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from .device import resolve_device
from .errors import InputError, ModelError
from .progress import Progress
from .raster.parts import PartStore, fingerprint, run_parts, weights_digest

DEFAULT_PARTITION_ROWS = 262_144  # seconds of work for a small encoder; 4 MB of coordinates


@dataclass
class EmbedLonLat:
    """The task: embeddings (n, D) float32 of (n, 2) float32 (lon, lat), in batches of ``batch_size``."""

    module: torch.nn.Module
    size: int
    device: str
    batch_size: int
    _ready: Any = field(default=None, init=False, repr=False)
    _lock: Any = field(default_factory=threading.Lock, init=False, repr=False)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_ready", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _ready=None, _lock=threading.Lock())

    def __call__(self, lonlat: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._ready is None:
                dev = resolve_device(self.device)
                self._ready = (self.module.to(dev).eval(), dev)
        module, dev = self._ready
        out = np.empty((len(lonlat), self.size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(lonlat), self.batch_size):
                emb = module(torch.from_numpy(lonlat[start:start + self.batch_size]).to(dev))
                if emb.shape[1] != self.size:
                    raise ModelError(f"The model returned {emb.shape[1]} values per point, its card says "
                                     f"{self.size}.")
                out[start:start + self.batch_size] = emb.float().cpu().numpy()
        return out


def embed_partitioned(backend: Any, task: EmbedLonLat, lonlat: np.ndarray, partition_rows: Optional[int],
                      progress: Progress, output_path: Optional[str] = None) -> np.ndarray:
    """Embeddings (n, D) of ``lonlat`` (n, 2) float32, partition by partition on ``backend``.

    With ``output_path``, finished partitions are kept as parts beside it until the caller
    removes them (see :class:`~srl_core.raster.parts.PartStore`); without, they are kept in memory.
    """
    rows = DEFAULT_PARTITION_ROWS if partition_rows is None else int(partition_rows)  # 0 is no default
    if rows < 1:
        raise InputError(f"A partition must hold at least 1 point, got {partition_rows}.")
    rows = -(-rows // task.batch_size) * task.batch_size  # whole batches: the same batches as in one process
    pieces = [lonlat[start:start + rows] for start in range(0, len(lonlat), rows)]
    out = np.empty((len(lonlat), task.size), dtype=np.float32)

    def write(index: int, embeddings: np.ndarray) -> None:
        out[index * rows:index * rows + len(embeddings)] = embeddings

    if output_path is None:
        done = []

        def collect(index: int, embeddings: np.ndarray) -> None:
            write(index, embeddings)
            done.append(index)
            progress.report(len(done) / len(pieces), f"{len(done)} of {len(pieces)} partitions")

        backend.map_unordered(task, pieces, collect, progress)
        return out
    key = fingerprint({"lonlat": hashlib.sha256(lonlat.tobytes()).hexdigest(), "rows": rows,
                       "model": weights_digest(task.module), "batch": task.batch_size})
    run_parts(backend, task, pieces, PartStore(output_path, key), write, progress, "partitions")
    return out
