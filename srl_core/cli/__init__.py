"""Command line of srl_core: ``python -m srl_core <command> ...``.

Every module in this package that defines ``register(subparsers)`` adds its own
sub-command(s); each sub-command sets ``func(args) -> int`` via ``set_defaults``.

A command imports only its own module: torch, scikit-learn and the analyses take seconds
to import, more than a small run takes. :data:`COMMANDS` names each command's module and
its one-line help for the command list; the module is imported, and its ``register`` run,
only when its command is chosen. A module not named there is imported at start-up.
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
from ..names import file_part
from ..signals import cancelled_exit, signals_cancel

OUTPUT_ARGUMENTS = ("output", "save_model", "prediction", "uncertainty")

DEBUG_ENV = "SRL_DEBUG"  # set to 1 to see the traceback of an internal error
INTERNAL_ERROR_STATUS = 3

# command -> (module of this package that registers it, help shown in the command list)
COMMANDS: dict[str, tuple[str, str]] = {
    "apply-clusters": ("analysis", "Apply a saved k-means model to embeddings."),
    "cluster": ("analysis", "k-means (or HDBSCAN on points) classes from embeddings."),
    "embed-points": ("embed_points", "Embed the points of a vector layer or CSV with a location model, "
                     "to a GeoPackage."),
    "embed-raster": ("embed_raster", "Embed every tile of a raster with a tile model; write an embedding "
                     "GeoTIFF."),
    "import-model": ("embed_points", "Import a published GeoCLIP or SatCLIP checkpoint into the user "
                     "model folder."),
    "interpolate": ("analysis", "Map a point field from location (and tile) embeddings."),
    "models": ("models", "List models, or show one model's card."),
    "rgb-view": ("analysis", "PCA colour view (RGB) of embeddings."),
    "sample-tiles": ("sample_tiles", "Embed the raster tile centred at each point of a layer; write the "
                     "points with them."),
    "similarity": ("analysis", "Cosine similarity of every pixel/point to examples."),
    "top-k": ("analysis", "The k tiles or points most similar to examples, as points."),
}


class _LazySubcommands(argparse._SubParsersAction):
    """Sub-commands listed from :data:`COMMANDS`; the chosen one's module registers it when parsed."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Sequence[str], option_string: Optional[str] = None) -> None:
        if values and values[0] in COMMANDS:
            self.load(COMMANDS[values[0]][0])
        super().__call__(parser, namespace, values, option_string)

    def load(self, module_name: str) -> None:
        """Replace the placeholders of ``module_name``'s commands by the parsers it registers."""
        names = {name for name, (module, _) in COMMANDS.items() if module == module_name}
        for name in names:
            self._name_parser_map.pop(name, None)
        self._choices_actions = [a for a in self._choices_actions if a.dest not in names]
        importlib.import_module(f"{__name__}.{module_name}").register(self)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m srl_core", description="Spatial representation learning for GIS data."
    )
    parser.register("action", "parsers", _LazySubcommands)
    subparsers = parser.add_subparsers(dest="command", required=True)
    lazy = {module for module, _ in COMMANDS.values()}
    for name, (_, help_text) in sorted(COMMANDS.items()):
        subparsers.add_parser(name, help=help_text)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in lazy:
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
    files = [file_part(v) for v in values if isinstance(v, str) and v]  # a layer: its file
    return [v for v in files if v and os.path.exists(v)]


def files_of(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(outputs, inputs) of a parsed command line (see the module docstring)."""
    outputs = [getattr(args, name) for name in OUTPUT_ARGUMENTS if getattr(args, name, None)]
    inputs = [p for k, v in vars(args).items() if k not in OUTPUT_ARGUMENTS for p in _existing_paths(v)]
    return outputs, inputs


def main(argv: Optional[Sequence[str]] = None) -> int:
    _show_warnings()
    try:
        args = build_parser().parse_args(argv)
        from ..gdal_exceptions import gdal_exceptions  # after parsing: --help needs no GDAL

        with signals_cancel(), gdal_exceptions(), output_run(*files_of(args)):
            return int(args.func(args) or 0)
    except (CancelledError, KeyboardInterrupt) as exc:
        return cancelled_exit(exc)
    except SRLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not the user's doing: a short message, the traceback on request
        return internal_error_exit(exc)


def internal_error_exit(exc: Exception) -> int:
    """Say a bug in one sentence (the traceback with ``SRL_DEBUG=1``); return the exit status for it. The
    training command line shares it: it printed raw tracebacks for every such failure."""
    if os.environ.get(DEBUG_ENV) == "1":
        traceback.print_exc()
    print(
        f"internal error: {type(exc).__name__}: {exc}. This is a bug in SRL, not in your data; please "
        f"report it with the command you ran (set {DEBUG_ENV}=1 to see the details).",
        file=sys.stderr,
    )
    return INTERNAL_ERROR_STATUS
