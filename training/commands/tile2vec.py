"""``python -m training tile2vec RASTER... --out BUNDLE_DIR``: train a Tile2Vec encoder, export a bundle."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import torch

from srl_core.cli._options import add_threads_option
from srl_core.cli._progress_bar import text_progress
from srl_core.errors import CancelledError, InputError
from srl_core.model_ids import check_new_bundle
from srl_core.models.tile import VARIANTS
from srl_core.models.training_free import valid_scales
from srl_core.progress import Progress

from ..tile2vec import OBJECTIVES, Tile2VecConfig, export_bundle, train_tile2vec
from ..tile2vec.rasters import TRAINING_NORMALISATIONS, band_labels
from ..tile2vec.trainer import CHECKPOINT_NAME
from . import command_line
from ._outputs import check_outside_models

DEFAULTS = {f.name: f.default for f in fields(Tile2VecConfig)}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tile2vec",
        help="Train a Tile2Vec tile encoder on rasters; exports a bundle.",
        description="Train a tile encoder with the Tile2Vec triplet loss on one or many rasters with the "
                    "same bands, and write a model bundle (weights.safetensors + card.json). RASTER is a "
                    "path GDAL opens, 'a.tif+b.tif+...' to stack single-band files as bands, or "
                    "'package:NAME/path' for a file of a registry data package.",
    )
    p.add_argument("rasters", nargs="+", metavar="RASTER")
    p.add_argument("--out", required=True, help="bundle folder to write (a new or empty folder)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --out")
    p.add_argument("--rebuild-bundled", action="store_true",
                   help="allow --out inside SRL's bundled models folder (make models rebuilds them)")
    p.add_argument("--id", help="model id (default: the bundle folder's name)")
    p.add_argument("--band-names", help="comma-separated band names for the card, e.g. blue,green,red")
    p.add_argument("--band-descriptions", help="comma-separated band descriptions for the card")
    p.add_argument("--sensor", default="", help="sensor and product, for the card")
    p.add_argument("--description", default="", help="one paragraph for the card")
    p.add_argument("--licence", default="", help="licence of the weights, for the card")
    add_training_arguments(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on the GPU")
    add_threads_option(p)
    p.add_argument("--mask", help="raster (non-zero = inside) or polygon layer: train on the area "
                                  "inside only "
                                  "(tiles, triplets and normalisation statistics), e.g. land; one layer "
                                  "of a file of several as FILE|layername=LAYER")
    p.add_argument("--checkpoint-dir", help="write checkpoints here and resume from one found there")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The Tile2VecConfig options (shared with ``evaluate-tiles --train-own-scene``)."""
    parser.add_argument("--nodata", type=float,
                        help="nodata value of the bands that declare none (a fill the files do not declare; "
                             "a declared one stays, as the engines read it)")
    parser.add_argument("--tile-size", type=int, default=DEFAULTS["tile_size"], help="tile size in pixels")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default=DEFAULTS["variant"])
    parser.add_argument("--z-dim", type=int, default=DEFAULTS["z_dim"],
                        help="learned values (the band statistics of --spectral-stats come on top)")
    parser.add_argument("--spectral-stats", action=argparse.BooleanOptionalAction,
                        default=DEFAULTS["spectral_stats"],
                        help="append each band's mean and std over the tile to the embedding (2 per band), "
                             "trained with it, so the network learns what band statistics miss "
                             "(default: on)")
    parser.add_argument("--spectral-scales", type=_scales,
                        help="the band statistics over the tile and its centred crops: fractions of the tile "
                             "side (default 1,0.5,0.25; 1: the whole tile only)")
    parser.add_argument("--radius", type=float, default=DEFAULTS["neighbour_radius"],
                        help="neighbour's centre within this many pixels of the anchor's")
    parser.add_argument("--distant-min", type=float, help="distant tile at least this many pixels away "
                                                           "(default: 4 x radius)")
    parser.add_argument("--max-nodata", type=float, default=DEFAULTS["max_nodata_fraction"],
                        help="reject tiles with a larger nodata fraction")
    parser.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="triplets per step")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="Adam learning rate (cosine decay)")
    parser.add_argument("--objective", choices=OBJECTIVES, default=DEFAULTS["objective"],
                        help="triplet: Tile2Vec's margin loss on one distant tile per anchor; infonce: "
                             "each anchor picks its neighbour among all tiles of the batch (cosine, "
                             "cross-entropy); vicreg: anchor and neighbour pulled together, each "
                             "dimension's spread kept, dimensions decorrelated (no negatives)")
    parser.add_argument("--margin", type=float, default=DEFAULTS["margin"], help="of the triplet objective")
    parser.add_argument("--l2", type=float, default=DEFAULTS["l2_weight"],
                        help="embedding L2 penalty weight of the triplet objective")
    parser.add_argument("--temperature", type=float, default=DEFAULTS["temperature"],
                        help="of the infonce objective")
    parser.add_argument("--expander", type=int, default=DEFAULTS["expander"],
                        help="width of the training-only MLP head the vicreg objective is computed on "
                             "(not in the bundle; 0: on the embedding itself; default 256 with vicreg)")
    parser.add_argument("--pixel-features", type=int, default=DEFAULTS["pixel_features"],
                        help="learned per-pixel spectral features (1 x 1 convolutions) averaged over "
                             "the tile and the --spectral-scales crops, appended to the embedding "
                             "(default 0: none)")
    parser.add_argument("--normalisation", choices=TRAINING_NORMALISATIONS, default=DEFAULTS["normalisation"],
                        help="pooled: every raster standardised by the statistics of all; per-raster: each "
                             "by its own (several sensors or scalings; the engines then standardise a "
                             "raster by its own too); auto (default): per-raster when a raster's band "
                             "means are far from the others'")
    parser.add_argument("--no-augment", action="store_true", help="no flips and rotations")
    parser.add_argument("--radiometric", type=float, default=DEFAULTS["radiometric"],
                        help="sd of a random gain (log scale) and offset per tile and band on the "
                             "standardised tiles, e.g. 0.2 (default 0: none)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"])


def config_from_args(args: argparse.Namespace) -> Tile2VecConfig:
    if args.spectral_scales is not None and not (args.spectral_stats or args.pixel_features):
        raise InputError("--spectral-scales sets the scales of the band statistics and pixel features: "
                         "drop --no-spectral-stats.")
    return Tile2VecConfig(
        tile_size=args.tile_size, variant=args.variant, z_dim=args.z_dim, neighbour_radius=args.radius,
        distant_min_distance=args.distant_min, max_nodata_fraction=args.max_nodata,
        batch_size=args.batch_size, steps=args.steps, lr=args.lr, margin=args.margin, l2_weight=args.l2,
        augment=not args.no_augment, radiometric=args.radiometric, seed=args.seed, nodata=args.nodata,
        spectral_stats=args.spectral_stats,
        spectral_scales=args.spectral_scales or DEFAULTS["spectral_scales"],
        objective=args.objective, temperature=args.temperature, pixel_features=args.pixel_features,
        expander=args.expander, normalisation=args.normalisation,
    )


def _scales(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fractions separated by commas, got '{text}'") from None
    if not valid_scales(scales):
        raise argparse.ArgumentTypeError(f"each scale must be in (0, 1], got '{text}'")
    return scales


def _names(text: str | None) -> list[str] | None:
    return [part.strip() for part in text.split(",")] if text else None


def check_band_labels(rasters: list[str], names: Optional[list[str]],
                      descriptions: Optional[list[str]]) -> None:
    """``--band-names`` and ``--band-descriptions`` must give one entry per band of the rasters (which share
    their bands): refused before training, not after it with the trained model lost. A name that is
    another band's in the raster itself is refused too: red, green, blue given for a raster whose
    bands say blue, green, red made the card call its blue band red, and the engine then fed the
    training raster's own bands to the model in the other order."""
    given = [(option, labels) for option, labels in (("--band-names", names),
                                                     ("--band-descriptions", descriptions)) if labels]
    if not given:
        return
    own = [label.strip().lower() for label in band_labels(rasters[0])]
    for option, labels in given:
        if len(labels) != len(own):
            raise InputError(f"{option} gives {len(labels)} entries, but {rasters[0]} has {len(own)} bands; "
                             "give one per band, in the rasters' band order.")
    for i, name in enumerate(names or []):
        key = name.strip().lower()
        if key in own and own.index(key) != i:
            raise InputError(f"--band-names gives '{name}' for band {i + 1}, but band {own.index(key) + 1} "
                             f"of {rasters[0]} is named so ({', '.join(own)}); give the names in its band "
                             "order.")


def check_checkpoint_dir(checkpoint_dir: Optional[str], out: Path) -> None:
    """Refuse checkpoints at or inside the bundle folder: a bundle folder holds only its card and weights,
    so the final save would refuse it after the whole training."""
    if not checkpoint_dir:
        return
    checkpoints, bundle = Path(checkpoint_dir).expanduser().resolve(), out.resolve()
    if checkpoints.exists() and not checkpoints.is_dir():
        raise InputError(f"--checkpoint-dir {checkpoint_dir} is a file, not a folder; name a folder for the "
                         "checkpoints (made if missing).")
    if checkpoints.is_relative_to(bundle):
        raise InputError(f"--checkpoint-dir {checkpoint_dir} is inside the bundle folder --out {out}, which "
                         "may hold only the model's card and weights; choose a checkpoint folder outside it.")
    check_outside_models("--checkpoint-dir", checkpoint_dir)
    existing = next(folder for folder in (checkpoints, *checkpoints.parents) if folder.exists())
    if not existing.is_dir():  # a traceback once the rasters were read
        raise InputError(f"--checkpoint-dir {checkpoint_dir} lies under the file {existing}; name a folder.")
    if not os.access(existing, os.W_OK):
        raise InputError(f"--checkpoint-dir {checkpoint_dir} cannot be made or written ({existing} is not "
                         "writable); name another folder.")


def _note_checkpoint_kept(exc: BaseException, checkpoint_dir: Optional[str], out: Path) -> None:
    """Let the cancel message name the checkpoint a cancelled run leaves for the same command to resume
    (``exc.kept``): Ctrl-C said "no partial output was kept" with a resumable checkpoint on disk."""
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    if checkpoint is not None and checkpoint.is_file():
        note = (f"the checkpoint {checkpoint} is kept, and the same command resumes from it; no partial "
                f"output was kept in {out}.")
        exc.kept = note  # type: ignore[attr-defined]


def run(args: argparse.Namespace) -> int:
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    config = config_from_args(args)
    # everything that would fail the export, before hours of work
    out = check_new_bundle(args.id or Path(args.out).name, args.out, args.overwrite,
                           args.rebuild_bundled)
    check_checkpoint_dir(args.checkpoint_dir, out)
    check_band_labels(args.rasters, _names(args.band_names), _names(args.band_descriptions))
    try:
        result = train_tile2vec(
            args.rasters, config, device=args.device, amp=not args.no_amp, checkpoint_dir=args.checkpoint_dir,
            checkpoint_every=args.checkpoint_every, mask=args.mask,
            progress=Progress() if args.quiet else text_progress(),
        )
        export_bundle(
            result, out, args.id or out.name, args.overwrite, band_names=_names(args.band_names),
            band_descriptions=_names(args.band_descriptions), sensor=args.sensor,
            description=args.description, licence=args.licence, command=command_line(), started_utc=started,
            threads=torch.get_num_threads(),
        )
    except (KeyboardInterrupt, CancelledError) as exc:
        _note_checkpoint_kept(exc, args.checkpoint_dir, out)
        raise
    # the data's warnings were said before the first step, unless --quiet kept the progress silent
    for warning in [*(result.data_warnings if args.quiet else []), *result.warnings]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"Trained {result.steps_done} steps in {result.elapsed_s:.0f} s on {result.device}; "
          f"final loss {result.final_loss:.4f}; bundle written to {out}")
    return 0
