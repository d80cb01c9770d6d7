"""``python -m srl_core models``: list the bundled and user models with their cards."""

from __future__ import annotations

import argparse
import json

from ..bundle import find_bundle, list_bundles, read_card


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="List models, or show one model's card.")
    parser.add_argument("model", nargs="?", help="Model id or bundle folder to describe.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.model:
        print(read_card(find_bundle(args.model)).to_json())
        return 0
    rows = [{"id": c.id, "kind": c.kind, "embedding_size": str(c.embedding_size),
             # the card's 0 of a training-free model, said for people; the number stays for scripts
             **({"embedding_size_note": c.size_text} if not c.embedding_size else {}),
             "description": c.description, "path": str(p)} for c, p in list_bundles()]
    if not rows:
        print("No models found.")
    for row in rows:
        print(json.dumps(row))
    return 0
