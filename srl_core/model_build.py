"""Build a torch module from a config that came from a card or a checkpoint, safely.

Sizes in a config are data, not code we control: ``capacity: 1e9`` or ``legendre_polys: 1e5``
would make torch try to allocate hundreds of gigabytes (and take the machine down) before
any error. The module is therefore built first on torch's ``meta`` device, which allocates
nothing, its parameters are counted, and only a model of a sane size is built for real. Any
error a builder raises on a bad config becomes a :class:`~srl_core.errors.ModelError`.

Builders compute fixed tables (spherical-harmonics coefficients, random Fourier matrices, anchor
points) on the CPU, ``device="cpu"`` given explicitly, never with arithmetic on the meta device:
the first such operation makes torch import ``torch._dynamo``, 1.4-1.8 s once per process, which
was most of a location command's model loading (``tests/test_model_build.py``). A table's size is
bounded by the config numbers (at most :data:`MAX_CONFIG_INT` each) that shape it, and their number
by the encodings a config holds (a ``stack`` has at most 16 parts).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import torch

from .errors import ModelError

# 500 M float32 values = 2 GB: 20x the largest published location or tile encoder we import.
MAX_PARAMETERS = 500_000_000
# No width, depth or count in a config comes near this; a larger one (a layer count of 1e9)
# would loop for hours even on the meta device. Seeds are exempt.
MAX_CONFIG_INT = 1_000_000

# What builders raise on a config they cannot use (names, types, sizes, shapes).
_CONFIG_ERRORS = (KeyError, TypeError, ValueError, IndexError, OverflowError, AttributeError, RuntimeError)


def _oversized(value: Any, path: str = "config") -> Optional[str]:
    """The path of the first number above MAX_CONFIG_INT in a config, or None.

    Floats count too: builders take ``int(value)``, so a card's ``50000000.0`` (JSON has one number type)
    is a layer count of fifty million, and ``inf`` a failure only after the same loop.
    """
    if isinstance(value, Mapping):
        items = [(f"{path}.{k}", v) for k, v in value.items() if "seed" not in str(k)]
    elif isinstance(value, (list, tuple)):
        items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    else:
        big = isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > MAX_CONFIG_INT
        return path if big else None
    return next((found for key, item in items if (found := _oversized(item, key))), None)


def _count(module: torch.nn.Module) -> int:
    return sum(t.numel() for t in module.parameters()) + sum(t.numel() for t in module.buffers())


def build_bounded(
    build: Callable[[Mapping[str, Any]], torch.nn.Module], config: Mapping[str, Any], what: str
) -> torch.nn.Module:
    """``build(config)``, refused with a ModelError naming ``what`` when the config is invalid or
    describes a model of more than :data:`MAX_PARAMETERS` values (checked before any allocation)."""
    if not isinstance(config, Mapping):
        raise ModelError(f"{what}: the architecture config must be a JSON object, not {config!r:.40}.")
    too_big = _oversized(config)
    if too_big:
        raise ModelError(f"{what}: {too_big} exceeds {MAX_CONFIG_INT:,}; the card or checkpoint is corrupt.")
    try:
        with torch.device("meta"):
            size = _count(build(dict(config)))
    except _CONFIG_ERRORS as exc:
        raise ModelError(f"{what}: invalid architecture config ({exc}).") from exc
    if size > MAX_PARAMETERS:
        raise ModelError(
            f"{what}: its config describes {size:,} weights ({size * 4 / 1e9:,.1f} GB), more than the "
            f"{MAX_PARAMETERS:,} allowed; the card or checkpoint is corrupt or not a model SRL can use."
        )
    try:
        return build(dict(config))
    except MemoryError as exc:
        raise ModelError(f"{what}: not enough memory to build a model of {size:,} weights.") from exc
    except _CONFIG_ERRORS as exc:
        raise ModelError(f"{what}: invalid architecture config ({exc}).") from exc
