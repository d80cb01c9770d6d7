"""Did a retrained model reproduce its shipped figures? Compare two model cards' metrics.

Torch's CPU kernels differ between processors (vector instruction sets, thread counts), so
retraining on another machine gives other weights and slightly other scores: bit-for-bit
reproduction holds on one machine at most. What ``make models`` promises instead is that
every figure the card states comes back **within its spread**: a metric ``m`` is checked
when the shipped card also states its spread under one of the names below, and fails when
``|new - shipped| > spread``. Metrics that state no spread are listed as not checked.

Two kinds of figure are checked without a spread, since they say whether the evaluation itself is the
same: the best training-free row's figures (``best_baseline``, deterministic but for rounding: within
:data:`BASELINE_TOLERANCE`; a change there moves every Δ the card states) and the task's description,
setting and number of seeds (exactly; a location card's ``protocol`` holds its points, draws, seeds, folds
and cells in words). Until 28 Nov 2026 a baseline at 0.2 instead of 0.73, or a task of 100 tiles, passed,
and a location card scored on 500 points, one seed and two folds passed as the shipped one.

Spread names looked for beside ``<stem>_<what>`` (e.g. ``linear_probe_accuracy``):
``<stem>_<what>_sd``, ``<stem>_<what>_std``, ``<stem>_sd``, ``<stem>_std``,
``<stem>_sd_over_folds``, ``<stem>_sd_over_seeds``. Beside a figure named ``mean`` (the
``location_protocol`` layout, ``{"mean": 0.80, "sd": 0.004}``): ``sd``, ``std``,
``sd_over_runs``, ``sd_over_seeds``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from srl_core.errors import InputError

_SPREAD_SUFFIXES = ("_sd", "_std", "_sd_over_folds", "_sd_over_seeds", "_sd_over_runs")
_MEAN_SPREADS = ("sd", "std", "sd_over_runs", "sd_over_seeds")  # beside a "mean"
BASELINE_KEY = "best_baseline"
BASELINE_TOLERANCE = 0.005  # training-free rows: the same data and code give them to rounding
EXACT_KEYS = ("seeds",)  # numbers that say what was evaluated, not how well
TEXT_KEYS = ("task", "setting", "protocol")  # what was evaluated, in words (location cards: "protocol")


@dataclass(frozen=True)
class MetricCheck:
    """One metric of a card, compared with its shipped value."""

    path: str
    shipped: Union[float, str]
    new: Union[float, str, None]
    spread: Optional[float]  # 0 for a task's words and numbers: they must be equal

    @property
    def checked(self) -> bool:
        return self.spread is not None

    @property
    def ok(self) -> bool:
        if not self.checked:
            return True
        if isinstance(self.shipped, str):
            return self.new == self.shipped
        return isinstance(self.new, float) and abs(self.new - self.shipped) <= self.spread

    def line(self) -> str:
        verdict = "ok   " if self.ok else "DRIFT"
        if isinstance(self.shipped, str):  # a task's words: the same, or another evaluation
            return f"  {verdict} {self.path}: shipped {self.shipped!r}, new {self.new!r}"
        new = f"{self.new:.4f}" if isinstance(self.new, float) else "missing"
        if not self.checked:
            return f"  not checked (no spread stated)  {self.path}: shipped {self.shipped:.4f}, new {new}"
        return f"  {verdict} {self.path}: shipped {self.shipped:.4f} ± {self.spread:.4f}, new {new}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_spread_name(key: str) -> bool:
    return key in _MEAN_SPREADS or key.endswith(_SPREAD_SUFFIXES)


def _spread_for(key: str, siblings: dict[str, Any]) -> Optional[float]:
    if key == "mean":
        names = list(_MEAN_SPREADS)
    else:
        stem = key.rsplit("_", 1)[0] if "_" in key else key
        names = [key + s for s in ("_sd", "_std")] + [stem + s for s in _SPREAD_SUFFIXES]
    for name in names:
        if name != key and _is_number(siblings.get(name)):
            return float(siblings[name])
    return None


def _lookup(tree: Any, path: tuple[str, ...]) -> Union[float, str, None]:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return float(tree) if _is_number(tree) else tree if isinstance(tree, str) else None


def _unspread(key: str, path: tuple[str, ...]) -> Optional[float]:
    """The allowance of a figure that states no spread: 0 for what says which evaluation it is, the
    rounding of training-free rows for the best baseline; None (not checked) otherwise."""
    if key in EXACT_KEYS:
        return 0.0
    return BASELINE_TOLERANCE if BASELINE_KEY in path else None


def _walk(shipped: dict[str, Any], new: dict[str, Any], prefix: tuple[str, ...]) -> Iterator[MetricCheck]:
    for key, value in shipped.items():
        path = prefix + (key,)
        if isinstance(value, dict):
            yield from _walk(value, new, path)
        elif isinstance(value, str) and key in TEXT_KEYS:
            yield MetricCheck(path=".".join(path), shipped=value, new=_lookup(new, path), spread=0.0)
        elif _is_number(value) and not _is_spread_name(key):
            spread = _spread_for(key, shipped)
            yield MetricCheck(
                path=".".join(path),
                shipped=float(value),
                new=_lookup(new, path),
                spread=_unspread(key, path) if spread is None else spread,
            )


def compare_metrics(shipped: dict[str, Any], new: dict[str, Any]) -> list[MetricCheck]:
    """Every numeric metric of ``shipped`` against the same path in ``new``."""
    return list(_walk(shipped, new, ()))


def _card_metrics(path: Path) -> dict[str, Any]:
    """The card's metrics; a card without any (a training-free model) has nothing to compare."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot read the model card {path}: {exc}") from exc
    if not isinstance(card, dict) or "id" not in card:  # any JSON passed: "All 0 checked metrics within ..."
        raise InputError(f"{path} is not an SRL model card (a JSON object with the model's id).")
    metrics = card.get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def compare_cards(shipped_card: Path, new_card: Path) -> list[MetricCheck]:
    """Compare the metrics of two card.json files (shipped first)."""
    return compare_metrics(_card_metrics(Path(shipped_card)), _card_metrics(Path(new_card)))
