"""Command line of srl_core: ``python -m srl_core <command> ...``.

Every module in this package that defines ``register(subparsers)`` adds its own
sub-command(s); each sub-command sets ``func(args) -> int`` via ``set_defaults``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Optional, Sequence

from ..errors import SRLError


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SRLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
