"""Neural networks that turn a positional encoding into a location embedding.

Each takes ``dim_in`` (the encoding's size) and ``dim_out`` (the embedding size) and exposes
``dim_out``. Parameter names follow SatCLIP's ``location_encoder.py`` (``layers.i`` /
``last_layer`` for SIREN, ``feats`` / ``class_emb`` for FCNet, ``features`` for the MLP) so that
published checkpoints load by renaming a prefix only.

- linear: y = W e + b.
- mlp: Linear-ReLU, ``num_layers`` x (Linear-ReLU), Linear (distinct weights per layer).
- fcnet (Mac Aodha et al., ICCV 2019, "Presence-only geographical priors"): Linear-ReLU, then
  ``num_layers`` residual blocks x + ReLU(W2 Dropout(ReLU(W1 x))), then a bias-free Linear.
- siren (Sitzmann et al., NeurIPS 2020, "Implicit neural representations with periodic
  activation functions"): h_1 = sin(w0_initial (W_1 e + b_1)), h_k = sin(w0 (W_k h_{k-1} + b_k)),
  y = W_out h + b_out, with Sitzmann's uniform initialisation (first layer +-1/dim_in,
  others +-sqrt(6/dim_in)/w0). SatCLIP uses it with w0 = 1, w0_initial = 30.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LinearNet(nn.Linear):
    """A single linear layer (SatCLIP's "linear" network)."""

    def __init__(self, dim_in: int, dim_out: int = 256) -> None:
        super().__init__(dim_in, dim_out)
        self.dim_out = dim_out


class MLP(nn.Module):
    """Plain ReLU perceptron with ``num_layers`` hidden layers."""

    def __init__(self, dim_in: int, dim_out: int = 256, dim_hidden: int = 256, num_layers: int = 2) -> None:
        super().__init__()
        self.dim_out = dim_out
        layers: list[nn.Module] = [nn.Linear(dim_in, dim_hidden), nn.ReLU()]
        for _ in range(num_layers):
            layers += [nn.Linear(dim_hidden, dim_hidden), nn.ReLU()]
        layers.append(nn.Linear(dim_hidden, dim_out))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ResidualBlock(nn.Module):
    """x + ReLU(W2 Dropout(ReLU(W1 x))): the block of Mac Aodha et al.'s FCNet."""

    def __init__(self, width: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.w1 = nn.Linear(width, width)
        self.w2 = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.w2(self.dropout(F.relu(self.w1(x)))))


class FCNet(nn.Module):
    """Residual fully connected network (Mac Aodha et al. 2019; SatCLIP's "fcnet")."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int = 256,
        dim_hidden: int = 256,
        num_layers: int = 4,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.dim_out = dim_out
        blocks = [ResidualBlock(dim_hidden, dropout) for _ in range(num_layers)]
        self.feats = nn.Sequential(nn.Linear(dim_in, dim_hidden), nn.ReLU(), *blocks)
        self.class_emb = nn.Linear(dim_hidden, dim_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_emb(self.feats(x))


class SineLayer(nn.Module):
    """sin(w0 (W x + b)) with SIREN's initialisation, or the plain affine map when ``sine=False``."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        w0: float,
        first: bool = False,
        sine: bool = True,
        dropout: float = 0.0,
        c: float = 6.0,
    ) -> None:
        super().__init__()
        bound = 1.0 / dim_in if first else math.sqrt(c / dim_in) / w0
        self.weight = nn.Parameter(torch.empty(dim_out, dim_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(dim_out).uniform_(-bound, bound))
        self.w0 = float(w0)
        self.sine = sine
        self.dropout = float(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        if self.dropout > 0.0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return torch.sin(self.w0 * out) if self.sine else out


class Siren(nn.Module):
    """Sinusoidal representation network: ``num_layers`` sine layers and a linear output layer.

    ``dropout`` applies to the hidden layers in training only (SatCLIP trains with 0.5).
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int = 256,
        dim_hidden: int = 256,
        num_layers: int = 2,
        w0: float = 1.0,
        w0_initial: float = 30.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError("A SIREN needs at least one hidden layer.")
        self.dim_out = dim_out
        self.layers = nn.ModuleList(
            SineLayer(
                dim_in if i == 0 else dim_hidden,
                dim_hidden,
                w0=w0_initial if i == 0 else w0,
                first=i == 0,
                dropout=dropout,
            )
            for i in range(num_layers)
        )
        self.last_layer = SineLayer(dim_hidden, dim_out, w0=w0, sine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return self.last_layer(x)
