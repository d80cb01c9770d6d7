"""Rasters derived from an embedding raster window by window, in this process or on a backend.

The analyses (applying a cluster model, the similarity raster) compute each output
window from the same window of the embedding raster alone. :func:`map_blocks` runs such
a per-window function over the reader's windows: here, as the analyses always did, or
on a backend (:mod:`srl_core.backends`), whose workers open the embedding raster by its
path and read their windows themselves; results become parts
(:mod:`srl_core.raster.parts`) written in window order, so the output is the same
whatever the number of workers, and a killed run resumes.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional

import numpy as np

from ..embedding_products import RasterInput
from ..progress import Progress
from .blocks import BlockWriter, EmbeddingBlock, EmbeddingRasterReader, Window
from .parts import PartStore, fingerprint, run_parts, sources_stamp
from .source import as_workers_reach

BlockFn = Callable[[EmbeddingBlock], np.ndarray]


@dataclass
class BlockTask:
    """The task: ``fn`` of one window of the embedding raster ``path`` (one reader per thread).

    ``path``: a path or an :class:`~srl_core.embedding_products.EmbeddingRaster`, so that the
    workers decode another product's values as the caller's reader does.
    """

    path: RasterInput
    fn: BlockFn
    max_bytes: int
    _local: Any = field(default_factory=threading.local, init=False, repr=False)

    def __getstate__(self) -> dict:
        return {"path": self.path, "fn": self.fn, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def __call__(self, window: Window) -> np.ndarray:
        reader = getattr(self._local, "reader", None)
        if reader is None:  # GDAL datasets are not shared between threads
            reader = self._local.reader = EmbeddingRasterReader(self.path, self.max_bytes)
        return np.asarray(self.fn(reader.read(window)))


def map_blocks(reader: EmbeddingRasterReader, fn: BlockFn, writer: BlockWriter, progress: Progress,
               backend: Optional[Any] = None) -> None:
    """Write ``fn(block)`` for every window of ``reader`` with ``writer``; on ``backend`` when given.

    ``fn`` must be picklable for a Dask backend (a module-level function, or a
    ``functools.partial`` of one). Its parts are removed once the last window is written.
    """
    if backend is None:
        for block in reader.blocks(progress):
            writer.write(block.window, fn(block))
        return
    windows = reader.windows()
    key = fingerprint({"raster": reader.info.path, "stamp": sources_stamp(reader.info.path),
                       "decoding": reader.decoding.metadata(),
                       "windows": windows, "fn": hashlib.sha256(pickle.dumps(fn)).hexdigest()})
    parts = PartStore(writer.path, key)
    source = replace(reader.source, path=as_workers_reach(reader.source.path))  # workers in other folders
    run_parts(backend, BlockTask(source, fn, reader.max_bytes), windows, parts,
              lambda i, array: writer.write(windows[i], array), progress, "blocks")
    parts.remove()
