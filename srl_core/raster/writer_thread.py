"""Holding and writing the embeddings in a thread of their own, beside a GPU.

Why: beside a CUDA GPU the main thread's job is to keep the model fed. Holding each batch's
embeddings until their block row is complete, then writing the GeoTIFF, took a third of the main
thread on a large mosaic (2.2 of 6.2 s for a 512-d model on an H200), time in which no batch was
submitted. Here the :class:`~srl_core.raster.writer.StripWriter`'s calls are handed over, in order,
through a bounded queue to one thread, the only one that touches the dataset while it runs. The
queue's bound keeps memory bounded: when the writer falls behind, the main thread waits for it.
An error in the writer (disk full) is raised again in the main thread at its next call, or on
leaving; from then on the writer only drains the queue, so the main thread never waits on it.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Optional

import numpy as np

from ..gdal_exceptions import gdal_exceptions
from ..signals import through_signals
from .writer import StripWriter

QUEUE_CALLS = 8  # calls waiting for the writer: a few batches' embeddings (2 MB each for 512-d at 1024)


class WriterThread:
    """Runs ``writer.put`` and ``writer.write_strip`` in one background thread, in the order called.

    Use as a context manager: leaving it normally waits for every call to be done and re-raises
    the first error of the writer; leaving it by an error (or cancel) stops the writer after its
    current call. Either way the thread has stopped when it returns, so the dataset can be closed.
    """

    _END = object()

    def __init__(self, writer: StripWriter, depth: int = QUEUE_CALLS) -> None:
        self._writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="srl-embedding-writer")

    def put(self, rows: np.ndarray, cols: np.ndarray, embeddings: np.ndarray) -> None:
        """As :meth:`StripWriter.put`, later; ``embeddings`` must not be changed afterwards."""
        self._send(self._writer.put, rows, cols, embeddings)

    def write_strip(self, row0: int, row1: int, col0: int, col1: int) -> None:
        """As :meth:`StripWriter.write_strip`, after the calls before it."""
        self._send(self._writer.write_strip, row0, row1, col0, col1)

    def _send(self, call: Callable[..., None], *args: object) -> None:
        self._raise_error()
        self._queue.put((call, args))

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    @gdal_exceptions()  # a thread of its own: GDAL's setting may be per thread
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if self._error is not None or self._stop.is_set():
                continue  # drain, so that the main thread never waits on a writer that gave up
            call, args = item
            try:
                call(*args)
            except BaseException as exc:  # handed to the main thread, which re-raises it
                self._error = exc

    def __enter__(self) -> WriterThread:
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is not None:
            self._stop.set()
        # a signal while waiting: the writer drains its queue from then on; raised once it stopped
        interrupted = through_signals(lambda: self._queue.put(self._END), on_signal=self._stop.set)
        interrupted = through_signals(self._thread.join, interrupted, on_signal=self._stop.set)
        if interrupted is not None:
            raise interrupted
        if exc_type is None:
            self._raise_error()
