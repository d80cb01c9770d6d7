"""The progress and cancel protocol shared by every long-running srl_core function.

Engines take ``progress: Progress | None``. They call :meth:`Progress.report` with a
fraction in [0, 1] and a short message, and :meth:`Progress.check` between units of work;
``check`` raises :class:`~srl_core.errors.CancelledError` once the caller has asked to stop.
The plugin adapts QgsFeedback / QgsTask to this; the command line adapts a text bar.
"""

from __future__ import annotations

from typing import Callable, Optional

from .errors import CancelledError

ReportFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


class Progress:
    """Progress sink plus cancel flag, optionally mapped onto a sub-range of a parent."""

    def __init__(
        self,
        on_report: Optional[ReportFn] = None,
        is_cancelled: Optional[CancelFn] = None,
        start: float = 0.0,
        end: float = 1.0,
    ) -> None:
        self._on_report = on_report
        self._is_cancelled = is_cancelled
        self._start = start
        self._end = end

    def report(self, fraction: float, message: str = "") -> None:
        """Report that ``fraction`` (0..1) of this (sub-)task is done."""
        if self._on_report is not None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            self._on_report(self._start + (self._end - self._start) * fraction, message)

    @property
    def cancelled(self) -> bool:
        """True once the caller asked to stop."""
        return bool(self._is_cancelled and self._is_cancelled())

    def check(self) -> None:
        """Raise :class:`CancelledError` if the caller asked to stop."""
        if self.cancelled:
            raise CancelledError("Cancelled by the user.")

    def sub(self, start: float, end: float) -> Progress:
        """A child whose 0..1 maps onto ``start..end`` of this one (same cancel flag)."""
        span = self._end - self._start
        return Progress(
            self._on_report,
            self._is_cancelled,
            self._start + span * start,
            self._start + span * end,
        )


def ensure_progress(progress: Optional[Progress]) -> Progress:
    """Engines call this so that ``None`` means 'report nowhere, never cancel'."""
    return progress if progress is not None else Progress()
