"""Small checks on values that come from users, cards and checkpoints, before they are used.

A number read from a card or a checkpoint may be a string, a bool, a float, NaN or 1e9;
used as it is, it surfaces later as a raw ``TypeError`` or a 400 GB allocation. These helpers
turn such values into the project's own errors, naming where the value came from, at the edge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from .errors import InputError, ModelError, SRLError


def int_in_range(value: Any, name: str, low: int, high: int, error: type[SRLError] = InputError) -> int:
    """``value`` as an int within ``low..high``; anything else (bool, 2.5, "x", NaN) is an ``error``."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok and isinstance(value, (float, np.floating)) and math.isfinite(value):
        ok = float(value).is_integer()  # 10.0 from a JSON writer is 10
    if not ok or not low <= int(value) <= high:
        raise error(f"{name} must be a whole number from {low} to {high}, not {value!r}.")
    return int(value)


MAX_SEED = 2**32 - 1  # numpy's and scikit-learn's seeds are 32-bit


def check_seed(value: Any, name: str = "The seed") -> int:
    """A random seed from 0 to :data:`MAX_SEED`: a negative or larger one failed deep in numpy, torch or
    scikit-learn ("a bug in SRL"), after the work before it."""
    return int_in_range(value, name, 0, MAX_SEED)


def finite_float(
    value: Any,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    error: type[SRLError] = InputError,
    *,
    positive: bool = False,
) -> float:
    """``value`` as a finite float within ``low..high`` (and > 0 with ``positive``), else an ``error``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise error(f"{name} must be a number, not {value!r}.")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high or (positive and number <= 0):
        bounds = "a positive number" if positive else "a finite number"
        if math.isfinite(low) or math.isfinite(high):
            bounds += f" from {low:g} to {high:g}"
        raise error(f"{name} must be {bounds}, not {value!r}.")
    return number


def float_list(value: Any, name: str, length: int, error: type[SRLError] = ModelError) -> list[float]:
    """A list of ``length`` finite numbers (e.g. per-band means from a card), else an ``error``."""
    if not isinstance(value, (list, tuple)) or len(value) != length:
        raise error(f"{name} must be a list of {length} numbers, not {value!r}.")
    return [finite_float(v, f"{name}[{i}]", error=error) for i, v in enumerate(value)]


def mapping(value: Any, name: str, error: type[SRLError] = ModelError) -> Mapping:
    """``value`` if it is a dict-like mapping, else an ``error`` saying what was found."""
    if not isinstance(value, Mapping):
        raise error(f"{name} must be a mapping (JSON object), not a {type(value).__name__}.")
    return value


def check_finite_state(state: Mapping[str, Any], what: str) -> None:
    """Refuse weights holding NaN or infinity: such a model writes all-null embeddings silently."""
    import torch  # only where weights are checked: reading cards stays light

    for key, tensor in state.items():
        floating = isinstance(tensor, torch.Tensor) and tensor.is_floating_point()
        if floating and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise ModelError(
                f"{what}: weight '{key}' holds {bad} NaN or infinite value(s); the model would give "
                "meaningless embeddings. Use an intact checkpoint, or retrain (lower the learning rate)."
            )


def check_finite_output(values: np.ndarray, what: str, rows: Optional[np.ndarray] = None) -> None:
    """Refuse non-finite embeddings from a model: written as they are they read as nodata, silently."""
    finite = np.isfinite(values).all(axis=1) if values.ndim == 2 else np.isfinite(values)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        where = int(rows[first]) if rows is not None else first
        raise ModelError(
            f"{what} gave NaN or infinite embeddings (first at row {where}) for finite inputs; the "
            "model is broken or the input values are far outside what it was trained on."
        )
