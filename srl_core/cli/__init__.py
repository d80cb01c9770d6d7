"""Command line of srl_core: ``python -m srl_core <command> ...``.

Every module in this package that defines ``register(subparsers)`` adds its own
sub-command(s); each sub-command sets ``func(args) -> int`` via ``set_defaults``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import traceback
from typing import Optional, Sequence

from ..errors import SRLError

DEBUG_ENV = "SRL_DEBUG"  # set to 1 to see the traceback of an internal error
INTERNAL_ERROR_STATUS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m srl_core", description="Spatial representation learning for GIS data."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(subparsers)
    return parser


class _StderrHandler(logging.Handler):
    """srl_core's logged warnings (e.g. a skipped model folder) as ``warning: ...`` on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"warning: {record.getMessage()}", file=sys.stderr)


def _show_warnings() -> None:
    logger = logging.getLogger("srl_core")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        logger.addHandler(_StderrHandler(logging.WARNING))


def main(argv: Optional[Sequence[str]] = None) -> int:
    _show_warnings()
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SRLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not the user's doing: a short message, the traceback on request
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        print(
            f"internal error: {type(exc).__name__}: {exc}. This is a bug in SRL, not in your data; please "
            f"report it with the command you ran (set {DEBUG_ENV}=1 to see the details).",
            file=sys.stderr,
        )
        return INTERNAL_ERROR_STATUS
