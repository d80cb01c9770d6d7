"""``python -m training evaluate-locations``: the Köppen–Geiger climate-zone table for location encoders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from srl_core.atomic import atomic_output
from srl_core.checks import check_seed
from srl_core.cli._options import add_threads_option
from srl_core.cli._progress_bar import text_progress
from srl_core.errors import InputError

from ..evaluate.location_protocol import CELLS, model_row
from . import command_line
from ._outputs import check_json_output, check_metrics_targets


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate-locations",
        help="Score location encoders on Köppen–Geiger zones and distance to water (random and spatial "
             "folds).",
        description="Linear probes of location embeddings at area-uniform land points against Köppen–Geiger "
                    "climate zones and distance to water, beside untrained baselines and the published "
                    "GeoCLIP encoder; every row is scored over training seeds x draws of points.",
    )
    p.add_argument("--model", action="append", default=[],
                   help="bundle id or folder (repeatable); several comma-separated = one recipe trained with "
                        "different seeds, scored as one row; optional LABEL= prefix")
    p.add_argument("--points", type=int, default=10000, help="number of evaluation points (default 10000)")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the first draw of points (draws: seed, seed+1, ...)")
    p.add_argument("--draws", type=int, default=2, help="independent draws of evaluation points (default 2)")
    p.add_argument("--baseline-seeds", type=int, default=3,
                   help="random matrices per seeded baseline (RFF; default 3)")
    p.add_argument("--cells", type=float, nargs="+", default=list(CELLS),
                   help="cell sizes (degrees) of the spatial folds (default 5 10 20; 10 is always scored)")
    p.add_argument("--baseline", action="append", default=None,
                   help="baseline to include (repeatable; default all)")
    p.add_argument("--no-baselines", action="store_true", help="score only the given models")
    p.add_argument("--no-geoclip", action="store_true", help="leave out the published GeoCLIP encoder")
    p.add_argument("--satclip", help="a SatCLIP .ckpt to import and score (SatCLIP import path)")
    p.add_argument("--no-target", action="store_true", help="skip the continuous target (distance to water)")
    p.add_argument("--markdown", action="store_true", help="print the final table as Markdown")
    p.add_argument("--write-metrics", action="store_true",
                   help="store each --model row's figures in its bundles' cards (metrics.location_protocol)")
    p.add_argument("--rebuild-bundled", action="store_true",
                   help="allow --write-metrics into the cards of SRL's bundled models (make models)")
    p.add_argument("--json", type=Path, help="also write the scores per run and fold to this JSON file")
    add_threads_option(p)
    p.set_defaults(func=run)


def _named(args: argparse.Namespace) -> list[str]:
    """Every model id or folder the --model rows name."""
    return [model for spec in args.model for model in model_row(spec).sources]


def _check_protocol(args: argparse.Namespace) -> None:
    """Refuse settings the protocol cannot score, naming the option (they were tracebacks after the
    points were drawn: no points to concatenate, a division by a cell of 0 degrees, one fold)."""
    if args.folds < 2:
        raise InputError(f"--folds must be at least 2 (cross-validation), got {args.folds}.")
    if args.points < 10 * args.folds:
        raise InputError(f"--points must be at least 10 per fold ({10 * args.folds}), got {args.points}.")
    check_seed(args.seed, "--seed")
    if args.draws < 1:
        raise InputError(f"--draws must be at least 1, got {args.draws}.")
    bad = [c for c in args.cells if not 0 < c <= 180]
    if bad:
        raise InputError(f"--cells are cell sizes in degrees, each in (0, 180]; got {bad[0]:g}.")


def _check_cells(draws: list, cells: tuple[float, ...], folds: int) -> None:
    """Refuse cells so large that the drawn points fill fewer of them than there are folds (180-degree
    cells hold the land in 2: scikit-learn's "n_splits=5 greater than the number of groups" came out as a
    bug in SRL)."""
    from ..evaluate.locations import cell_groups

    for cell in cells:
        held = min(len(np.unique(cell_groups(points.lon, points.lat, cell))) for points in draws)
        if held < folds:
            raise InputError(f"--cells {cell:g}: the points fall in only {held} cells of {cell:g} degrees, "
                             f"fewer than --folds ({folds}); use smaller cells or fewer folds.")


def run(args: argparse.Namespace) -> int:
    from ..evaluate.location_protocol import (
        SATCLIP_MISSING,
        baseline_rows,
        card_metrics,
        draw_points,
        format_protocol_table,
        record_location_metrics,
        reference_rows,
        row_line,
        run_protocol,
        to_json,
    )
    from ..evaluate.locations import KoppenMap, load_location_model
    from ..location.sampling import LandMask

    if args.json:  # before the evaluation, not after it with its results lost
        check_json_output(str(args.json), _named(args), [args.satclip] if args.satclip else [])
    if args.write_metrics:
        check_metrics_targets(_named(args), args.rebuild_bundled)
    _check_protocol(args)
    for source in _named(args):  # a misspelt id was refused after every baseline was scored (minutes)
        load_location_model(source)
    cells = tuple(sorted({float(c) for c in args.cells}))
    draws = draw_points(args.points, args.draws, args.seed, LandMask.from_package(), KoppenMap.from_package(),
                        target=not args.no_target)
    _check_cells(draws, cells, args.folds)
    draw_seeds = [args.seed + d for d in range(args.draws)]
    baselines = [] if args.no_baselines else baseline_rows(args.baseline, args.baseline_seeds)
    references = reference_rows(not args.no_geoclip, args.satclip)
    models = [model_row(spec) for spec in args.model]

    def show(result) -> None:
        print(row_line(result, cells), flush=True)

    # the bar on stderr: a model's 3 seeds x 2 draws ran over 10 minutes on 2 cores without a word
    results = run_protocol(baselines + references + models, draws, args.folds, cells, draw_seeds,
                           progress=text_progress(), on_result=show)
    notes = [] if args.satclip else [SATCLIP_MISSING]
    print()
    print(format_protocol_table(results, draws, args.folds, cells, args.markdown, notes))
    if args.write_metrics:
        command = command_line()
        others = results[:len(baselines) + len(references)]
        for row, result in zip(models, results[len(baselines) + len(references):]):
            for source in row.sources:
                metrics = card_metrics(result, others, command, draws, args.folds, cells)
                path = record_location_metrics(source, metrics)
                print(f"metrics written to {path}")
    if args.json:
        with atomic_output(args.json) as tmp_path:
            report = to_json(results, draws, draw_seeds, args.folds)
            Path(tmp_path).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    sys.stdout.flush()
    return 0
