"""srl_core's logged warnings (e.g. a model folder skipped for a bad card) in QGIS's message log.

srl_core never imports qgis; it logs with :mod:`logging` under ``srl_core``. This handler shows
those records in the Log Messages panel, tab "SRL", where an analyst looks when a model is missing.
"""

from __future__ import annotations

import logging

from qgis.core import Qgis, QgsMessageLog

from .tasks import LOG_TAG


class QgsLogHandler(logging.Handler):
    """A logging handler writing to QgsMessageLog (warnings as warnings, the rest as info)."""

    def emit(self, record: logging.LogRecord) -> None:
        level = Qgis.Warning if record.levelno >= logging.WARNING else Qgis.Info
        QgsMessageLog.logMessage(record.getMessage(), LOG_TAG, level)


def _ours(handler: logging.Handler) -> bool:
    """By name: after the plugin is upgraded or reloaded, an earlier handler is of the earlier class."""
    return type(handler).__name__ == QgsLogHandler.__name__


def forward_core_log() -> None:
    """Install the handler on the ``srl_core`` logger once (loading the plugin twice adds no second)."""
    logger = logging.getLogger("srl_core")
    if not any(_ours(h) for h in logger.handlers):
        logger.addHandler(QgsLogHandler(logging.WARNING))


def stop_forwarding_core_log() -> None:
    """Remove the handler (the plugin unloads: its records would go on reaching QGIS's log twice over
    after a reload)."""
    logger = logging.getLogger("srl_core")
    for handler in [h for h in logger.handlers if _ours(h)]:
        logger.removeHandler(handler)
