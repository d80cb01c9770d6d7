"""The location-encoder protocol the team reports: training seeds x sample draws, mean ± sd.

One fold split of one draw of points is a noisy measurement (fold spreads of 0.03–0.06 on the
spatial split), and one training seed says little about a recipe. So each table row is a list
of *runs*: every training seed of the row (bundles trained from the same recipe with different
seeds, or a seeded baseline's random matrix redrawn) scored on every draw of evaluation points.
A row's figure per split is the mean over its runs of the fold-mean score, ± the standard
deviation over runs; the mean fold spread is kept beside it in the JSON.

Splits (by default): random 5-fold, and GroupKFold on 5, 10 and 20 degree cells (a whole cell unseen: from
regional to continental extrapolation). Tasks: Köppen–Geiger zone (accuracy of a logistic probe)
and, held out from training, distance to water (R² of a ridge regression;
:mod:`.location_targets`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from srl_core.errors import InputError
from srl_core.progress import Progress, ensure_progress

from . import SD_CONVENTION
from .location_targets import TARGET_NAME, WaterDistance
from .locations import (
    BASELINES,
    CELL_DEGREES,
    EvalPoints,
    KoppenMap,
    Score,
    embed_locations,
    encode,
    evaluate_features,
    published_geoclip,
    sample_eval_points,
    split_name,
)

CELLS = (5.0, 10.0, 20.0)
SATCLIP_MISSING = ("SatCLIP (import path): not scored, no checkpoint given (--satclip FILE.ckpt); "
                   "no SatCLIP checkpoint ships in a data package")

Source = Any  # a torch module, a LoadedModel, or a bundle id / folder


@dataclass
class Row:
    """One table row: the same features from one source per training seed."""

    name: str
    sources: list[Source]


@dataclass
class RowResult:
    """A row's scores: one Score per (training seed, draw)."""

    name: str
    dim: int
    seeds: int
    draws: int
    runs: list[Score] = field(default_factory=list)

    def values(self, split: str, task: str = "accuracy") -> list[float]:
        """Per-run fold-mean of a split ("random", "spatial 10", ...); task "accuracy" or "r2"."""
        return [float(np.mean(f)) for f in (_folds(run, split, task) for run in self.runs) if f]

    def fold_sd(self, split: str, task: str = "accuracy") -> float:
        """Mean over runs of the standard deviation over folds."""
        sds = [float(np.std(f)) for f in (_folds(run, split, task) for run in self.runs) if f]
        return float(np.mean(sds)) if sds else float("nan")

    def summary(self, split: str, task: str = "accuracy") -> tuple[float, float]:
        """(mean, sd over runs) of a split, NaN when not scored."""
        vals = self.values(split, task)
        if not vals:
            return float("nan"), float("nan")
        return float(np.mean(vals)), float(np.std(vals))


def _folds(run: Score, split: str, task: str) -> Optional[list[float]]:
    if task == "r2":
        return run.r2.get(split)
    if split == "random":
        return run.random
    return run.spatial_cells.get(float(split.split()[1]))


def baseline_rows(names: Optional[list[str]] = None, seeds: int = 3) -> list[Row]:
    """Untrained baselines; seeded ones (RFF) get ``seeds`` random matrices, the others one."""
    from srl_core.models.location import build_encoding

    names = list(BASELINES) if names is None else names
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise InputError(f"Unknown baselines {unknown}; choose from {', '.join(BASELINES)}.")
    rows = []
    for name in names:
        config = BASELINES[name]
        if "seed" in config:
            sources = [build_encoding({**config, "seed": s}) for s in range(max(1, seeds))]
        else:
            sources = [build_encoding(copy.deepcopy(config))]
        rows.append(Row(name, sources))
    return rows


def model_row(spec: str) -> Row:
    """A row from ``[LABEL=]MODEL[,MODEL...]``: bundles of one recipe trained with different seeds."""
    label, _, models = spec.rpartition("=") if "=" in spec else ("", "", spec)
    sources = [m.strip() for m in models.split(",") if m.strip()]
    if not sources:
        raise InputError(f"--model '{spec}' names no model; give an id or folder (several, comma-separated, "
                         "for the seeds of one recipe).")
    name = sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1} seeds)"
    return Row(label or name, sources)


def reference_rows(geoclip: bool = True, satclip: Optional[str] = None) -> list[Row]:
    """Published encoders: GeoCLIP (from its package) and a SatCLIP checkpoint if one is given."""
    rows = []
    if geoclip:
        rows.append(Row("GeoCLIP (published)", [published_geoclip()]))
    if satclip:
        from srl_core.importers.satclip import import_satclip

        rows.append(Row(f"SatCLIP (imported {Path(satclip).name})", [import_satclip(satclip)]))
    return rows


def draw_points(
    n: int, draws: int, seed: int, land, koppen: KoppenMap, target: bool = True
) -> list[EvalPoints]:
    """``draws`` independent point samples (seeds seed, seed+1, ...), each with the water-distance target."""
    if draws < 1:
        raise InputError(f"Need at least one draw of evaluation points, got {draws}.")
    water = WaterDistance(land) if target else None
    out = []
    for d in range(draws):
        points = sample_eval_points(n, seed + d, land, koppen)
        if water is not None:
            points.target = water.target(points.lon, points.lat)
        out.append(points)
    return out


def features_of(source: Source, points: EvalPoints) -> np.ndarray:
    """Embeddings (N, D) of the points from a torch module, a loaded model, or a bundle id/folder."""
    import torch

    if isinstance(source, torch.nn.Module):
        return encode(source, points.lon, points.lat)
    return embed_locations(source, points.lon, points.lat)


def run_protocol(
    rows: list[Row],
    draws: list[EvalPoints],
    folds: int = 5,
    cells: tuple[float, ...] = CELLS,
    draw_seeds: Optional[list[int]] = None,
    progress: Optional[Progress] = None,
    on_result: Optional[Callable[[RowResult], None]] = None,
) -> list[RowResult]:
    """Score every row's every source on every draw; ``on_result`` gets each row when done."""
    progress = ensure_progress(progress)
    draw_seeds = list(range(len(draws))) if draw_seeds is None else draw_seeds
    total = sum(len(r.sources) for r in rows) * len(draws)
    done = 0
    results = []
    for row in rows:
        result = RowResult(row.name, 0, len(row.sources), len(draws))
        for source in row.sources:
            for points, seed in zip(draws, draw_seeds):
                part = progress.sub(done / total, (done + 1) / total)
                features = features_of(source, points)
                score = evaluate_features(row.name, features, points, folds, seed, part, cells)
                result.runs.append(score)
                result.dim = score.dim
                done += 1
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _cell(mean: float, sd: float) -> str:
    return "n/a" if np.isnan(mean) else f"{mean:.3f} ± {sd:.3f}"


def columns(cells: tuple[float, ...]) -> list[tuple[str, str, str]]:
    """(header, split, task) of each table column."""
    splits = ["random"] + [split_name(c) for c in sorted({*cells, CELL_DEGREES})]  # 10 is always scored
    cols = [(s if s == "random" else s + "°", s, "accuracy") for s in splits]
    cols += [("R² random", "random", "r2"), (f"R² spatial {CELL_DEGREES:g}°", split_name(CELL_DEGREES), "r2")]
    return cols


def row_line(result: RowResult, cells: tuple[float, ...], markdown: bool = False) -> str:
    values = [_cell(*result.summary(split, task)) for _, split, task in columns(cells)]
    runs = f"{result.seeds}x{result.draws}"
    if markdown:
        return "| " + " | ".join([result.name, str(result.dim), runs, *values]) + " |"
    return f"{result.name:<34} {result.dim:>5} {runs:>5}  " + "  ".join(f"{v:>15}" for v in values)


def _tasks(draws: list[EvalPoints]) -> str:
    """The tasks scored: the zones, and the continuous target where the points carry it (not --no-target)."""
    zones = "Köppen–Geiger zone (accuracy of a logistic probe, C=1)"
    if draws[0].target is None:
        return zones
    return f"{zones} and {TARGET_NAME} (R² of a ridge regression, alpha=1)"


def _splits(folds: int, cells: tuple[float, ...]) -> str:
    """The folds scored: random, and grouped by each cell size (the 10 degree one is always scored)."""
    scored = "/".join(f"{c:g}" for c in sorted({*cells, CELL_DEGREES}))
    return f"{folds}-fold CV, random and GroupKFold on {scored} degree cells"


def format_protocol_table(
    results: list[RowResult], draws: list[EvalPoints], folds: int, cells: tuple[float, ...] = CELLS,
    markdown: bool = False, notes: Optional[list[str]] = None,
) -> str:
    """The table: per split, mean ± sd over runs (training seeds x draws) of the fold-mean score."""
    points = draws[0]
    classes = np.unique(points.label).size
    head = (f"{_tasks(draws)}, {points.label.size} area-uniform land points (lat > -60, {classes} zones), "
            f"{len(draws)} draws; {_splits(folds, cells)}; runs = training seeds x draws; "
            f"mean ± sd over runs ({SD_CONVENTION})\n")
    cols = columns(cells)
    if markdown:
        header = "| " + " | ".join(["features", "dim", "runs", *(c[0] for c in cols)]) + " |\n"
        header += "|" + "---|" * (3 + len(cols)) + "\n"
    else:
        header = f"{'features':<34} {'dim':>5} {'runs':>5}  " + "  ".join(f"{c[0]:>15}" for c in cols) + "\n"
    body = "\n".join(row_line(r, cells, markdown) for r in results)
    tail = "".join(f"\n{n}" for n in notes or [])
    return head + header + body + tail


def to_json(results: list[RowResult], draws: list[EvalPoints], draw_seeds: list[int], folds: int) -> dict:
    """Everything measured, per run and per fold, plus the summaries."""
    rows = []
    for r in results:
        splits = ["random"] + [split_name(c) for c in sorted(r.runs[0].spatial_cells)] if r.runs else []
        rows.append({
            "name": r.name, "dim": r.dim, "training_seeds": r.seeds, "draws": r.draws,
            "random": [v for run in r.runs for v in run.random],
            "spatial": [v for run in r.runs for v in run.spatial],
            "summary": {task: {s: {"mean": r.summary(s, task)[0], "sd_over_runs": r.summary(s, task)[1],
                                   "mean_fold_sd": r.fold_sd(s, task)} for s in splits}
                        for task in ("accuracy", "r2")},
            "runs": [{"random": run.random, "r2": run.r2,
                      "spatial_cells": {f"{c:g}": v for c, v in run.spatial_cells.items()}}
                     for run in r.runs],
        })
    return {"points": int(draws[0].label.size), "draw_seeds": draw_seeds, "folds": folds,
            "target": TARGET_NAME, "scores": rows}


def card_metrics(result: RowResult, baselines: list[RowResult], command: str, draws: list[EvalPoints],
                 folds: int, cells: tuple[float, ...] = CELLS) -> dict[str, Any]:
    """The protocol's figures for a model card, beside the best baseline per split, described by the
    run's own settings (``draws``, ``folds``, ``cells``: as given to :func:`run_protocol`)."""
    def pack(r: RowResult) -> dict[str, Any]:
        splits = ["random"] + [split_name(c) for c in sorted(r.runs[0].spatial_cells)]
        out: dict[str, Any] = {}
        for task in ("accuracy", "r2"):
            for s in splits:
                mean, sd = r.summary(s, task)
                if not np.isnan(mean):
                    out[f"{task} {s}"] = {"mean": round(mean, 4), "sd": round(sd, 4)}
        return out

    return {
        "protocol": (f"{_tasks(draws)} at {len(result.runs)} runs = {result.seeds} training seeds x "
                     f"{result.draws} draws of {draws[0].label.size} area-uniform land points; "
                     f"{_splits(folds, cells)}; mean and sd over runs"),
        "model": pack(result),
        "baselines": {b.name: pack(b) for b in baselines},
        "command": command,
    }


def record_location_metrics(folder: Union[str, Path], metrics: dict[str, Any]) -> Path:
    """Store the protocol figures in a bundle's card (``metrics.location_protocol``)."""
    from srl_core.atomic import atomic_output
    from srl_core.bundle import CARD_NAME, find_bundle

    path = Path(find_bundle(folder)) / CARD_NAME
    card = json.loads(path.read_text(encoding="utf-8"))
    card.setdefault("metrics", {})["location_protocol"] = metrics
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
    return path
