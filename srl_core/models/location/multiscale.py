"""Multi-scale sinusoidal encodings: Space2Vec (grid, theory) and Sphere2Vec (sphereC(+), sphereM(+), dfs).

Scales. ``frequency_num`` = S wavelengths r_s, geometric between ``min_radius`` and ``max_radius``
(degrees): r_s = min_radius * (max_radius / min_radius)^(s / (S - 1)). Each becomes the angular
frequency w_s = 2 pi / r_s applied to coordinates in degrees, so a term with r_s = 360 is the plain
trigonometric function of the coordinate in radians, and a term with r_s = 1 repeats every degree.
For a local study area choose min_radius near the point spacing and max_radius near the extent;
globally 1..360 is a good start. (Space2Vec and Sphere2Vec write the same frequencies as
1 / (r_min g^(s/(S-1))); only the unit of r differs.)

With lambda_s = w_s lon, phi_s = w_s lat (radians at scale s), lambda, phi the plain radians, the
features of one scale s are (S scales are concatenated, scale-major):

- grid (Space2Vec, Mai et al., ICLR 2020, eq. 3): sin/cos of lambda_s and phi_s -> 4 S.
- theory (Space2Vec, eq. 4): the point (lon, lat) projected on three unit vectors 120 degrees
  apart, a_k . x, then sin/cos of w_s a_k . x -> 6 S.
- spherec (Sphere2Vec, Mai et al., ISPRS J. 2023, eq. 7): sin phi_s, cos phi_s cos lambda_s,
  cos phi_s sin lambda_s -> 3 S.
- spherecplus (eq. 8): sphereC plus grid's sin/cos of phi_s and lambda_s -> 6 S.
- spherem (eq. 9): sin phi_s, cos phi_s cos lambda, cos phi cos lambda_s, cos phi_s sin lambda,
  cos phi sin lambda_s -> 5 S.
- spheremplus (eq. 10): sphereM plus sin/cos of phi_s and lambda_s -> 8 S.
- dfs (double Fourier sphere, Orszag 1974, as in Sphere2Vec eq. 11): sin/cos of phi_n and of
  lambda_m for all n, m, and the products cos phi_n cos lambda_m, cos phi_n sin lambda_m,
  sin phi_n cos lambda_m, sin phi_n sin lambda_m for all pairs (n, m) -> 4 S + 4 S^2.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...names import MULTISCALE_NAMES

_DIMS = {"grid": 4, "theory": 6, "spherec": 3, "spherecplus": 6, "spherem": 5, "spheremplus": 8}


def wavelengths(min_radius: float, max_radius: float, frequency_num: int) -> torch.Tensor:
    """The S geometric wavelengths (degrees) from min_radius to max_radius, float64, on the CPU (see
    :mod:`srl_core.model_build`: never arithmetic on the meta device)."""
    if not 0 < min_radius <= max_radius:
        raise ValueError(f"Need 0 < min_radius <= max_radius, got {min_radius}, {max_radius}")
    if frequency_num < 1:
        raise ValueError("frequency_num must be at least 1")
    if frequency_num == 1:
        return torch.tensor([float(max_radius)], dtype=torch.float64, device="cpu")
    steps = torch.arange(frequency_num, dtype=torch.float64, device="cpu") / (frequency_num - 1)
    return float(min_radius) * (float(max_radius) / float(min_radius)) ** steps


class MultiScale(nn.Module):
    """One of the Space2Vec / Sphere2Vec encodings, chosen by ``name``."""

    def __init__(
        self,
        name: str = "spherec",
        frequency_num: int = 16,
        min_radius: float = 1.0,
        max_radius: float = 360.0,
    ) -> None:
        super().__init__()
        if name not in MULTISCALE_NAMES:
            raise ValueError(f"Unknown multi-scale encoding '{name}' (known: {', '.join(MULTISCALE_NAMES)})")
        self.name = name
        self.frequency_num = int(frequency_num)
        self.min_radius, self.max_radius = float(min_radius), float(max_radius)
        omega = 2.0 * math.pi / wavelengths(self.min_radius, self.max_radius, self.frequency_num)
        self.register_buffer("omega", omega.float(), persistent=False)
        s = self.frequency_num
        self.embedding_dim = 4 * s + 4 * s * s if name == "dfs" else _DIMS[name] * s
        unit = torch.tensor([[1.0, 0.0], [-0.5, math.sqrt(3) / 2], [-0.5, -math.sqrt(3) / 2]])
        self.register_buffer("_unit", unit, persistent=False)

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        lonlat = lonlat if lonlat.dtype in (torch.float32, torch.float64) else lonlat.float()
        omega = self.omega.to(lonlat.dtype)
        n = lonlat.shape[0]
        if self.name == "theory":
            proj = (lonlat @ self._unit.to(lonlat.dtype).t()).unsqueeze(1) * omega.view(1, -1, 1)
            return torch.stack([torch.sin(proj), torch.cos(proj)], dim=3).reshape(n, -1)
        lam_s = lonlat[:, 0:1] * omega  # (N, S)
        phi_s = lonlat[:, 1:2] * omega
        sl, cl, sp, cp = torch.sin(lam_s), torch.cos(lam_s), torch.sin(phi_s), torch.cos(phi_s)
        if self.name == "dfs":
            pairs = torch.stack(
                [
                    cp.unsqueeze(2) * cl.unsqueeze(1),
                    cp.unsqueeze(2) * sl.unsqueeze(1),
                    sp.unsqueeze(2) * cl.unsqueeze(1),
                    sp.unsqueeze(2) * sl.unsqueeze(1),
                ],
                dim=3,
            ).reshape(n, -1)
            return torch.cat([torch.stack([sp, cp, sl, cl], dim=2).reshape(n, -1), pairs], dim=1)
        rad = torch.deg2rad(lonlat)
        lam, phi = rad[:, 0:1], rad[:, 1:2]
        if self.name == "grid":
            parts = [sl, cl, sp, cp]
        elif self.name == "spherec":
            parts = [sp, cp * cl, cp * sl]
        elif self.name == "spherecplus":
            parts = [sp, cp, sl, cl, cp * cl, cp * sl]
        else:
            m_terms = [
                cp * torch.cos(lam),
                torch.cos(phi) * cl,
                cp * torch.sin(lam),
                torch.cos(phi) * sl,
            ]
            parts = [sp, *m_terms] if self.name == "spherem" else [sp, cp, sl, cl, *m_terms]
        return torch.stack(parts, dim=2).reshape(n, -1)

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, frequency_num={self.frequency_num}, "
            f"min_radius={self.min_radius}, max_radius={self.max_radius}"
        )
