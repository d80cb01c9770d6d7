"""Will an output fit? Estimate its size and compare with the free space of its folder, before work.

A 200000 x 200000 pixel raster gives a 64-band embedding raster of tens of gigabytes; without
a check the run sits at 0 % for hours and then fails on a full disk. The estimate is the
uncompressed size (compression rarely saves much on float embeddings), so a run it lets
through has room to finish.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Union

from .errors import OutputError


def human_bytes(count: float) -> str:
    """``1.5 GB``, ``320 MB``: sizes as a file manager shows them (powers of 1000)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    step = 0
    while abs(count) >= 1000 and step < len(units) - 1:
        count /= 1000
        step += 1
    return f"{count:.0f} {units[step]}" if step == 0 else f"{count:.1f} {units[step]}"


def check_free_space(output: Union[str, os.PathLike], needed: int, detail: str) -> str:
    """Refuse (OutputError, with the figures) when ``needed`` bytes exceed the free space of the
    folder of ``output``; return a one-line estimate to show in the log. ``detail`` says how the
    estimate was made, e.g. ``"2000 x 2000 pixels x 64 bands float32"``."""
    folder = Path(output).expanduser().resolve().parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:  # a missing folder: the output check names it
        return f"Output about {human_bytes(needed)}"
    if needed > free:
        raise OutputError(
            f"The output {Path(output).name} needs about {human_bytes(needed)} ({detail}) but {folder} has "
            f"only {human_bytes(free)} free. Free some space, write to another disk, or embed a smaller "
            "extent (or with a larger stride)."
        )
    return f"Output about {human_bytes(needed)}, {human_bytes(free)} free"
