"""Options shared by several commands."""

from __future__ import annotations

import argparse


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: CPU threads for torch, BLAS and faiss (0 = srl_core's default)."""
    parser.add_argument(
        "--threads", type=int, default=0, metavar="N",
        help="CPU threads for the computation (default 0: 1 on machines with up to 2 cores, else "
        "physical cores - 1, at most 4, so that a busy desktop does not slow the run down).",
    )  # fmt: skip
