"""Multi-scale location encoders: several encodings side by side, one network branch each, summed.

GeoCLIP (Vivanco Cepeda et al., NeurIPS 2023) sums per-scale branches over a hierarchy of random
Fourier feature scales; SatCLIP (Klemmer et al. 2023) shows spherical harmonics give a smooth,
pole-safe coarse basis. ``stack`` + ``scale_sum`` combine both: e.g. spherical harmonics (L = 10,
~2000 km) through a SIREN for the continental picture, plus random Fourier features of the unit
vector at finer sigmas through small branches for regional detail, the branch outputs summed.

- encoding ``stack``: ``parts`` is a list of at most 16 encoding configs; the output is their features
  concatenated, and ``part_dims`` records each part's width.
- network ``scale_sum``: ``branches`` is a list of network configs (no ``dim_in``/``dim_out``), one
  per part; every branch maps its part to ``dim_out`` and the outputs are summed.
  ``scale_dropout`` drops each branch after the first for a whole sample with that probability
  in training (stochastic depth: kept branches are scaled by 1 / (1 - p)), so the coarse branch
  must describe a place on its own and the fine ones only add detail.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

MAX_PARTS = 16  # a hierarchy of scales; GeoCLIP uses 3
DEFAULT_PARTS = (
    {"name": "sphericalharmonics", "legendre_polys": 10},
    {"name": "rff", "num_features": 64, "sigma": 5.0, "seed": 0},
)


class Stack(nn.Module):
    """Encodings of the same point concatenated (``part_dims`` wide each)."""

    def __init__(self, parts: Optional[Sequence[Mapping[str, Any]]] = None) -> None:
        super().__init__()
        from .encoder import build_encoding

        if parts is None:  # continental harmonics plus regional (~450 km) Fourier features
            parts = DEFAULT_PARTS
        if not parts:
            raise ValueError("A 'stack' encoding needs at least one part")
        if len(parts) > MAX_PARTS:  # each part's fixed tables are real even in the size check (model_build)
            raise ValueError(f"A 'stack' encoding has at most {MAX_PARTS} parts, not {len(parts)}")
        self.parts = nn.ModuleList(build_encoding(dict(p)) for p in parts)
        self.part_dims = [int(p.embedding_dim) for p in self.parts]
        self.embedding_dim = sum(self.part_dims)

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        return torch.cat([part(lonlat) for part in self.parts], dim=1)


class ScaleSum(nn.Module):
    """One network per part of a ``stack`` encoding; their outputs summed."""

    def __init__(
        self,
        dim_in: int,
        part_dims: Sequence[int],
        branches: Sequence[Mapping[str, Any]],
        dim_out: int = 256,
        scale_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        from .encoder import NETWORKS

        if len(branches) != len(part_dims):
            raise ValueError(f"scale_sum has {len(branches)} branches for {len(part_dims)} encoding parts")
        if sum(part_dims) != dim_in:
            raise ValueError(f"Encoding parts {list(part_dims)} do not add up to the input size {dim_in}")
        if not 0.0 <= scale_dropout < 1.0:
            raise ValueError(f"scale_dropout must be in [0, 1), got {scale_dropout}")
        self.dim_out = int(dim_out)
        self.part_dims = [int(d) for d in part_dims]
        self.scale_dropout = float(scale_dropout)
        nets = []
        for dim, cfg in zip(self.part_dims, branches):
            params = dict(cfg)
            name = str(params.pop("name"))
            if name not in NETWORKS or name == "scale_sum":
                raise ValueError(f"Unknown branch network '{name}'")
            nets.append(NETWORKS[name](dim_in=dim, dim_out=self.dim_out, **params))
        self.branches = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = x.split(self.part_dims, dim=1)
        out = self.branches[0](chunks[0])
        keep = 1.0 - self.scale_dropout
        for branch, chunk in zip(self.branches[1:], chunks[1:]):
            y = branch(chunk)
            if self.training and self.scale_dropout > 0.0:
                mask = torch.rand(y.shape[0], 1, device=y.device, dtype=y.dtype) < keep
                y = y * mask / keep
            out = out + y
        return out
