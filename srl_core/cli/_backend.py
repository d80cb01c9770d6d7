"""``--workers N`` / ``--scheduler ADDRESS``: run a command on Dask (see :mod:`srl_core.backends`)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import InputError


def add_backend_options(parser: argparse.ArgumentParser, windows: bool = False,
                        partitions: bool = False) -> None:
    """Add the Dask options; ``windows`` adds ``--window-tiles`` (the tile engine's window side),
    ``partitions`` ``--partition-rows`` (the points per task)."""
    group = parser.add_argument_group(
        "running on several workers (needs Dask: pip install \"dask[distributed]\")")
    where = group.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N",
                       help="Run window by window on a Dask cluster of N local worker processes.")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="Run window by window on a running Dask cluster, e.g. tcp://host:8786; its "
                       "workers must reach the input by the same path (any GDAL path: /vsis3/, ...).")
    if windows:
        group.add_argument("--window-tiles", type=int, metavar="T",
                           help="Side of a window, in tiles, when running on workers (default 64).")
    if partitions:
        group.add_argument("--partition-rows", type=int, metavar="N",
                           help="Points per task when running on workers (default 262144).")


def backend_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of the engines and analyses for these options. A window or partition size
    without workers is refused: the run would go on in one process and the size be ignored unsaid."""
    if args.workers is None and args.scheduler is None:
        for option in ("window_tiles", "partition_rows"):
            if getattr(args, option, None) is not None:
                raise InputError(f"--{option.replace('_', '-')} applies only with --workers or --scheduler.")
    return {"workers": args.workers, "scheduler": args.scheduler}
