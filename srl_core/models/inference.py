"""How each model family runs at inference, registered by the family, looked up by the engine.

An engine does not know the model classes: it asks :func:`prepare_for_inference` for the
module ready on a device. A family registers a hook for its class (e.g. the TileNet folds
its BatchNorms and asks for channels-last tensors, see :mod:`srl_core.models.tile`); a
module of a class with no hook runs as it is, in eval mode, on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass(frozen=True)
class Prepared:
    """A module ready for inference on its device, and whether it wants channels-last inputs."""

    module: nn.Module
    channels_last: bool = False


InferenceHook = Callable[[nn.Module, torch.device], Prepared]
_HOOKS: dict[type, InferenceHook] = {}


def register_inference_hook(cls: type, hook: InferenceHook) -> None:
    """Make ``hook(module, device)`` prepare every module of ``cls`` (and its subclasses) for inference."""
    _HOOKS[cls] = hook


def prepare_for_inference(module: nn.Module, device: torch.device) -> Prepared:
    """The module ready for inference on ``device`` by its family's hook (the loaded one is left as is)."""
    for cls in type(module).__mro__:
        hook = _HOOKS.get(cls)
        if hook is not None:
            return hook(module.eval(), device)
    return Prepared(module.eval().to(device))
