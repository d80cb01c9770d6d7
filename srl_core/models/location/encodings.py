"""Single-scale and learned-anchor positional encodings of (lon, lat) degrees.

Every encoding maps an (N, 2) tensor of (lon, lat) in degrees to (N, embedding_dim) in the
input's dtype. Below, lambda = radians(lon), phi = radians(lat).

- direct: (lon / 180, lat / 90), the raw coordinates scaled to [-1, 1] (the "no encoding"
  baseline of Mac Aodha et al. 2019 and SatCLIP's ``direct``, which shifts instead of scales).
- wrap: (cos lambda, sin lambda, cos phi, sin phi); Mac Aodha et al., ICCV 2019, wraps the
  longitude so that +-180 meet.
- xyz: the unit vector (cos phi cos lambda, cos phi sin lambda, sin phi) (SatCLIP ``cartesian3d``,
  TorchSpatial ``xyz``); continuous everywhere on the sphere.
- tile: one-hot of the grid cell containing the point, cells of equal degrees over ``extent``
  (TorchSpatial ``tile``; Tang et al., ICCV 2015). Points outside the extent fall in the edge cell.
- rbf: Gaussian kernels exp(-d^2 / (2 sigma^2)) on ``num_anchors`` anchor points (TorchSpatial
  ``rbf``; Mai et al. 2020). d is the chord distance between unit vectors, sigma the chord of
  ``kernel_size`` degrees; anchors are drawn uniformly on the sphere within ``extent`` (seeded) and
  saved with the model.
- rff: random Fourier features (Rahimi & Recht 2007; Tancik et al., NeurIPS 2020) of the unit
  vector v: (cos 2 pi B v, sin 2 pi B v), B ~ N(0, sigma^2) of shape (num_features, 3), seeded and
  saved with the model.
- nerf: NeRF's positional encoding (Mildenhall et al., ECCV 2020) of the unit vector:
  (sin 2^k pi v, cos 2^k pi v) for k = 0..frequency_num-1, per component of v (TorchSpatial ``NeRF``).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

GLOBAL_EXTENT = (-180.0, -90.0, 180.0, 90.0)


def lonlat_radians(lonlat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lambda, phi) in radians from (N, 2) degrees."""
    rad = torch.deg2rad(lonlat)
    return rad[:, 0], rad[:, 1]


def unit_vectors(lonlat: torch.Tensor) -> torch.Tensor:
    """(N, 3) points on the unit sphere for (lon, lat) degrees."""
    lam, phi = lonlat_radians(lonlat)
    cos_phi = torch.cos(phi)
    return torch.stack([cos_phi * torch.cos(lam), cos_phi * torch.sin(lam), torch.sin(phi)], dim=1)


def _float_dtype(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


class Direct(nn.Module):
    """(lon / 180, lat / 90)."""

    embedding_dim = 2

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        lonlat = _float_dtype(lonlat)
        return lonlat / lonlat.new_tensor([180.0, 90.0])


class Wrap(nn.Module):
    """(cos lambda, sin lambda, cos phi, sin phi)."""

    embedding_dim = 4

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        lam, phi = lonlat_radians(_float_dtype(lonlat))
        return torch.stack([torch.cos(lam), torch.sin(lam), torch.cos(phi), torch.sin(phi)], dim=1)


class XYZ(nn.Module):
    """The point as a 3D unit vector."""

    embedding_dim = 3

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        return unit_vectors(_float_dtype(lonlat))


class Tile(nn.Module):
    """One-hot grid cell over ``extent`` = (lon_min, lat_min, lon_max, lat_max) with ``cells`` = (nx, ny)."""

    def __init__(self, cells: Sequence[int] = (36, 18), extent: Sequence[float] = GLOBAL_EXTENT) -> None:
        super().__init__()
        self.cells = (int(cells[0]), int(cells[1]))
        self.extent = tuple(float(v) for v in extent)
        if min(self.cells) < 1 or self.extent[2] <= self.extent[0] or self.extent[3] <= self.extent[1]:
            raise ValueError(f"Invalid tile grid: cells {self.cells}, extent {self.extent}")
        self.embedding_dim = self.cells[0] * self.cells[1]

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        lonlat = _float_dtype(lonlat)
        x0, y0, x1, y1 = self.extent
        nx, ny = self.cells
        col = ((lonlat[:, 0] - x0) / (x1 - x0) * nx).floor().clamp(0, nx - 1).long()
        row = ((lonlat[:, 1] - y0) / (y1 - y0) * ny).floor().clamp(0, ny - 1).long()
        out = lonlat.new_zeros((lonlat.shape[0], self.embedding_dim))
        out.scatter_(1, (row * nx + col).unsqueeze(1), 1.0)
        return out


def _sample_on_sphere(count: int, extent: Sequence[float], seed: int) -> torch.Tensor:
    """``count`` (lon, lat) points uniform in area within ``extent`` (reproducible with ``seed``), on the
    CPU (see :mod:`srl_core.model_build`: never arithmetic on the meta device)."""
    gen = torch.Generator().manual_seed(int(seed))
    x0, y0, x1, y1 = (float(v) for v in extent)
    u = torch.rand(count, 2, generator=gen, dtype=torch.float64, device="cpu")
    lon = x0 + (x1 - x0) * u[:, 0]
    z0, z1 = math.sin(math.radians(y0)), math.sin(math.radians(y1))
    lat = torch.rad2deg(torch.asin(z0 + (z1 - z0) * u[:, 1]))
    return torch.stack([lon, lat], dim=1)


class RBF(nn.Module):
    """Gaussian radial basis functions on anchor points (chord distance on the unit sphere)."""

    def __init__(
        self,
        num_anchors: int = 256,
        kernel_size: float = 10.0,
        extent: Sequence[float] = GLOBAL_EXTENT,
        seed: int = 0,
        anchors: Optional[Sequence[Sequence[float]]] = None,
    ) -> None:
        super().__init__()
        if kernel_size <= 0:
            raise ValueError("kernel_size (degrees) must be positive")
        lonlat = (
            torch.as_tensor(anchors, dtype=torch.float64, device="cpu")
            if anchors is not None
            else _sample_on_sphere(int(num_anchors), extent, seed)
        )
        self.kernel_size = float(kernel_size)
        self.embedding_dim = int(lonlat.shape[0])
        self.register_buffer("anchors", unit_vectors(lonlat).float())
        chord = 2.0 * math.sin(math.radians(self.kernel_size) / 2.0)
        self._inv_two_var = 1.0 / (2.0 * chord * chord)

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        v = unit_vectors(_float_dtype(lonlat))
        anchors = self.anchors.to(v.dtype)
        # |v - a|^2 = 2 - 2 v.a for unit vectors.
        d2 = (2.0 - 2.0 * v @ anchors.t()).clamp_min(0.0)
        return torch.exp(-d2 * self._inv_two_var)


class RFF(nn.Module):
    """Random Fourier features of the unit vector."""

    def __init__(self, num_features: int = 256, sigma: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(int(seed))
        # on the CPU: never arithmetic on the meta device (srl_core.model_build)
        b = torch.randn(int(num_features), 3, generator=gen, device="cpu") * float(sigma)
        self.register_buffer("b", b)
        self.sigma = float(sigma)
        self.embedding_dim = 2 * int(num_features)

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        v = unit_vectors(_float_dtype(lonlat))
        proj = 2.0 * math.pi * v @ self.b.to(v.dtype).t()
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=1)


class NeRF(nn.Module):
    """NeRF positional encoding of the unit vector with ``frequency_num`` octaves."""

    def __init__(self, frequency_num: int = 10) -> None:
        super().__init__()
        self.frequency_num = int(frequency_num)
        self.embedding_dim = 6 * self.frequency_num

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        v = unit_vectors(_float_dtype(lonlat))
        octaves = math.pi * 2.0 ** torch.arange(self.frequency_num, dtype=v.dtype, device=v.device)
        angles = (v.unsqueeze(2) * octaves).reshape(v.shape[0], -1)
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
