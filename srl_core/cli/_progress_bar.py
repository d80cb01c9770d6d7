"""A text progress bar for the command line, adapted to srl_core's Progress protocol."""

from __future__ import annotations

import sys
import time

from ..progress import Progress


def text_progress(stream=None, width: int = 30) -> Progress:
    """A Progress that draws ``[#####     ]  42% message  ETA 12s`` on one line (stderr by default).

    Redrawn in place only on a terminal: into a file or a pipe (a log, a CI run, ``make models``'s
    runs side by side) it writes one line per tenth of the work instead of hundreds of redraws."""
    stream = stream if stream is not None else sys.stderr
    start = time.monotonic()
    last = [-1.0]
    isatty = getattr(stream, "isatty", None)
    redraw = bool(isatty and isatty())

    def report(fraction: float, message: str) -> None:
        if message.startswith(ALWAYS_SHOWN):  # on a line of its own, whole, whatever the throttle
            stream.write(("\n" if redraw and last[0] >= 0 else "") + message + "\n")
            stream.flush()
            return
        if fraction < 1.0 and (fraction - last[0] < 0.005 if redraw else _tenth(fraction) == _tenth(last[0])):
            return
        last[0] = fraction
        elapsed = time.monotonic() - start
        # a message with its own ETA (training's, which leaves out the time spent before the first step)
        # is not given a second one that disagrees with it
        own = "ETA" in message
        eta = f"ETA {elapsed * (1 - fraction) / fraction:.0f}s" if fraction > 0.01 and not own else ""
        if redraw:
            done = int(width * fraction)
            bar = "#" * done + " " * (width - done)
            stream.write(f"\r[{bar}] {fraction * 100:3.0f}% {message[:40]:40s} {eta:>10s}")
            if fraction >= 1.0:
                stream.write("\n")
        else:
            stream.write(f"{fraction * 100:3.0f}% {message} {eta}".rstrip() + "\n")
        stream.flush()

    return Progress(report)


# Messages every reader must see: said once, so throttling dropped them (a log got no time estimate) and a
# terminal's bar cut them to 40 characters.
ALWAYS_SHOWN = ("Estimated", "warning:")


def _tenth(fraction: float) -> int:
    """Which tenth of the work ``fraction`` falls in (0.3 starts the fourth, whatever its rounding)."""
    return int(fraction * 10 + 1e-9)
