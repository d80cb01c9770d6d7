"""A text progress bar for the command line, adapted to srl_core's Progress protocol."""

from __future__ import annotations

import sys
import time

from ..progress import Progress


def text_progress(stream=None, width: int = 30) -> Progress:
    """A Progress that draws ``[#####     ]  42% message  ETA 12s`` on one line (stderr by default)."""
    stream = stream if stream is not None else sys.stderr
    start = time.monotonic()
    last = [-1.0]

    def report(fraction: float, message: str) -> None:
        if fraction - last[0] < 0.005 and fraction < 1.0:
            return
        last[0] = fraction
        done = int(width * fraction)
        elapsed = time.monotonic() - start
        eta = f"ETA {elapsed * (1 - fraction) / fraction:5.0f}s" if fraction > 0.01 else ""
        bar = "#" * done + " " * (width - done)
        stream.write(f"\r[{bar}] {fraction * 100:3.0f}% {message[:40]:40s} {eta}")
        if fraction >= 1.0:
            stream.write("\n")
        stream.flush()

    return Progress(report)
