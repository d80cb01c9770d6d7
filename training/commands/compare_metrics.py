"""``python -m training compare-metrics``: fail when a retrained model's figures drift beyond their spread."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare-metrics",
        help="Compare a retrained model card's metrics with the shipped card's (fails beyond the spread).",
        description="Each metric whose spread (fold or seed sd) the shipped card states must come back "
                    "within that spread. Used by `make models` after retraining.",
    )
    p.add_argument("shipped", type=Path, help="card.json as shipped (before retraining)")
    p.add_argument("new", type=Path, help="card.json written by the retraining")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..reproducibility import compare_cards

    checks = compare_cards(args.shipped, args.new)
    print(f"{args.new}: metrics against {args.shipped}")
    for check in checks:
        print(check.line())
    drifted = [c for c in checks if not c.ok]
    checked = sum(c.checked for c in checks)
    if drifted:
        print(f"{len(drifted)} of {checked} checked metrics drifted beyond their spread.")
        return 1
    print(f"All {checked} checked metrics within their spread.")
    return 0
