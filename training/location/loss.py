"""The CLIP objective: symmetric cross-entropy over cosine similarities, learnable temperature.

Row i of the location batch and row i of the image batch are a positive pair; every other row
is a negative. The temperature is learnt as log(1/T) (CLIP's parameterisation), clamped so the
logit scale never exceeds ``max_scale``: 100 in CLIP; a lower cap stops the temperature from
collapsing, so that near-identical patches (two stretches of one desert) are not pushed apart.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = 100.0


class ClipLoss(nn.Module):
    """``loss(a, b)`` for two (N, D) embedding batches whose rows are paired."""

    def __init__(self, temperature: float = 0.07, max_scale: float = MAX_LOGIT_SCALE) -> None:
        super().__init__()
        self.max_log_scale = math.log(max_scale)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature), dtype=torch.float32))

    @property
    def temperature(self) -> float:
        return float(1.0 / self.scale().detach())

    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        a = F.normalize(a.float(), dim=-1)
        b = F.normalize(b.float(), dim=-1)
        logits = self.scale() * a @ b.t()
        target = torch.arange(a.shape[0], device=a.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
