"""``python -m training evaluate-locations``: the Köppen–Geiger climate-zone table for location encoders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from srl_core.atomic import atomic_output


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate-locations",
        help="Score location encoders on Köppen–Geiger zones (random and 10x10 degree spatial folds).",
        description="Linear probe of location embeddings at area-uniform land points against Köppen–Geiger "
                    "climate zones, beside untrained baselines and the published GeoCLIP encoder.",
    )
    p.add_argument("--model", action="append", default=[], help="bundle id or folder (repeatable)")
    p.add_argument("--points", type=int, default=10000, help="number of evaluation points (default 10000)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0, help="seed of the points and of the random folds")
    p.add_argument("--baseline", action="append", default=None,
                   help="baseline to include (repeatable; default all)")
    p.add_argument("--no-baselines", action="store_true", help="score only the given models")
    p.add_argument("--no-geoclip", action="store_true", help="leave out the published GeoCLIP encoder")
    p.add_argument("--json", type=Path, help="also write the scores per fold to this JSON file")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..evaluate.locations import KoppenMap, format_table, run_location_evaluation, sample_eval_points
    from ..location.sampling import LandMask

    if args.threads:
        torch.set_num_threads(args.threads)
    points = sample_eval_points(args.points, args.seed, LandMask.from_package(), KoppenMap.from_package())
    baselines = [] if args.no_baselines else args.baseline

    def show(score) -> None:
        print(score.row(), flush=True)

    scores = run_location_evaluation(args.model, points, baselines, not args.no_geoclip, args.folds,
                                     args.seed, on_score=show)
    print()
    print(format_table(scores, points, args.folds))
    if args.json:
        rows = [{"name": s.name, "dim": s.dim, "random": s.random, "spatial": s.spatial} for s in scores]
        report = {"points": args.points, "seed": args.seed, "folds": args.folds, "scores": rows}
        with atomic_output(args.json) as tmp_path:
            Path(tmp_path).write_text(json.dumps(report, indent=2), encoding="utf-8")
    sys.stdout.flush()
    return 0
