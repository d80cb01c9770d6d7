"""A small convolutional encoder for the image side of location–image pretraining.

It only has to tell patches apart well enough to teach the location encoder what the ground
looks like, and it must train fast on two CPU cores, so it is two strided 3x3 conv stages
(local texture and layout) beside the patch's per-channel mean and standard deviation (colour),
then a two-layer head. Inputs are
standardised per channel with statistics measured on the training imagery.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchEncoder(nn.Module):
    """(N, C, S, S) patches in [0, 1] -> (N, embedding_size)."""

    def __init__(self, channels: int, patch_size: int, embedding_size: int, width: int = 16) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Flatten(),
        )
        flat = 2 * width * ((patch_size + 3) // 4) ** 2
        self.head = nn.Sequential(
            nn.Linear(flat + 2 * channels, 256),
            nn.GELU(),
            nn.Linear(256, embedding_size),
        )

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-3))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = (patches - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        pooled = torch.cat([self.features(x), x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        return self.head(pooled)
