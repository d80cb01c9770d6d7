"""Running srl_core work in the background as a QgsTask: QGIS stays responsive, the task bar
shows progress, and its cancel button reaches srl_core's cancel flag.

srl_core writes outputs atomically, so a cancelled task leaves no partial file behind.
"""

from __future__ import annotations

import contextlib
import traceback
from typing import Any, Callable, Optional

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QObject

from srl_core.errors import CancelledError, SRLError
from srl_core.gdal_exceptions import gdal_exceptions
from srl_core.progress import Progress

Work = Callable[[Progress], Any]
Done = Callable[[Any, Optional[str]], None]
LOG_TAG = "SRL"
CANCELLED = "Cancelled."  # the ``error`` a run the user cancelled ends with


class SrlTask(QgsTask):
    """Run ``work(progress)`` off the main thread, then ``on_done(result, error)`` on it.

    ``error`` is None on success, the srl_core message on a refused input, or
    :data:`CANCELLED` when the user cancelled. ``uses_gdal=False`` is for work that opens no dataset:
    with GDAL < 3.7 turning GDAL's exceptions on is global, so such a task would change GDAL for every
    other plugin while it runs, for nothing. ``discard()`` is called instead of ``on_done`` when the
    ``owner`` is gone by the end (the plugin unloaded): it removes what the work wrote for it.
    """

    def __init__(self, description: str, work: Work, on_done: Optional[Done] = None,
                 owner: Optional[QObject] = None, uses_gdal: bool = True,
                 discard: Optional[Callable[[], None]] = None) -> None:
        super().__init__(description, QgsTask.CanCancel)
        self._work = work
        self._uses_gdal = uses_gdal
        self._on_done = on_done
        self._owner = owner  # the dialog or tool that shows the result: gone when the plugin unloads
        self._discard = discard  # removes outputs no owner is left to show (they stayed in /tmp)
        self.result: Any = None
        self.error: Optional[str] = None
        self.failure: Optional[SRLError] = None  # the refusal itself, for callers that can offer a way out

    def run(self) -> bool:
        progress = Progress(lambda fraction, _msg: self.setProgress(100.0 * fraction), self.isCanceled)
        try:
            # this thread's GDAL calls raise; other plugins' keep their setting
            with gdal_exceptions() if self._uses_gdal else contextlib.nullcontext():
                self.result = self._work(progress)
            return True
        except CancelledError:
            self.error = CANCELLED
        except SRLError as exc:
            self.error = str(exc)
            self.failure = exc
        except Exception as exc:  # a bug: keep QGIS alive, log the traceback for a report
            self.error = f"Unexpected error: {exc}"
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
        return False

    def finished(self, ok: bool) -> None:
        if not ok and self.error is None:
            self.error = CANCELLED
        if self._owner is not None and sip.isdeleted(self._owner):
            # unloaded (disabled, upgraded, QGIS closing) mid-run: nothing left to show the result
            if self._discard is not None:
                self._discard()
            return
        if self._on_done is not None:
            self._on_done(self.result if ok else None, None if ok else self.error)


def start(task: SrlTask) -> SrlTask:
    """Hand ``task`` to QGIS's task manager (shown in the status bar) and return it."""
    QgsApplication.taskManager().addTask(task)
    return task
