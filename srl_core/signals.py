"""Stopping a command-line run from outside: Ctrl-C (SIGINT) and SIGTERM are a cancel.

Python's default turns Ctrl-C into a ``KeyboardInterrupt`` traceback and SIGTERM into an
instant death that leaves temporary files behind. Inside :func:`signals_cancel` both raise
:class:`Interrupted` in the main thread, so the atomic-output cleanup runs exactly as for a
cancel from QGIS, and the command line exits with the shell's status for that signal (130 for
Ctrl-C, 143 for SIGTERM). ``Interrupted`` is a ``KeyboardInterrupt``, not an ``Exception``, for
the reason Python's own is: the signal lands wherever the main thread happens to be, and code
that guards itself with ``except Exception`` (an optional import, an enum being built) would
otherwise swallow the cancel (CI once saw a SIGINT'ed run finish with status 0) or replace it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Callable, Iterator, Optional, Sequence

from .errors import CancelledError

CANCEL_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by a signal; ``exit_status`` is 128 + its number."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.exit_status = 128 + self.signum
        super().__init__(f"Cancelled by {signal.Signals(signum).name}; no partial output was kept.")


def cancel_outcome(exc: BaseException) -> str:
    """What a cancelled run left: nothing, or (a resumed run) the parts of the earlier runs' work."""
    return getattr(exc, "kept", "") or "no partial output was kept."


RESUMING_WINDOWS = ("A window-by-window run (--workers) keeps the windows it finished, and the same command "
                    "resumes them.")


def cancelled_exit(exc: BaseException, resuming: str = RESUMING_WINDOWS) -> int:
    """Tell the user on stderr that the run was cancelled; return the exit status for it. ``resuming``:
    what of the work a SIGTERM (a time limit, an eviction) stopped the same command picks up again, said
    with it (the training commands resume from checkpoints, not windows), unless the run noted what it
    kept (``exc.kept``), which says what resumes: after it, this text contradicted it."""
    if isinstance(exc, Interrupted) and exc.signum == signal.SIGTERM:
        after = "" if getattr(exc, "kept", "") else f" {resuming}"
        print(f"\ncancelled by SIGTERM: {cancel_outcome(exc)}{after}", file=sys.stderr)
    else:
        print(f"\ncancelled: {cancel_outcome(exc)}", file=sys.stderr)
    return exc.exit_status if isinstance(exc, Interrupted) else 128 + signal.SIGINT


@contextlib.contextmanager
def signals_cancel(signums: Sequence[int] = CANCEL_SIGNALS) -> Iterator[None]:
    """While inside, the first of ``signums`` raises :class:`Interrupted`; repeats wait for the cleanup.

    Signal handlers can only be set from the main thread; elsewhere (a QGIS task) this does
    nothing and cancelling goes through the progress flag as usual.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if fired:  # already cancelling: let the cleanup finish
            return
        fired.append(signum)
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in signums}
    try:
        yield
    except Exception as exc:
        # the code the signal interrupted may turn Interrupted into another error (an enum being
        # built by an import becomes "TypeError: _value_ not set"): still the user's cancel
        if fired and not isinstance(exc, CancelledError):
            raise Interrupted(fired[0]) from exc
        raise
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def through_signals(step: Callable[[], object], interrupted: Optional[BaseException] = None,
                    on_signal: Callable[[], object] = lambda: None) -> Optional[BaseException]:
    """Run ``step`` to its end even when a signal's exception lands in it (``on_signal`` runs, then
    ``step`` again); return the first such exception, or ``interrupted`` when none came.

    For stopping threads: a cancel while the main thread waits for one must not leave it running
    behind the run's cleanup. The caller raises what this returns once every thread has stopped.
    """
    while True:
        try:
            step()
            return interrupted
        except BaseException as exc:
            interrupted = interrupted or exc
            on_signal()
