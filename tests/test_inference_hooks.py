"""Model families prepare their modules for inference through registered hooks, not engine checks."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from srl_core.models.inference import Prepared, prepare_for_inference, register_inference_hook
from srl_core.models.tile import build_from_config

CPU = torch.device("cpu")


def test_a_tilenet_is_fused_and_channels_last_by_its_hook():
    torch.manual_seed(0)
    net = build_from_config({"in_channels": 3, "variant": "compact", "z_dim": 16}).eval()
    prepared = prepare_for_inference(net, CPU)
    assert prepared.channels_last
    assert not any(isinstance(m, nn.BatchNorm2d) for m in prepared.module.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the loaded one is untouched
    x = torch.randn(4, 3, 17, 17)
    with torch.inference_mode():
        np.testing.assert_allclose(prepared.module(x.contiguous(memory_format=torch.channels_last)).numpy(),
                                   net(x).numpy(), atol=1e-5)


class Echo(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class LoudEcho(Echo):
    pass


def test_another_family_registers_its_own_hook_and_subclasses_inherit_it():
    plain = Echo().train()
    assert prepare_for_inference(plain, CPU) == Prepared(plain, False) and not plain.training
    seen = []

    def hook(module: nn.Module, device: torch.device) -> Prepared:
        seen.append((type(module), device))
        return Prepared(module, True)

    register_inference_hook(Echo, hook)
    try:
        assert prepare_for_inference(LoudEcho(), CPU).channels_last
        assert seen == [(LoudEcho, CPU)]
    finally:
        from srl_core.models import inference

        inference._HOOKS.pop(Echo)
