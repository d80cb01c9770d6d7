"""How many CPU threads srl_core's numeric work uses: one default, one place that sets it.

Why this exists: torch (OpenMP), NumPy's BLAS and faiss (OpenMP) each start one thread per
logical CPU. An analyst's desktop is shared (QGIS itself, a browser, another run), and an
OpenMP team with more threads than free cores waits at every barrier for a thread the
system has not scheduled: measured on a 2-core machine with one core busy, the tile engine
ran 8-18x slower with 2 torch threads than with 1. So:

- default: 1 thread on machines with at most 2 cores, else ``min(cores - 1, 4)``. One core
  is left to the raster reader thread (which runs beside the model) and to the desktop;
  beyond 4 threads the small tile and location models gain little. ``cores`` are physical
  cores the process may run on (hyper-threads add little to convolutions and matrix products).
- torch: ``torch.set_num_threads`` for the duration of each engine call, restored after;
  inter-op threads set to 1, once per process (srl_core runs no parallel graphs, and torch
  allows setting them only before the first inter-op work).
- BLAS and OpenMP of NumPy, scikit-learn and faiss: limited with threadpoolctl for the same
  duration (it covers every such library loaded in the process).
- Files: the engines read in one background thread that overlaps the model, and GDAL decodes
  and compresses on one thread (no ``GDAL_NUM_THREADS``, no ``NUM_THREADS``): a pool would
  compete with the model. Except when the tile model runs on a CUDA GPU: reading and writing
  are then the bound (see :mod:`srl_core.tile_encoder`), so several readers run at once and GDAL
  compresses the output on as many threads (:func:`io_plan`). Measured on a 16-core host with an
  H200 (``benchmarks/bench_cuda.py --raster``): 4 readers and 4 compressors ran the engine
  2.8-3.0x faster than one of each at stride 17, 8 of each 3.2-3.6x; 15 no faster than 8 there.
  There a thread of its own also holds and writes the embeddings, so that the main thread only
  feeds the GPU (:mod:`srl_core.raster.writer_thread`); on the CPU the main thread writes
  between model calls, the cores being the model's.
- Environment variables (``OMP_NUM_THREADS`` ...) are not used: they only act before the
  libraries load, which a QGIS plugin cannot control.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from typing import Callable, Iterator, NamedTuple, Optional, TypeVar

from .errors import InputError
from .names import MAX_THREADS

MAX_DEFAULT_THREADS = 4
MAX_GPU_IO_THREADS = 8  # beside a GPU: 15 readers were no faster than 8 on a 16-core host

_interop_set = False

F = TypeVar("F", bound=Callable)


def available_cores() -> int:
    """Physical cores this process may run on (its CPU affinity, capped by the physical count)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        allowed = os.cpu_count() or 1
    try:
        import psutil
    except ImportError:
        return max(1, allowed)
    return max(1, min(allowed, psutil.cpu_count(logical=False) or allowed))


def default_threads(cores: Optional[int] = None) -> int:
    """The thread count used when none is given: never more than the cores left free by the reader."""
    cores = available_cores() if cores is None else int(cores)
    return 1 if cores <= 2 else min(cores - 1, MAX_DEFAULT_THREADS)


def resolve_threads(threads: Optional[int]) -> int:
    """``None`` or 0: the default; a positive number: itself; anything else is an error."""
    if threads is None or int(threads) == 0:
        return default_threads()
    if not 0 < int(threads) <= MAX_THREADS:  # a huge count overflowed in torch ("a bug in SRL")
        raise InputError(f"The number of threads must be from 1 to {MAX_THREADS} (or 0 for the default), "
                         f"got {threads}.")
    return int(threads)


class IoPlan(NamedTuple):
    """The tile engine's threads for files: ``readers`` reading at once (see
    :mod:`srl_core.raster.reader`), GDAL compressing the output on ``compress_threads``, and
    with ``write_thread`` the embeddings held and written in a thread of their own instead of
    the main thread (see :mod:`srl_core.raster.writer_thread`)."""

    readers: int
    compress_threads: int
    write_thread: bool = False


def io_plan(device_type: str, threads: Optional[int], cores: Optional[int] = None) -> IoPlan:
    """One thread for each beside a model on the CPU (the other threads are the model's; the main
    thread writes between model calls). Beside a CUDA GPU the files are the work: ``threads``
    readers and compressors when given, by default ``min(cores - 1, MAX_GPU_IO_THREADS)``, and a
    thread that writes, so that the main thread only feeds the GPU."""
    if device_type != "cuda":
        return IoPlan(1, 1)
    if threads is None or int(threads) == 0:
        cores = available_cores() if cores is None else int(cores)
        count = max(1, min(cores - 1, MAX_GPU_IO_THREADS))
    else:
        count = resolve_threads(threads)
    return IoPlan(count, count, write_thread=True)


def _set_interop_once(torch_module: object) -> None:
    global _interop_set
    if _interop_set:
        return
    _interop_set = True
    with contextlib.suppress(RuntimeError):  # inter-op work has already started: keep torch's pool
        torch_module.set_num_interop_threads(1)  # type: ignore[attr-defined]


@contextlib.contextmanager
def limit_threads(threads: Optional[int] = None) -> Iterator[int]:
    """Within the block, torch (when loaded), BLAS and OpenMP use ``threads`` threads; yields the count.

    The previous settings come back on leaving. The setting is process-wide: two engines
    running at once in one process share it.
    """
    from threadpoolctl import threadpool_limits  # scikit-learn's own dependency

    count = resolve_threads(threads)
    torch_module = sys.modules.get("torch")  # analyses without torch do not import it
    previous = None
    if torch_module is not None:
        _set_interop_once(torch_module)
        previous = torch_module.get_num_threads()
        torch_module.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield count
    finally:
        if torch_module is not None:
            torch_module.set_num_threads(previous)


def threaded(func: F) -> F:
    """Run ``func`` within :func:`limit_threads` of its keyword argument ``threads`` (default when absent).

    For the analyses, whose whole body is NumPy, BLAS or faiss work: the function declares a
    keyword-only ``threads: Optional[int] = None`` and documents it; this applies it.
    """

    @functools.wraps(func)
    def wrapper(*args: object, **kwargs: object) -> object:
        with limit_threads(kwargs.get("threads")):  # type: ignore[arg-type]
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
