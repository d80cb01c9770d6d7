"""GDAL raising Python exceptions inside srl_core's work, and nowhere else.

srl_core relies on GDAL's Python exceptions: a full disk, a corrupt file or a driver's refusal
must become a clear error, not a ``None`` or an ignored error code. But whether GDAL's bindings
raise is a setting of the process, not of a library. QGIS 3.22 and code written for it run with
exceptions off and test for ``None``: QGIS 3.22's own DB Manager opens a GeoPackage for update
and, when that returns ``None``, opens it read-only; with exceptions on it gets a RuntimeError.
srl_core used to turn them on for good when imported, which broke such code for the rest of the
QGIS session once one SRL algorithm had run.

So srl_core turns them on only for the duration of its own calls: :func:`gdal_exceptions` is a
re-entrant context manager (and decorator) around every public entry point, every function that
opens or creates a dataset, and every thread srl_core starts. Where GDAL keeps the setting per
thread (its ``ExceptionMgr`` on a thread-local state: GDAL 3.13 has it, 3.6 does not), other
threads never see a change. With older GDAL (3.6, Debian 12's, under QGIS 3.22) the setting is
global: the first entry turns it on for gdal, ogr and osr, the last exit restores each module's
own earlier state, so other code sees exceptions only while SRL work runs.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from osgeo import gdal, ogr, osr

_MODULES = (gdal, ogr, osr)
# GDAL whose ExceptionMgr sets a state of the calling thread only
THREAD_LOCAL = hasattr(gdal, "_SetExceptionsLocal")

_lock = threading.Lock()
_depth = 0
_saved: tuple[bool, ...] = ()


@contextlib.contextmanager
def gdal_exceptions() -> Iterator[None]:
    """GDAL, OGR and OSR raise ``RuntimeError`` inside the block; the caller's setting after it."""
    if THREAD_LOCAL:
        with contextlib.ExitStack() as stack:
            for module in _MODULES:
                stack.enter_context(module.ExceptionMgr(useExceptions=True))
            yield
        return
    _enter_global()
    try:
        yield
    finally:
        _leave_global()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """GDAL's warnings and errors are not printed inside the block: for probing what a file is, where
    drivers that do not read it say so (GDAL's XYZ raster driver warned about every CSV of points
    probed as a raster). Failures still come back as ``None`` or an exception."""
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()


def _enter_global() -> None:
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = tuple(bool(module.GetUseExceptions()) for module in _MODULES)
            for module in _MODULES:
                module.UseExceptions()
        _depth += 1


def _leave_global() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            # GDAL < 3.7 pushes an error handler per module: they come off in the reverse order; if
            # someone else pushed one since, GDAL refuses, and the setting stays on as it was before
            for module, was_on in reversed(list(zip(_MODULES, _saved))):
                if not was_on:
                    with contextlib.suppress(RuntimeError):
                        module.DontUseExceptions()
