"""Tile encoders that need no training: multi-scale band statistics and MOSAIKS random features.

They are the baselines every learned encoder must beat (on North Carolina land cover they
match or beat the learned ones, see README), and the default when no learned model fits a
raster's bands: both work for any number of bands. Like the learned encoders they map
normalised tiles ``(N, C, T, T)`` to embeddings ``(N, D)``, so the tile engine runs them
as any other model.

- :class:`BandStatistics` (architecture ``bandstats``): the mean and standard deviation of
  each band over the whole tile and over centred crops (``scales``, fractions of the tile
  side), so the embedding says what the tile is made of and how that differs at its centre.
  ``D = 2 x len(scales) x C``.
- :class:`RandomConvFeatures` (architecture ``mosaiks``): Rolf et al. (2021), "A generalizable
  and accessible approach to machine learning with global satellite imagery", Nature
  Communications 12, 4392. ``filters`` convolution filters are ``patch`` x ``patch`` patches
  of the user's own raster (ZCA-whitened, scaled to unit response), applied as
  ``ReLU(w*x - bias)`` and ``ReLU(-w*x - bias)`` and averaged over the tile: ``D = 2 x filters``.

Both leave out the pixels the engine marks invalid (it gives them NaN for these models, 0 for networks):
a tile's statistics and features describe its valid ground, however much of it is no data.

A bundle of either kind stores no weights (its ``weights.safetensors`` holds no tensor):
the card's ``config`` is band-count free (``in_channels`` absent). The modules built from
the card alone are *unbound*; :mod:`srl_core.training_free` binds them to a raster (its band
count, statistics and, for MOSAIKS, its patches) before embedding.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence

import torch
from torch import nn

DEFAULT_SCALES = (1.0, 0.5, 0.25)


def crop_sizes(tile_size: int, scales: Sequence[float]) -> list[int]:
    """Side in pixels of the centred crop of each scale (at least 1 px)."""
    return [max(1, int(round(tile_size * float(s)))) for s in scales]


def centred_crops(x: torch.Tensor, scales: Sequence[float]) -> Iterator[torch.Tensor]:
    """The centred crops of tiles ``x`` (..., H, W) at each scale (fractions of the side), as views."""
    size = x.shape[-1]
    for side in crop_sizes(size, scales):
        start = (size - side) // 2
        yield x[..., start:start + side, start:start + side]


def valid_scales(scales: Sequence[float]) -> bool:
    """Whether ``scales`` are centred-crop sizes BandStatistics takes: at least one, each in (0, 1]."""
    return bool(scales) and all(0.0 < float(s) <= 1.0 for s in scales)


class BandStatistics(nn.Module):
    """Per-band mean and std over the tile and its centred crops -> (N, 2 x len(scales) x C)."""

    def __init__(self, in_channels: int = 0, scales: Sequence[float] = DEFAULT_SCALES) -> None:
        super().__init__()
        if not valid_scales(scales):
            raise ValueError("scales must be fractions of the tile side in (0, 1]")
        self.in_channels = int(in_channels)
        self.scales = tuple(float(s) for s in scales)

    @property
    def embedding_size(self) -> int:
        return 2 * len(self.scales) * self.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """NaN pixels (the engine's invalid ones) are left out; a crop without a valid pixel gives 0, 0
        (the band mean, no spread)."""
        masked = bool(torch.isnan(x).any())
        parts = []
        for crop in centred_crops(x, self.scales):
            if not masked:
                parts += [crop.mean(dim=(2, 3)), crop.std(dim=(2, 3), unbiased=False)]
                continue
            keep = ~torch.isnan(crop)
            mean = _kept_mean(torch.where(keep, crop, 0.0), keep)
            spread = torch.where(keep, crop - mean[..., None, None], 0.0)
            parts += [mean, _kept_mean(spread.square(), keep).sqrt()]
        return torch.cat(parts, dim=1)


MAX_FILTERS = 8192  # 16,384 values per tile, 64 times the bundled model's
MAX_PATCH = 15


class RandomConvFeatures(nn.Module):
    """MOSAIKS: fixed filters, ReLU of the response above ``bias`` and of its negative, mean pooled.

    ``weight`` (filters, C, patch, patch) is a buffer: bound from a raster, never trained.
    """

    def __init__(self, in_channels: int = 0, filters: int = 128, patch: int = 3, bias: float = 1.0) -> None:
        super().__init__()
        # a card's 500,000 filters ran for minutes to ask for 13 TiB; a 40 px patch failed in the convolution
        if not 1 <= filters <= MAX_FILTERS or not 1 <= patch <= MAX_PATCH:
            raise ValueError(f"filters must be 1 to {MAX_FILTERS:,} and patch 1 to {MAX_PATCH} px, "
                             f"not {filters} and {patch}")
        self.in_channels = int(in_channels)
        self.bias = float(bias)
        shape = (int(filters), max(1, self.in_channels), int(patch), int(patch))
        self.register_buffer("weight", torch.zeros(shape))

    @property
    def embedding_size(self) -> int:
        return 2 * int(self.weight.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Averaged over the positions whose patch holds no NaN pixel (the engine's invalid ones), so a
        tile's features describe its valid ground whatever share of it is no data."""
        invalid = torch.isnan(x)
        whole = None  # every position counts
        if invalid.any():
            window = torch.ones((1, 1, *self.weight.shape[2:]), dtype=x.dtype, device=x.device)
            touched = nn.functional.conv2d(invalid.any(dim=1, keepdim=True).to(x.dtype), window)
            whole = touched < 0.5  # patches with no invalid pixel
            x = torch.where(invalid, 0.0, x)
        response = nn.functional.conv2d(x, self.weight)
        return torch.cat([_kept_mean(torch.relu(r - self.bias), whole) for r in (response, -response)], dim=1)


def _kept_mean(values: torch.Tensor, keep: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of ``values`` (N, C, H, W) over H and W; with the boolean ``keep`` (broadcastable to it), over
    the kept positions only (0 where none is kept)."""
    if keep is None:
        return values.mean(dim=(2, 3))
    kept = keep.to(values.dtype)
    return (values * kept).sum(dim=(2, 3)) / kept.sum(dim=(2, 3)).clamp(min=1)


def build_from_config(config: Mapping[str, Any]) -> nn.Module:
    """The module a card's config describes: ``{"method": "bandstats" | "mosaiks", ...}``.

    Without ``in_channels`` (a bundle's card) the module is unbound: it has no state, so the
    bundle's empty weights file loads into it, and :mod:`srl_core.training_free` binds it.
    """
    method = str(config.get("method", ""))
    channels = int(config.get("in_channels", 0))
    if method == "bandstats":
        return BandStatistics(channels, tuple(config.get("scales", DEFAULT_SCALES)))
    if method == "mosaiks":
        seed = config.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(f"seed must be a whole number from 0 to {2**32 - 1}, not {seed!r}")
        module = RandomConvFeatures(channels, int(config.get("filters", 128)), int(config.get("patch", 3)),
                                    float(config.get("bias", 1.0)))
        if not channels:  # unbound: no state to load
            del module.weight
            module.register_buffer("weight", torch.zeros(0), persistent=False)
        return module
    raise ValueError(f"unknown training-free method '{method}' (known: bandstats, mosaiks)")
