"""Where window-by-window work runs: in this process, or on a Dask cluster.

A backend maps a picklable function over a list of items (windows of a raster, slices
of a point table) and hands each result back to the caller, in this process, as it
finishes, in any order. The engines cut the work and assemble the results
(:mod:`srl_core.raster.parts`); a backend only runs it. Two exist:

- :class:`~srl_core.backends.local.LocalBackend`: one item after the other, here;
- :class:`~srl_core.backends.dask.DaskBackend`: on a Dask ``distributed`` cluster, an
  embedded ``LocalCluster`` of ``workers`` processes or an existing scheduler.

Dask is optional: it is imported only when a Dask backend is asked for, and its absence
is an :class:`~srl_core.errors.InputError` saying how to install it.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence

from ..errors import InputError
from ..progress import Progress

ResultFn = Callable[[int, Any], None]


class Backend(Protocol):
    """Runs ``fn(item)`` for every item; calls ``on_result(index, result)`` here as each finishes.

    ``progress`` is checked while waiting: a cancel stops the scheduled work and raises
    :class:`~srl_core.errors.CancelledError`. An error in ``fn`` or ``on_result`` stops the
    remaining work and is raised as it is.
    """

    name: str

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any], on_result: ResultFn,
                      progress: Progress) -> None: ...

    def close(self) -> None: ...


def resolve_backend(backend: Optional[Backend] = None, workers: Optional[int] = None,
                    scheduler: Optional[str] = None, threads: Optional[int] = None) -> Optional[Backend]:
    """The backend asked for: ``backend`` itself, a Dask one for ``workers``/``scheduler``, or None.

    None means the engine's own in-process path, exactly as without this module. ``threads``
    (the engines' :mod:`srl_core.threads` setting) is each local worker process's thread count
    when given (positive); left at None or 0, each worker runs one thread, so that N workers use
    N cores. Workers of an existing cluster (``scheduler``) keep their own setting.
    """
    if backend is not None:
        if workers or scheduler:
            raise InputError("Give either a backend or workers/scheduler, not both.")
        return backend
    if workers is None and not scheduler:
        return None
    from .dask import DaskBackend

    return DaskBackend(workers=workers, scheduler=scheduler, threads=threads)


@contextlib.contextmanager
def using_backend(
    backend: Optional[Backend] = None, workers: Optional[int] = None, scheduler: Optional[str] = None,
    threads: Optional[int] = None,
) -> Iterator[Optional[Backend]]:
    """:func:`resolve_backend` for a ``with`` block; a backend made here (a Dask cluster) is closed after."""
    resolved = resolve_backend(backend, workers, scheduler, threads)
    try:
        yield resolved
    finally:
        if resolved is not None and resolved is not backend:
            resolved.close()
