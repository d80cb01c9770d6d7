"""Tile encoders: Tile2Vec's TileNet and a compact kin, for any number of bands.

Both map a batch of normalised tiles ``(N, C, H, W)`` (float32, any H = W >= 8) to
embeddings ``(N, z_dim)``. They are the same residual network with different widths,
depths and stems, chosen by name in the model card's ``config``:

``{"in_channels": C, "variant": "tilenet" | "compact", "z_dim": D}``

and, optionally, ``"widths"`` (channels of all stages but the last, whose width is
``z_dim``), ``"blocks"`` (residual blocks per stage) and ``"stem_stride"`` to override the
variant's defaults, ``"spectral_stats": true``, ``"spectral_scales"`` and ``"pixel_features"``.
These keys are stable: model bundles store them.

With ``spectral_stats`` the embedding is the network's ``z_dim`` values followed by the mean
and the standard deviation of each band over the (normalised) tile, ``z_dim + 2 C`` values in
all (:func:`embedding_size`); with ``"spectral_scales": [1.0, 0.5, 0.25]`` also over the
tile's centred crops of those fractions of its side, ``z_dim + 2 C x 3`` (the training-free
``bandstats-multiscale`` features: the centre is where a labelled pixel or a point lies).
Band statistics alone are a strong baseline for land cover; a network trained on top of them
(the triplet loss sees the whole vector) only has to add what they miss, texture and context,
instead of relearning the spectra and losing some of them.

With ``"pixel_features": K`` a :class:`PixelMixture` (learned per-pixel spectral features,
averaged over the tile and the same centred crops) adds ``K`` values per scale between the
network's values and the statistics: ``tile2vec-l8-rgb-pixels64`` is ``16 + 64 + 2 C``.

Variants (MACs and parameters exact; tiles/s measured with 1 thread on this project's
shared 2-core AMD EPYC (AVX2) CPU, 50 x 50 px tiles, 4 bands, batch 64, torch 2.13, as a
plain module / as the engine runs it with :func:`fuse_for_inference` and channels-last
tensors; ``benchmarks/bench_tiles.py`` reproduces them, and the machine's load moves them
by up to 2x):

- ``tilenet``: the ResNet-18 variant of Jean et al. (2019), "Tile2Vec: Unsupervised
  representation learning for spatially distributed data" (AAAI): a 3x3 stride-1 stem of
  64 channels, five stages of two basic residual blocks (64, 128, 256, 512, z_dim
  channels; every stage after the first halves the resolution), then the spatial mean.
  z_dim 512: 1.62 G multiply-accumulates per tile, 20.9 M parameters, ~12 / ~17 tiles/s.
- ``compact``: a 3x3 stride-2 stem of 32 channels, four stages of one basic block
  (32, 64, 128, z_dim channels). z_dim 128: 38 M MACs per tile (43x fewer), 0.62 M
  parameters, ~570 / ~730 tiles/s (about 45x the TileNet), for laptops without a GPU.

The paper pools a 4x4 map with a fixed 4x4 average; taking the spatial mean instead gives
the same result at its 50 px tiles and lets one network embed tiles of any size.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .inference import Prepared, register_inference_hook
from .training_free import BandStatistics, centred_crops

VARIANTS: dict[str, dict[str, Any]] = {
    "tilenet": {"widths": (64, 128, 256, 512), "blocks": (2, 2, 2, 2, 2), "stem_stride": 1, "z_dim": 512},
    "compact": {"widths": (32, 64, 128), "blocks": (1, 1, 1, 1), "stem_stride": 2, "z_dim": 128},
}


def _conv3x3(cin: int, cout: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv3x3(cout, cout, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class PixelMixture(nn.Module):
    """Learned per-pixel spectral features, mean pooled over the tile and its centred crops.

    A two-layer 1 x 1 convolution network maps each pixel's spectrum to ``features`` non-negative
    values (soft "pixel types"); their means over a crop say what share of it each type covers.
    Measured on the Köppen tiles, MOSAIKS with 1 x 1 filters (pixel spectra, no texture) scored as
    well as with 3 x 3 ones: there the within-tile mixture of colours is what beats band means and
    standard deviations. Output: (N, features x len(scales)).
    """

    HIDDEN = 32

    def __init__(self, in_channels: int, features: int, scales: Sequence[float]) -> None:
        super().__init__()
        self.scales = tuple(float(s) for s in scales)
        self.net = nn.Sequential(nn.Conv2d(in_channels, self.HIDDEN, 1), nn.ReLU(),
                                 nn.Conv2d(self.HIDDEN, int(features), 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([crop.mean(dim=(2, 3)) for crop in centred_crops(self.net(x), self.scales)], dim=1)


class TileNet(nn.Module):
    """Residual tile encoder: stem, stages of basic blocks, spatial mean -> (N, z_dim).

    The first stage keeps the stem's resolution, each later stage halves it. ``encode`` is
    an alias of ``forward`` for Tile2Vec-style training code.
    """

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int],
        blocks: Sequence[int],
        z_dim: int,
        stem_stride: int = 1,
        spectral_stats: bool = False,
        spectral_scales: Sequence[float] = (1.0,),
        pixel_features: int = 0,
    ) -> None:
        super().__init__()
        stage_widths = [int(w) for w in widths] + [int(z_dim)]
        if len(blocks) != len(stage_widths):
            raise ValueError(
                f"'blocks' needs one entry per stage (len(widths) + 1 = {len(stage_widths)}), "
                f"got {len(blocks)}"
            )
        if in_channels < 1 or z_dim < 1 or any(w < 1 for w in stage_widths) or any(b < 1 for b in blocks):
            raise ValueError("in_channels, z_dim, widths and blocks must be positive")
        if pixel_features < 0:
            raise ValueError("pixel_features must be 0 (none) or positive")
        self.in_channels = int(in_channels)
        self.z_dim = int(z_dim)
        # with spectral_stats, the training-free bandstats encoder, appended to z
        self.band_stats = BandStatistics(self.in_channels, spectral_scales) if spectral_stats else None
        # pooled like the statistics: over the tile and its centred crops
        self.pixel_mixture = (PixelMixture(self.in_channels, pixel_features, spectral_scales)
                              if pixel_features else None)
        self.stem = nn.Sequential(
            _conv3x3(in_channels, stage_widths[0], stem_stride), nn.BatchNorm2d(stage_widths[0]), nn.ReLU()
        )
        stages = []
        cin = stage_widths[0]
        for i, (width, count) in enumerate(zip(stage_widths, blocks)):
            layers = [BasicBlock(cin if j == 0 else width, width, 2 if (i > 0 and j == 0) else 1)
                      for j in range(int(count))]
            stages.append(nn.Sequential(*layers))
            cin = width
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.stages(self.stem(x)).mean(dim=(2, 3))
        parts = [z]
        if self.pixel_mixture is not None:
            parts.append(self.pixel_mixture(x))
        if self.band_stats is not None:
            parts.append(self.band_stats(x.float()).to(z.dtype))
        return torch.cat(parts, dim=1) if len(parts) > 1 else z

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)


def _architecture(config: Mapping[str, Any]) -> dict[str, Any]:
    """The variant's defaults overridden by the config's own keys (see module doc)."""
    variant = str(config.get("variant", "tilenet"))
    if variant not in VARIANTS:
        raise ValueError(f"unknown tile encoder variant '{variant}' (known: {', '.join(VARIANTS)})")
    return {**VARIANTS[variant], **{k: config[k] for k in ("widths", "blocks", "stem_stride", "z_dim")
                                    if k in config}}


def build_from_config(config: Mapping[str, Any]) -> TileNet:
    """Build the (untrained) encoder a model card's ``config`` describes (see module doc).

    Raises ``KeyError``/``ValueError`` on a bad config; srl_core.bundle turns these into a
    ModelError naming the model.
    """
    spec = _architecture(config)
    return TileNet(
        in_channels=int(config["in_channels"]),
        widths=tuple(spec["widths"]),
        blocks=tuple(spec["blocks"]),
        z_dim=int(spec["z_dim"]),
        stem_stride=int(spec["stem_stride"]),
        spectral_stats=bool(config.get("spectral_stats", False)),
        spectral_scales=_spectral_scales(config),
        pixel_features=int(config.get("pixel_features", 0)),
    )


def _spectral_scales(config: Mapping[str, Any]) -> tuple[float, ...]:
    return tuple(float(s) for s in config.get("spectral_scales", (1.0,)))


def embedding_size(config: Mapping[str, Any]) -> int:
    """Length of a config's embedding: ``z_dim``, plus ``pixel_features`` per scale, plus 2 per band and
    scale with ``spectral_stats``."""
    scales = len(_spectral_scales(config))
    size = int(_architecture(config)["z_dim"]) + int(config.get("pixel_features", 0)) * scales
    if config.get("spectral_stats"):
        size += 2 * int(config["in_channels"]) * scales
    return size


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """``conv`` (already a copy) with ``bn`` folded into its weights and bias, in place."""
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps,
                                        bn.weight, bn.bias)
    conv.weight, conv.bias = weight, bias
    return conv


def _inference_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with its own parameters, buffers and submodules, for inference.

    What ``copy.deepcopy`` gives, at a fraction of its cost (0.8-1.6 ms against 5.6-7.3 ms on the
    bundled model, a fixed cost of every run): the module's attribute dicts (hooks included), sets
    and lists are copied one level deep, keeping their types, tensors cloned, submodules copied the
    same way.
    """
    clone = type(module).__new__(type(module))  # not copy.copy: Module.__getstate__ costs more than the rest
    clone.__dict__.update({k: v.copy() if isinstance(v, (dict, set, list)) else v
                           for k, v in module.__dict__.items()})
    for k, p in module._parameters.items():
        clone._parameters[k] = None if p is None else nn.Parameter(p.detach().clone(), p.requires_grad)
    for k, b in module._buffers.items():
        clone._buffers[k] = None if b is None else b.clone()
    for k, m in module._modules.items():
        clone._modules[k] = None if m is None else _inference_copy(m)
    return clone


def fuse_for_inference(net: TileNet) -> TileNet:
    """An eval-mode copy of ``net`` with each BatchNorm folded into the convolution before it.

    The same function (to float rounding, ~1e-7) with a third fewer passes over memory
    (see :class:`srl_core.tile_encoder.TileEncoder` for the measured gain). The original is left
    untouched; the copy is made once and folded in place (no second copy per convolution).
    """
    fused = _inference_copy(net).eval()
    fused.stem[0] = _fold(fused.stem[0], fused.stem[1])
    fused.stem[1] = nn.Identity()
    for block in fused.modules():
        if isinstance(block, BasicBlock):
            block.conv1, block.bn1 = _fold(block.conv1, block.bn1), nn.Identity()
            block.conv2, block.bn2 = _fold(block.conv2, block.bn2), nn.Identity()
            if isinstance(block.shortcut, nn.Sequential):
                block.shortcut = _fold(block.shortcut[0], block.shortcut[1])
    return fused


def _prepare_tilenet(net: TileNet, device: torch.device) -> Prepared:
    """The engine's TileNet: BatchNorms folded, channels-last on CPU and CUDA.

    On the CPU 1.3-1.4x the plain module's tiles/s (README, ``benchmarks/bench_tiles.py``).
    """
    channels_last = device.type in ("cpu", "cuda")
    module = fuse_for_inference(net)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return Prepared(module.to(device), channels_last)


register_inference_hook(TileNet, _prepare_tilenet)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable and fixed parameters (BatchNorm running stats excluded)."""
    return sum(p.numel() for p in module.parameters())


def macs_per_tile(module: nn.Module, in_channels: int, tile_size: int) -> int:
    """Multiply-accumulates of convolutions and linear layers for one tile (a shape-only pass)."""
    total = [0]

    def on_conv(mod: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        kh, kw = mod.kernel_size
        total[0] += out.shape[1] * out.shape[2] * out.shape[3] * kh * kw * mod.in_channels // mod.groups

    def on_linear(mod: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        total[0] += mod.in_features * mod.out_features

    hooks = []
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            hooks.append(sub.register_forward_hook(on_conv))
        elif isinstance(sub, nn.Linear):
            hooks.append(sub.register_forward_hook(on_linear))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(1, in_channels, tile_size, tile_size))
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
    return total[0]
