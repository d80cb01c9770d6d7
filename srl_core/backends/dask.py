"""The Dask backend: items as tasks on a Dask ``distributed`` cluster.

``workers=N`` starts an embedded ``LocalCluster`` of N workers, one task at a time each, whose
torch, BLAS and OpenMP use ``threads`` threads (one unless given: N workers, N cores; see
:mod:`srl_core.threads`): processes when this is a Python interpreter, threads inside an
application embedding Python, such as QGIS, which cannot be started as a worker.
``scheduler="tcp://host:8786"`` uses a cluster already running, whose workers must import
``srl_core`` and reach the input by its path (any GDAL path: a shared folder,
``/vsicurl/``, ``/vsis3/``). The function is sent to each worker once (``scatter``,
broadcast); each task then carries only its item, and returns only its result (an
embedding window: a few hundred times smaller than the pixels it was computed from).
Tasks keep their submission order as priority, so results tend to come back in order.
Dask is imported here only, when this backend is used.
"""

from __future__ import annotations

import concurrent.futures
import logging
import re
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..errors import ClusterLostError, InputError
from ..gdal_exceptions import gdal_exceptions
from ..progress import Progress
from ..threads import resolve_threads
from . import ResultFn

INSTALL_HINT = ("Running on several workers or a cluster needs Dask: install it with "
                "`python -m pip install \"dask[distributed]\"`, or leave workers and scheduler empty "
                "to run in this process.")
POLL_SECONDS = 0.2  # how often cancel is checked while waiting for tasks
PRE_SPAWN_ENVIRON = "distributed.nanny.pre-spawn-environ"
CLIENT_LOG = logging.getLogger("distributed.client")


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise InputError(INSTALL_HINT) from exc
    return distributed


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    with gdal_exceptions():  # on a worker, as in this process: only for srl_core's own call
        return fn(item)


def _limit_worker_threads(threads: int) -> int:
    """In a worker process: torch (when installed), BLAS and OpenMP use ``threads`` threads from now on."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # not restored: the worker process is this run's alone
    try:
        import torch
    except ImportError:
        return threads
    torch.set_num_threads(threads)
    return torch.get_num_threads()


def _raise_if_missing_module(exc: Exception) -> None:
    """A worker that cannot import srl_core (or one of its dependencies) is a setup to fix, said as such:
    it was reported as "a bug in SRL, not in your data". The worker's error comes as itself, or, when
    the task could not even be unpickled there, as an Exception carrying its repr. A scheduler without
    srl_core cannot unpickle the task graph either (Dask 2026.8), and says only that."""
    found = re.search(r"No module named '([^']+)'", str(exc))
    if isinstance(exc, ModuleNotFoundError) or found:
        name = found.group(1) if found else getattr(exc, "name", None) or "?"
        raise InputError(
            f"A Dask worker cannot import '{name}': install SRL (srl_core and its dependencies, the same "
            "versions as here) in every worker's Python environment."
        ) from exc
    if "deserialization of the task graph" in str(exc):
        raise InputError(
            "The Dask scheduler cannot read SRL's tasks: install SRL (srl_core and its dependencies, the "
            "same versions as here) in the scheduler's Python environment too, not only in the workers'."
        ) from exc


def _on_worker(exc: InputError, scheduler: Optional[str]) -> InputError:
    """A worker's refusal of the data, said as coming from a worker of an existing cluster: 'Cannot open
    raster /data/scene.tif' read as false where the file is there on the analyst's machine."""
    if not scheduler:
        return exc
    return InputError(f"{exc} (on a worker of the Dask cluster at {scheduler}: every worker must reach the "
                      "input by the same path)")


class DaskBackend:
    """Runs items as Dask tasks; the cluster starts on first use and stops on :meth:`close`."""

    name = "dask"

    def __init__(self, workers: Optional[int] = None, scheduler: Optional[str] = None, *,
                 threads_per_worker: int = 1, processes: Optional[bool] = None,
                 threads: Optional[int] = None) -> None:
        if workers is not None and scheduler:
            raise InputError("Give either a number of workers (a cluster on this machine) or a scheduler "
                             "address (an existing cluster), not both.")
        if scheduler is None and (workers is None or int(workers) < 1):
            raise InputError(f"The number of workers must be at least 1, got {workers}.")
        if int(threads_per_worker) < 1:
            raise InputError(f"Threads per worker must be at least 1, got {threads_per_worker}.")
        _import_distributed()  # fail now, with the install hint, not at the first task
        self.workers = None if workers is None else int(workers)
        self.scheduler = scheduler
        self.threads_per_worker = int(threads_per_worker)
        # compute threads of each worker process: the setting when given, else one per task slot
        self.threads = resolve_threads(threads) if threads else self.threads_per_worker
        in_python = Path(sys.executable).name.lower().startswith("python")
        self.processes = in_python if processes is None else processes
        self._client: Any = None
        self._cluster: Any = None
        self._client_log_level: Optional[int] = None  # the client's log level before a scheduler's run

    @property
    def client(self) -> Any:
        """The ``distributed.Client``, started (with its LocalCluster) on first use."""
        if self._client is None:
            distributed = _import_distributed()
            try:
                if self.scheduler:
                    # a lost scheduler printed the client's tracebacks (about 40 lines, from its own
                    # thread) above the one-line error said; as quiet as the local cluster's, until close
                    self._client_log_level = CLIENT_LOG.level
                    CLIENT_LOG.setLevel(logging.CRITICAL)
                    self._client = distributed.Client(self.scheduler, timeout="30s")
                else:
                    import dask

                    # Dask makes glibc return freed memory at once (MALLOC_TRIM_THRESHOLD_=65536): the
                    # model's per-batch buffers are then faulted in again every batch, measured 1.5x
                    # the CPU per tile. A worker's memory is bounded by one window anyway.
                    # Logs at CRITICAL only: a failing window was printed as a worker's "Compute Failed"
                    # traceback per retry (30-65 lines) above the one-line error the caller raises.
                    with dask.config.set({f"{PRE_SPAWN_ENVIRON}.MALLOC_TRIM_THRESHOLD_": None}):
                        self._cluster = distributed.LocalCluster(
                            n_workers=self.workers, threads_per_worker=self.threads_per_worker,
                            processes=self.processes, dashboard_address=":0", silence_logs=logging.CRITICAL)
                    self._client = distributed.Client(self._cluster)
                    if self.processes:
                        self._client.run(_limit_worker_threads, self.threads)
            except RuntimeError as exc:  # a script without the __main__ guard: each worker ran it again
                self.close()
                if "failed to start" not in str(exc):
                    raise
                raise InputError(f"Dask's local workers could not start ({exc}). In a Python script, put the "
                                 "call under `if __name__ == \"__main__\":` (each worker process starts by "
                                 "running the script again).") from exc
            except (OSError, TimeoutError, ValueError) as exc:  # ValueError: a malformed address
                self.close()
                where = (f"the Dask scheduler at {self.scheduler}" if self.scheduler
                         else "a local Dask cluster")
                raise InputError(f"Could not start or reach {where}: {exc}. Check the address, "
                                 "or run without a scheduler.") from exc
        return self._client

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any], on_result: ResultFn,
                      progress: Progress) -> None:
        if not items:
            return
        distributed = _import_distributed()
        client = self.client
        progress.check()
        try:
            shared = client.scatter(fn, broadcast=True, hash=False)
        except (OSError, TimeoutError) as exc:  # Dask's is an OSError: it became 'Could not write' the output
            where = self.scheduler or "this machine"
            raise InputError(f"The Dask cluster at {where} has no worker to run on ({exc}): start workers, "
                             "or run without a scheduler.") from exc
        run = uuid.uuid4().hex[:8]
        futures = [client.submit(_call, shared, item, key=f"srl-{run}-{i}", pure=False)
                   for i, item in enumerate(items)]
        index = {future.key: i for i, future in enumerate(futures)}
        pending = set(futures)
        try:
            while pending:
                progress.check()
                try:
                    done, pending = distributed.wait(pending, timeout=POLL_SECONDS,
                                                     return_when="FIRST_COMPLETED")
                except TimeoutError:
                    continue
                for future in sorted(done, key=lambda f: index[f.key]):
                    try:
                        result = future.result()  # a task's own error is raised here, as it is
                    except InputError as exc:
                        raise _on_worker(exc, self.scheduler) from exc
                    except concurrent.futures.CancelledError:
                        raise
                    except Exception as exc:
                        _raise_if_missing_module(exc)
                        raise
                    future.release()
                    on_result(index[future.key], result)
        # one future cancelled or all (FutureCancelledError, FuturesCancelledError): workers or scheduler gone
        except concurrent.futures.CancelledError as exc:
            raise ClusterLostError(
                "The Dask cluster stopped working on this run (its workers or its scheduler were killed, ran "
                "out of memory or lost their connection), and the work could not be retried. Run the same "
                "command again.") from exc
        finally:
            if pending:
                client.cancel(list(pending), force=True)
            shared.release()

    def close(self) -> None:
        """Stop the client, and the LocalCluster when this backend started one."""
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
        if self._client_log_level is not None:
            CLIENT_LOG.setLevel(self._client_log_level)
            self._client_log_level = None

    def __enter__(self) -> DaskBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
