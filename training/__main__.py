"""``python -m training <command>``: each training/commands/<name>.py with ``register`` adds one."""

import argparse
import importlib
import pkgutil
import sys

import torch  # noqa: F401  loaded before limit_threads below, which sets torch's threads only once it is

from srl_core.cli import internal_error_exit
from srl_core.errors import CancelledError, SRLError
from srl_core.gdal_exceptions import gdal_exceptions
from srl_core.signals import cancelled_exit, signals_cancel
from srl_core.threads import limit_threads

from . import commands


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description="Train and evaluate SRL models.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    args = parser.parse_args()
    try:
        # every command's torch and BLAS work at srl_core's thread default or its --threads: torch's own
        # default, a thread per core, collapses on a shared desktop (see srl_core.threads)
        with signals_cancel(), gdal_exceptions(), limit_threads(getattr(args, "threads", None)):
            return int(args.func(args) or 0)
    except (CancelledError, KeyboardInterrupt) as exc:
        return cancelled_exit(exc, commands.resuming(args.command))
    except SRLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not the user's doing: one sentence, as srl_core's command line says it
        return internal_error_exit(exc)


raise SystemExit(main())
