"""``python -m training location``: pretrain a location encoder on global imagery, export a bundle."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from srl_core.cli._options import add_threads_option

from . import command_line

if TYPE_CHECKING:  # the command imports its modules only when it runs
    from ..evaluate.locations import EvalPoints


def register(subparsers) -> None:
    from ..location.trainer import DEFAULT_ENCODER, LocationTrainingConfig

    d = LocationTrainingConfig()
    p = subparsers.add_parser(
        "location",
        help="Contrastive location-image pretraining (SatCLIP-style) on global imagery; exports a bundle.",
        description="Train a spherical-harmonics + SIREN location encoder so that its embedding of "
                    "(lon, lat) matches a small CNN's embedding of the imagery patch there (CLIP loss).",
    )
    p.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    p.add_argument("--id", default=None, help="model id (default: the folder name)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    p.add_argument("--rebuild-bundled", action="store_true",
                   help="allow --out inside SRL's bundled models folder (make models rebuilds them)")
    p.add_argument("--encoder", default=json.dumps(DEFAULT_ENCODER),
                   help=f"location encoder config as JSON (default {json.dumps(DEFAULT_ENCODER)})")
    p.add_argument("--append", default=None,
                   help='a fixed encoding appended to the trained embedding, JSON, e.g. '
                        '\'{"name": "sphericalharmonics", "legendre_polys": 10}\' (not trained)')
    p.add_argument("--sources", nargs="+", default=list(d.sources), help="imagery to stack (bluemarble etopo "
                                                                         "shadedrelief)")
    p.add_argument("--imagery-height", type=int, default=d.imagery_height,
                   help="rows of the imagery grid (2700 = the Blue Marble's own 1/15 degree)")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--patch-size", type=int, default=d.patch_size, help="patch side in pixels")
    p.add_argument("--patch-step", type=float, default=d.patch_step, help="image pixels between patch pixels")
    p.add_argument("--context-step", type=float, default=d.context_step,
                   help="also show the image encoder a wider patch with this step (0: none)")
    p.add_argument("--jitter", type=float, default=d.jitter,
                   help="move each training location up to this fraction of the patch half-width")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--max-logit-scale", type=float, default=d.max_logit_scale,
                   help="cap on the learnt inverse temperature (CLIP: 100)")
    p.add_argument("--ocean-fraction", type=float, default=d.ocean_fraction)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or mps")
    add_threads_option(p)
    p.add_argument("--evaluate", action="store_true",
                   help="score the result on Köppen-Geiger zones and store the metrics in the card")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from srl_core.cli._progress_bar import text_progress
    from srl_core.errors import InputError
    from srl_core.model_ids import check_new_bundle

    from ..location.export import export_location_bundle
    from ..location.trainer import LocationTrainingConfig, train_location_encoder

    try:
        encoder = json.loads(args.encoder)
        append = json.loads(args.append) if args.append else None
    except json.JSONDecodeError as exc:
        raise InputError(f"--encoder or --append is not valid JSON: {exc}") from exc
    # before hours of work
    out = check_new_bundle(args.id or args.out.name, args.out, args.overwrite, args.rebuild_bundled)
    config = LocationTrainingConfig(
        encoder=encoder, append=append, sources=tuple(args.sources), imagery_height=args.imagery_height,
        steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.lr, weight_decay=args.weight_decay, patch_size=args.patch_size,
        patch_step=args.patch_step, context_step=args.context_step, jitter=args.jitter,
        ocean_fraction=args.ocean_fraction, max_logit_scale=args.max_logit_scale, seed=args.seed,
        device=args.device,
    )
    config.validate()  # before the evaluation's data packages: --evaluate read them first (about 10 s)
    points = evaluation_points() if args.evaluate else None  # its data packages now, not after the training
    result = train_location_encoder(config, progress=text_progress())
    print(f"trained in {result.seconds:.0f} s on {result.device}: final loss {result.final_loss:.3f}, "
          f"temperature {result.temperature:.4f}", flush=True)
    metrics = evaluate_keeping_model(result.encoder, points) if points is not None else {}
    command = command_line()
    folder = export_location_bundle(result, out, args.id or out.name, command, metrics, args.overwrite)
    print(f"wrote {folder}")
    return 0


def evaluation_points() -> EvalPoints:
    """The Köppen–Geiger probe's 10,000 points (seed 0), drawn before training: a data package that
    cannot be fetched then stops the run before its work, not after it with the model unsaved."""
    from ..evaluate.locations import KoppenMap, sample_eval_points
    from ..location.sampling import LandMask

    return sample_eval_points(10000, 0, LandMask.from_package(), KoppenMap.from_package())


def evaluate_keeping_model(encoder, points: EvalPoints) -> dict:
    """:func:`evaluate`, or no metrics when it fails or is interrupted: the trained model is then
    still written, without its figures, instead of being lost with the evaluation."""
    try:
        return evaluate(encoder, points)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - whatever failed, keep the model
        print(f"warning: the evaluation did not finish ({type(exc).__name__}: {exc}); the bundle is "
              "written without its metrics. Score it later with `python -m training evaluate-locations "
              "--model FOLDER --write-metrics`.",
              file=sys.stderr, flush=True)
        return {}


def evaluate(encoder, points: EvalPoints) -> dict:
    """The Köppen–Geiger probe of the freshly trained encoder on ``points`` (5 folds)."""
    from ..evaluate.locations import evaluate_encoder

    score = evaluate_encoder("trained", encoder, points)
    print(score.row(), flush=True)
    return {"koppen_geiger_10k": score.as_metrics()}
