"""GeoCLIP's location encoder (Vivanco Cepeda et al., NeurIPS 2023), as encoding + network.

Encoding ``geoclip``: the Equal Earth projection (Savric, Patterson & Jenny 2018) of the point,

    theta = asin(sqrt(3)/2 sin(lat)),
    x = 2 sqrt(3) lon cos(theta) / (3 (9 A4 theta^8 + 7 A3 theta^6 + 3 A2 theta^2 + A1)),
    y = A4 theta^9 + A3 theta^7 + A2 theta^3 + A1 theta,
    A1 = 1.340264, A2 = -0.081106, A3 = 0.000893, A4 = 0.003796   (lon, lat in radians),

scaled as GeoCLIP does by 66.50336 / 180, followed for each sigma_i of ``sigmas`` by random
Fourier features (cos 2 pi B_i p, sin 2 pi B_i p), B_i ~ N(0, sigma_i^2) of shape (F, 2).
Output: the S scales concatenated, S * 2F values (GeoCLIP: sigmas 2^0, 2^4, 2^8, F = 256).

Network ``geoclip_branches``: one ReLU MLP per scale (2F -> hidden -> ... -> dim_out) applied to
that scale's features; the branch outputs are summed (GeoCLIP: 512 -> 1024 x3 -> 512).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
EQUAL_EARTH_SCALE = 66.50336


def equal_earth(lonlat: torch.Tensor) -> torch.Tensor:
    """GeoCLIP's scaled Equal Earth coordinates (x, y) of (lon, lat) degrees, (N, 2)."""
    lam = torch.deg2rad(lonlat[:, 0])
    theta = torch.asin(math.sqrt(3.0) / 2.0 * torch.sin(torch.deg2rad(lonlat[:, 1])))
    t2 = theta * theta
    denom = 3.0 * (9.0 * A4 * t2**4 + 7.0 * A3 * t2**3 + 3.0 * A2 * t2 + A1)
    x = 2.0 * math.sqrt(3.0) * lam * torch.cos(theta) / denom
    y = theta * (A4 * t2**4 + A3 * t2**3 + A2 * t2 + A1)
    return torch.stack([x, y], dim=1) * (EQUAL_EARTH_SCALE / 180.0)


class EqualEarthRFF(nn.Module):
    """Equal Earth projection then multi-scale random Fourier features (saved with the model)."""

    def __init__(self, sigmas: Sequence[float] = (1.0, 16.0, 256.0), num_features: int = 256, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        self.sigmas = [float(s) for s in sigmas]
        self.num_features = int(num_features)
        # Each scale drawn on the CPU and copied in: never arithmetic on the meta device, and no more
        # than one scale's table allocated in build_bounded's size check (srl_core.model_build).
        b = torch.empty(len(self.sigmas), self.num_features, 2)
        for i, s in enumerate(self.sigmas):
            b[i] = torch.randn(self.num_features, 2, generator=gen, device="cpu") * s
        self.register_buffer("b", b)
        self.embedding_dim = len(self.sigmas) * 2 * self.num_features

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        lonlat = lonlat if lonlat.dtype in (torch.float32, torch.float64) else lonlat.float()
        p = equal_earth(lonlat)
        proj = 2.0 * math.pi * torch.einsum("nc,sfc->nsf", p, self.b.to(p.dtype))
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=2).reshape(p.shape[0], -1)


class GeoCLIPBranches(nn.Module):
    """Sum over scales of per-scale ReLU MLPs (GeoCLIP's LocationEncoderCapsule + head)."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int = 512,
        num_branches: int = 3,
        dim_hidden: int = 1024,
        num_layers: int = 3,
    ) -> None:
        super().__init__()
        if dim_in % num_branches:
            raise ValueError(f"Input size {dim_in} does not split into {num_branches} branches")
        self.dim_out = dim_out
        self.branch_in = dim_in // num_branches

        def branch() -> nn.Sequential:
            layers: list[nn.Module] = []
            width = self.branch_in
            for _ in range(num_layers):
                layers += [nn.Linear(width, dim_hidden), nn.ReLU()]
                width = dim_hidden
            layers.append(nn.Linear(width, dim_out))
            return nn.Sequential(*layers)

        self.branches = nn.ModuleList(branch() for _ in range(num_branches))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = x.split(self.branch_in, dim=1)
        out = self.branches[0](chunks[0])
        for branch, chunk in zip(self.branches[1:], chunks[1:]):
            out = out + branch(chunk)
        return out
