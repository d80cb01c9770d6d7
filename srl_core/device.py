"""Choosing the torch device: the local GPU when there is one, the CPU otherwise."""

from __future__ import annotations

import torch

from .errors import InputError
from .names import DEVICE_CHOICES


def available_devices() -> list[str]:
    """Names of the devices torch can use on this machine, best first."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    found.append("cpu")
    return found


def resolve_device(name: str = "auto") -> torch.device:
    """Turn 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps' into a usable torch.device.

    Asking for a device that is not there is an error rather than a silent CPU
    fallback, so that an analyst who chose the GPU knows it is not being used.
    """
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device(available_devices()[0])
    kind = name.split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise InputError(f"Unknown device '{name}'. Choose one of: {', '.join(DEVICE_CHOICES)}.")
    if kind != "cpu" and kind not in available_devices():
        raise InputError(
            f"Device '{name}' was asked for but is not available here; "
            f"available: {', '.join(available_devices())}."
        )
    return torch.device(name)
