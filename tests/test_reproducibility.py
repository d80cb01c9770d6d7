"""`make models` checks that retrained cards reproduce the shipped figures within their spread."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from training.reproducibility import compare_cards, compare_metrics

REPO = Path(__file__).resolve().parent.parent
SHIPPED = {
    "task": {
        "linear_probe_accuracy": 0.72,
        "linear_probe_sd_over_folds": 0.15,
        "kmeans_nmi": 0.60,
        "best_baseline": {"linear_probe_accuracy": 0.73},
    },
    "koppen": {"random_folds_accuracy": 0.79, "random_folds_std": 0.007},
}


def _with(task_probe: float, koppen: float) -> dict:
    new = json.loads(json.dumps(SHIPPED))
    new["task"]["linear_probe_accuracy"] = task_probe
    new["koppen"]["random_folds_accuracy"] = koppen
    return new


def _by_path(checks):
    return {c.path: c for c in checks}


def test_within_spread_passes_and_unspread_metrics_are_not_checked():
    checks = _by_path(compare_metrics(SHIPPED, _with(0.655, 0.795)))
    assert checks["task.linear_probe_accuracy"].ok and checks["task.linear_probe_accuracy"].spread == 0.15
    assert checks["koppen.random_folds_accuracy"].ok
    assert not checks["task.kmeans_nmi"].checked
    assert checks["task.best_baseline.linear_probe_accuracy"].ok  # checked to training-free rows' rounding
    assert "task.linear_probe_sd_over_folds" not in checks  # a spread is not itself a metric


def test_drift_beyond_spread_fails():
    checks = _by_path(compare_metrics(SHIPPED, _with(0.72, 0.77)))
    assert not checks["koppen.random_folds_accuracy"].ok
    assert "DRIFT" in checks["koppen.random_folds_accuracy"].line()


def test_a_metric_missing_from_the_new_card_fails():
    new = _with(0.72, 0.79)
    del new["koppen"]
    assert not _by_path(compare_metrics(SHIPPED, new))["koppen.random_folds_accuracy"].ok


def _write_card(folder: Path, metrics: dict) -> Path:
    folder.mkdir(parents=True)
    path = folder / "card.json"
    path.write_text(json.dumps({"id": folder.name, "metrics": metrics}))
    return path


def test_cli_exit_status(tmp_path):
    shipped = _write_card(tmp_path / "shipped", SHIPPED)
    good = _write_card(tmp_path / "good", _with(0.70, 0.79))
    bad = _write_card(tmp_path / "bad", _with(0.50, 0.79))
    run = [sys.executable, "-m", "training", "compare-metrics", str(shipped)]
    ok = subprocess.run(run + [str(good)], cwd=REPO, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "within their spread" in ok.stdout
    drift = subprocess.run(run + [str(bad)], cwd=REPO, capture_output=True, text=True)
    assert drift.returncode == 1
    assert "DRIFT task.linear_probe_accuracy" in drift.stdout


def test_every_shipped_card_with_metrics_states_a_spread_make_models_can_check():
    for card in sorted((REPO / "resources" / "models").glob("*/card.json")):
        metrics = json.loads(card.read_text())["metrics"]
        if metrics:
            checks = compare_cards(card, card)
            assert any(c.checked for c in checks), f"{card.parent.name}: no metric with a spread"
            assert all(c.ok for c in checks)


def test_another_baseline_or_another_task_is_drift():
    """The best training-free row at 0.2 instead of 0.73, or the task on 100 tiles, passed: what the card's
    Δ and figures were measured against had changed, unsaid."""
    moved = _with(0.72, 0.79)
    moved["task"]["best_baseline"]["linear_probe_accuracy"] = 0.2
    assert not _by_path(compare_metrics(SHIPPED, moved))["task.best_baseline.linear_probe_accuracy"].ok
    rounded = _with(0.72, 0.79)
    rounded["task"]["best_baseline"]["linear_probe_accuracy"] = 0.733
    assert _by_path(compare_metrics(SHIPPED, rounded))["task.best_baseline.linear_probe_accuracy"].ok
    shipped = {"nc": {"task": "2436 tiles", "seeds": 3, "linear_probe_accuracy": 0.7,
                      "linear_probe_sd": 0.04}}
    for change in ({"task": "100 tiles"}, {"seeds": 1}):
        checks = compare_metrics(shipped, {"nc": {**shipped["nc"], **change}})
        assert [c.path for c in checks if not c.ok] == [f"nc.{next(iter(change))}"]
        assert "DRIFT" in next(c for c in checks if not c.ok).line()
    assert all(c.ok for c in compare_metrics(shipped, shipped))


def test_a_location_card_scored_on_another_protocol_is_drift(tmp_path):
    """A location card's evaluation is described by its "protocol" words (points, draws, seeds, folds, cells);
    a retrained card scored on 500 points, one seed and two folds passed as the shipped one (an audit)."""
    shipped = REPO / "resources" / "models" / "satclip-style-bluemarble-sh20-basis10" / "card.json"
    card = json.loads(shipped.read_text())
    changed = []
    for section in card["metrics"].values():
        if isinstance(section, dict) and "protocol" in section:
            section["protocol"] = "Köppen at 1 run = 1 training seed x 1 draw of 500 points; 2 folds"
            changed.append(section)
    assert changed
    retrained = tmp_path / "card.json"
    retrained.write_text(json.dumps(card))
    drift = [c.path for c in compare_cards(shipped, retrained) if not c.ok]
    assert drift and all(path.endswith(".protocol") for path in drift) and len(drift) == len(changed)


def test_the_shipped_location_card_states_the_protocol_as_make_models_writes_it():
    """Since its protocol words are compared, a perfect retrain by `make models` (10,000 points, 2 draws,
    3 seeds, 5 folds, cells of 5, 10 and 20 degrees) must write the shipped card's words: the card kept an
    older wording and every retrain would have been reported as drift (a review)."""
    import types

    import numpy as np

    from training.evaluate.location_protocol import card_metrics

    card = json.loads((REPO / "resources" / "models" / "satclip-style-bluemarble-sh20-basis10" / "card.json")
                      .read_text())
    draw = types.SimpleNamespace(label=np.zeros(10_000), target=np.zeros(10_000))
    run = types.SimpleNamespace(spatial_cells={5.0: [], 10.0: [], 20.0: []})
    result = types.SimpleNamespace(runs=[run] * 6, seeds=3, draws=2, summary=lambda *_: (float("nan"), 0.0))
    written = card_metrics(result, [], "command", [draw, draw], 5, (5.0, 10.0, 20.0))["protocol"]
    assert card["metrics"]["location_protocol"]["protocol"] == written
