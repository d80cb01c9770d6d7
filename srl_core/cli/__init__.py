"""Command line of srl_core: ``python -m srl_core <command> ...``.

Every module in this package that defines ``register(subparsers)`` adds its own
sub-command(s); each sub-command sets ``func(args) -> int`` via ``set_defaults``.
Arguments named in :data:`OUTPUT_ARGUMENTS` are the files a command writes; every other
argument naming an existing path is an input. Each command runs as one
:func:`~srl_core.atomic.output_run` (outputs checked before any work, written together or
not at all) in which Ctrl-C and SIGTERM cancel cleanly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import traceback
from typing import Any, Optional, Sequence

from ..atomic import output_run
from ..errors import CancelledError, SRLError
from ..signals import cancelled_exit, signals_cancel

OUTPUT_ARGUMENTS = ("output", "save_model", "prediction", "uncertainty")

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


def _existing_paths(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, str) and v and os.path.exists(v)]


def files_of(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(outputs, inputs) of a parsed command line (see the module docstring)."""
    outputs = [getattr(args, name) for name in OUTPUT_ARGUMENTS if getattr(args, name, None)]
    inputs = [p for k, v in vars(args).items() if k not in OUTPUT_ARGUMENTS for p in _existing_paths(v)]
    return outputs, inputs


def main(argv: Optional[Sequence[str]] = None) -> int:
    _show_warnings()
    try:
        args = build_parser().parse_args(argv)
        with signals_cancel(), output_run(*files_of(args)):
            return int(args.func(args) or 0)
    except (CancelledError, KeyboardInterrupt) as exc:
        return cancelled_exit(exc)
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
