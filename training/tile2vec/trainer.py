"""Train a Tile2Vec encoder on one or many rasters: seeded, checkpointed, resumable.

Each step draws a batch of triplets from a generator seeded with (seed, step), so a batch
depends only on the seed and the step number. A checkpoint therefore needs only the
weights, Adam's state and the step; resuming from it continues exactly as an uninterrupted
run would (bit for bit on the same device and thread count).

On a CUDA device the forward pass runs in float16 autocast with a gradient scaler
(mixed precision); on the CPU everything stays float32.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from srl_core.checks import check_finite_state, check_seed
from srl_core.device import resolve_device
from srl_core.errors import InputError, ModelError, OutputError
from srl_core.gdal_exceptions import gdal_exceptions
from srl_core.models.tile import build_from_config, embedding_size
from srl_core.models.training_free import DEFAULT_SCALES, valid_scales
from srl_core.progress import Progress, ensure_progress
from srl_core.tiles import PIXEL_SIZE_WARNING_RATIO

from .loss import OBJECTIVES, infonce_loss, triplet_loss, vicreg_loss
from .rasters import (
    TrainingRaster,
    TrainingStatistics,
    band_statistics,
    check_normalisation,
    open_training_rasters,
)
from .sampler import TripletSampler, augment, normalise, radiometric_jitter

CHECKPOINT_NAME = "checkpoint.safetensors"
CHECKPOINT_KEYS = {"step", "config", "rasters", "history", "elapsed_s", "param_groups"}  # what resuming reads
MIN_LR_FRACTION = 0.01  # the cosine schedule ends at 1% of the initial learning rate
ESTIMATE_AFTER_STEPS = 3  # steps timed before the whole run's duration is announced
VICREG_EXPANDER = 256  # vicreg's default head width: above the embedding itself, level with 2048 (README)
AMP_OVERFLOW_STEPS = 20  # consecutive non-finite losses under mixed precision before the run is stopped
COLLAPSE_CHECK_TRIPLETS = 128  # triplets (384 tiles) embedded after training to check the learned values vary


@dataclass
class Tile2VecConfig:
    """Everything that determines the trained weights (device and checkpointing do not)."""

    tile_size: int = 17
    variant: str = "compact"
    z_dim: int = 16  # learned values, followed by the band statistics: the best recipe measured (README)
    neighbour_radius: float = 8.0
    distant_min_distance: Optional[float] = None
    max_nodata_fraction: float = 0.1
    batch_size: int = 64
    steps: int = 2000
    lr: float = 1e-3
    margin: float = 1.0
    l2_weight: float = 0.01
    augment: bool = True
    seed: int = 0
    nodata: Optional[float] = None
    spectral_stats: bool = True
    # fractions of the tile side: the whole tile and its centred half and quarter, as bandstats-multiscale
    # (README: better than the whole tile alone on every score when trained on the scene itself)
    spectral_scales: tuple[float, ...] = DEFAULT_SCALES
    radiometric: float = 0.0  # sd of the per-tile, per-band gain and offset jitter (0: none)
    objective: str = "triplet"  # or "infonce", "vicreg" (loss.py); margin and l2_weight: triplet only
    temperature: float = 0.1  # of infonce
    pixel_features: int = 0  # >0: that many learned per-pixel features, pooled as the statistics (tile.py)
    # "pooled": every raster standardised by all rasters' statistics; "per-raster": each by its own (several
    # sensors or scalings; the engines then standardise a raster by its own); "auto": per-raster when a
    # raster is unlike the others (rasters.py)
    normalisation: str = "auto"
    # vicreg's terms on a training-only MLP head of this width (not exported; 0: none); None: VICREG_EXPANDER
    # with vicreg, none otherwise
    expander: Optional[int] = None

    def __post_init__(self) -> None:
        check_seed(self.seed, "The seed (--seed)")
        self.spectral_scales = tuple(float(s) for s in self.spectral_scales)  # a JSON list when resumed
        if self.expander is None:
            self.expander = VICREG_EXPANDER if self.objective == "vicreg" else 0

    def model_config(self, in_channels: int) -> dict[str, Any]:
        """The architecture config stored in the model card (srl_core.models.tile keys)."""
        config: dict[str, Any] = {"in_channels": int(in_channels), "variant": self.variant,
                                  "z_dim": int(self.z_dim)}
        if self.spectral_stats:
            config["spectral_stats"] = True
        if (self.spectral_stats or self.pixel_features) and self.spectral_scales != (1.0,):
            config["spectral_scales"] = [float(s) for s in self.spectral_scales]
        if self.pixel_features:
            config["pixel_features"] = int(self.pixel_features)
        return config

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tile2VecConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class TrainResult:
    """The trained encoder (eval mode, CPU) and what the model card needs to describe it."""

    module: torch.nn.Module
    config: Tile2VecConfig
    model_config: dict[str, Any]
    rasters: list[str]
    band_names: list[str]
    pixel_size: Optional[float]  # metres (the card's pixel_size_m); None where unknown or mixed
    mean: np.ndarray
    std: np.ndarray
    steps_done: int
    elapsed_s: float
    device: str
    history: list[dict[str, float]] = field(default_factory=list)
    mask: Optional[str] = None  # the valid-area mask training was limited to
    per_raster: bool = False  # each raster was standardised by its own statistics (card: normalisation)
    warnings: list[str] = field(default_factory=list)  # why the model is worse than it looks (card, console)
    data_warnings: list[str] = field(default_factory=list)  # what the training data looked like (card)

    @property
    def final_loss(self) -> float:
        return self.history[-1]["loss"] if self.history else float("nan")


def _learning_rate(config: Tile2VecConfig, step: int) -> float:
    cosine = 0.5 * (1.0 + math.cos(math.pi * step / max(config.steps, 1)))
    return config.lr * (MIN_LR_FRACTION + (1.0 - MIN_LR_FRACTION) * cosine)


def _step_rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(step)])


def _expander(config: Tile2VecConfig, dim: int, device: torch.device) -> Optional[torch.nn.Module]:
    """VICReg's expander (Bardes et al. 2022): a training-only two-layer head the loss is computed on, so
    that its variance and decorrelation terms shape a wider space than the embedding itself; None without."""
    if not config.expander:
        return None
    width = int(config.expander)
    return torch.nn.Sequential(torch.nn.Linear(dim, width), torch.nn.BatchNorm1d(width), torch.nn.ReLU(),
                               torch.nn.Linear(width, width)).to(device)


def _parameters(module: torch.nn.Module, head: Optional[torch.nn.Module]) -> list[torch.nn.Parameter]:
    return list(module.parameters()) + (list(head.parameters()) if head is not None else [])


# -- checkpoints -------------------------------------------------------------------------------
def _save_checkpoint(
    path: Path,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Optional[torch.amp.GradScaler],
    state: dict[str, Any],
    head: Optional[torch.nn.Module] = None,
) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if head is not None:
        tensors.update({f"head.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()})
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    meta = dict(state, param_groups=opt["param_groups"], scaler=scaler.state_dict() if scaler else None)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata={"state": json.dumps(meta)})
        os.replace(tmp, path)
    except (SafetensorError, OSError) as exc:  # a full disk: the last good checkpoint stays
        tmp.unlink(missing_ok=True)
        raise OutputError(f"Could not write the checkpoint {path} (disk full?): {exc}. The last checkpoint "
                          "written, if any, is kept: free some space and run the same command to resume."
                          ) from exc


def _load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {})["state"])  # another tool's file may have no metadata
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise ModelError(f"Checkpoint {path} is corrupt or not a Tile2Vec checkpoint ({exc}).") from exc
    # another tool's "state" without SRL's keys was an internal error when resumed
    if not (isinstance(meta, dict) and meta.keys() >= CHECKPOINT_KEYS and isinstance(meta["config"], dict)):
        raise ModelError(f"Checkpoint {path} is corrupt or not a Tile2Vec checkpoint (its metadata lacks "
                         f"{', '.join(sorted(CHECKPOINT_KEYS))}).")
    return tensors, meta


def _restore(
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Optional[torch.amp.GradScaler],
    device: torch.device,
    head: Optional[torch.nn.Module] = None,
) -> None:
    module.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if head is not None:
        head.load_state_dict({k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")})
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value if name == "step" else value.to(device)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])


def _check_resumable(meta: dict[str, Any], config: Tile2VecConfig, specs: Sequence[str], mask: Optional[str],
                     path: Path) -> None:
    saved = Tile2VecConfig.from_dict(meta["config"])
    if saved != config or list(meta["rasters"]) != list(specs) or meta.get("mask") != mask:
        raise InputError(
            f"Checkpoint {path} was made with other rasters or settings; resume with the same ones "
            "or use a new checkpoint folder."
        )


# -- training ------------------------------------------------------------------------------------
def _common_pixel_size(rasters: Sequence[TrainingRaster]) -> Optional[float]:
    """The training pixel size in metres for the card: the rasters' median, or None (no size check by the
    engines) when the rasters' sizes differ as much as the engines warn about (several scales learned) or
    one raster's is unknown (no CRS; rasters in degrees are refused when opened). The first raster's size
    was stated before."""
    sizes = [r.pixel_size_m for r in rasters]
    if any(size is None or not size > 0 for size in sizes):
        return None
    return float(np.median(sizes)) if max(sizes) / min(sizes) <= PIXEL_SIZE_WARNING_RATIO else None


def _standardise(tiles: np.ndarray, raster: np.ndarray, statistics: TrainingStatistics) -> np.ndarray:
    """``tiles`` (N, 3, bands, size, size) standardised by the statistics of the raster each came from
    (``raster``: (N, 3) indices); with pooled statistics in one pass, as the engines do."""
    if not statistics.per_raster:
        return normalise(tiles, statistics.mean, statistics.std)
    out = np.empty_like(tiles)
    for index in np.unique(raster):
        chosen = raster == index
        out[chosen] = normalise(tiles[chosen], statistics.raster_mean[index], statistics.raster_std[index])
    return out


def _check_config(config: Tile2VecConfig) -> None:
    """Refuse settings that cannot train, before any raster is read (one sentence naming the setting)."""
    if config.steps < 1 or config.batch_size < 2:
        raise InputError("Training needs at least 1 step and a batch of at least 2 triplets.")
    if config.z_dim < 1:
        raise InputError(f"z_dim (the learned values) must be at least 1, not {config.z_dim}.")
    if not 0.0 < config.lr < float("inf"):  # also refuses NaN
        raise InputError(f"The learning rate must be a positive number, not {config.lr}.")
    if not 0.0 <= config.radiometric <= 2.0:  # also refuses NaN
        raise InputError(f"radiometric jitter must be a number from 0 to 2, not {config.radiometric}.")
    if config.objective not in OBJECTIVES:
        raise InputError(f"objective must be one of {', '.join(OBJECTIVES)}, not '{config.objective}'.")
    if not config.temperature > 0.0:  # also refuses NaN
        raise InputError(f"temperature must be a positive number, not {config.temperature}.")
    if config.expander < 0 or (config.expander and config.objective != "vicreg"):
        raise InputError(f"expander must be 0 (none) or a positive width, with the vicreg objective only, "
                         f"not {config.expander} with {config.objective}.")
    check_normalisation(config.normalisation)
    if config.nodata is not None and not np.isfinite(config.nodata):  # the card's must be finite JSON
        raise InputError(f"The no-data value must be a finite number (NaN and infinite pixels are left out "
                         f"anyway), not {config.nodata}.")
    if config.pixel_features < 0:
        raise InputError(f"pixel_features must be 0 (none) or a positive count, not {config.pixel_features}.")
    if (config.spectral_stats or config.pixel_features) and not valid_scales(config.spectral_scales):
        raise InputError(f"spectral_scales must be fractions of the tile side in (0, 1], "
                         f"not {list(config.spectral_scales)}.")


def _check_batch_memory(config: Tile2VecConfig, bands: int) -> None:
    """Refuse a batch whose triplets of float32 tiles alone need more memory than is available now:
    --batch-size 100000000 read the rasters, then failed as an internal MemoryError. Training needs
    several times that (copies, activations), so this bound refuses only batches that can never fit."""
    try:
        import psutil
    except ImportError:  # optional, as in srl_core.threads: without it the first batch finds out
        return
    needed = config.batch_size * 3 * bands * config.tile_size ** 2 * np.dtype(np.float32).itemsize
    available = psutil.virtual_memory().available
    if needed > available:
        size = config.tile_size
        raise InputError(f"The batch size (--batch-size) of {config.batch_size} triplets needs "
                         f"{needed / 2**30:,.1f} GiB for its tiles alone (3 tiles of {bands} bands x {size} "
                         f"x {size} float32 pixels each), more than the {available / 2**30:,.1f} GiB of "
                         "memory available; choose a smaller batch.")


@gdal_exceptions()
def train_tile2vec(
    rasters: Sequence[str],
    config: Optional[Tile2VecConfig] = None,
    *,
    device: str = "auto",
    amp: bool = True,
    checkpoint_dir: Union[str, Path, None] = None,
    checkpoint_every: int = 200,
    stop_after: Optional[int] = None,
    mask: Union[str, Path, None] = None,
    progress: Optional[Progress] = None,
) -> TrainResult:
    """Train a TileNet on Tile2Vec triplets from ``rasters`` (specs, see ``rasters.py``) with
    ``config.objective``: the triplet loss by default, InfoNCE or VICReg (``loss.py``).

    With ``checkpoint_dir``, a checkpoint is written every ``checkpoint_every`` steps and at
    the end, and an existing checkpoint there is resumed (same rasters and config required).
    ``stop_after`` ends the run after that step (as an interruption would), for tests and
    time-boxed sessions; the checkpoint lets a later call finish it. ``mask`` (a raster,
    non-zero = inside, or a polygon layer, e.g. land only) limits the tiles, the triplets and
    the normalisation statistics to the area inside it. After the first few steps, progress
    announces how long the whole run will take.
    """
    config = config or Tile2VecConfig()
    progress = ensure_progress(progress)
    _check_config(config)
    torch_device = resolve_device(device)
    use_amp = bool(amp) and torch_device.type == "cuda"

    opened = open_training_rasters(rasters, nodata=config.nodata, mask=str(mask) if mask else None)
    _check_batch_memory(config, opened[0].band_count)  # the band count is known once opened, before any read
    statistics = band_statistics(opened, config.normalisation)
    if statistics.why:
        progress.report(0.0, f"Each raster is standardised by its own statistics, because {statistics.why}.")
    for fill in statistics.fills:  # before the work, on a line of its own: the run can be stopped
        progress.report(0.0, f"warning: {fill}")
    progress.report(0.0, "Mapping where tiles fit in the training rasters")
    sampler = TripletSampler(
        opened,
        tile_size=config.tile_size,
        neighbour_radius=config.neighbour_radius,
        distant_min_distance=config.distant_min_distance,
        max_nodata_fraction=config.max_nodata_fraction,
    )
    model_config = config.model_config(opened[0].band_count)
    torch.manual_seed(config.seed)
    module = build_from_config(model_config).to(torch_device)
    head = _expander(config, embedding_size(model_config), torch_device)
    optimizer = torch.optim.Adam(_parameters(module, head), lr=config.lr)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    step, history, elapsed_before = 0, [], 0.0
    checkpoint = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        if checkpoint.exists():
            tensors, meta = _load_checkpoint(checkpoint)
            _check_resumable(meta, config, rasters, str(mask) if mask else None, checkpoint)
            _restore(tensors, meta, module, optimizer, scaler, torch_device, head)
            step, history, elapsed_before = int(meta["step"]), list(meta["history"]), float(meta["elapsed_s"])

    started = time.monotonic()

    def save() -> None:
        if checkpoint is not None:
            # never over the last good checkpoint (see _diverged)
            check_finite_state(dict(module.named_parameters()), f"The training diverged by step {step}")
            state = {"step": step, "config": asdict(config), "rasters": list(rasters), "history": history,
                     "mask": str(mask) if mask else None,
                     "elapsed_s": elapsed_before + time.monotonic() - started}
            _save_checkpoint(checkpoint, module, optimizer, scaler, state, head)

    log_every = max(1, config.steps // 100)
    term_name = {"triplet": "hinge", "infonce": "cross_entropy", "vicreg": "invariance"}[config.objective]
    window: list[list[float]] = []
    first_step = step
    last = config.steps if stop_after is None else min(config.steps, int(stop_after))
    module.train()
    overflows = 0  # consecutive steps whose loss was not a number
    while step < last:
        progress.check()
        rng = _step_rng(config.seed, step)
        batch = sampler.sample(config.batch_size, rng)
        tiles = augment(batch.tiles, rng) if config.augment else batch.tiles
        standardised = _standardise(tiles, batch.raster, statistics)
        if config.radiometric > 0:
            standardised = radiometric_jitter(standardised, config.radiometric, rng)
        x = torch.from_numpy(standardised)
        x = x.transpose(0, 1).reshape(-1, *x.shape[2:]).to(torch_device)  # anchors, neighbours, distants
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(config, step)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            z = module(x)
        a, n, d = z.float().chunk(3)
        if config.objective == "infonce":
            loss, parts = infonce_loss(a, n, d, temperature=config.temperature)
        elif config.objective == "vicreg":
            if head is not None:
                a, n, d = head(z.float()).chunk(3)
            loss, parts = vicreg_loss(a, n, d)
        else:
            loss, parts = triplet_loss(a, n, d, margin=config.margin, l2_weight=config.l2_weight)
        if torch.isfinite(loss):
            overflows = 0
        else:  # mixed precision overflows now and then, and its scaler skips such a step: only a run of them
            overflows += 1
            if scaler is None or overflows > AMP_OVERFLOW_STEPS:
                raise ModelError(_diverged(step + 1, float(loss.detach()), config, checkpoint))
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        step += 1
        window.append([parts.loss, parts.term, parts.neighbour_distance, parts.distant_distance,
                       parts.embedding_norm])
        if step % log_every == 0 or step == last:
            means = np.mean(window, axis=0)
            history.append({"step": step, "loss": float(means[0]), term_name: float(means[1]),
                            "neighbour_distance": float(means[2]), "distant_distance": float(means[3]),
                            "embedding_norm": float(means[4])})
            window = []
        if checkpoint is not None and (step % max(1, checkpoint_every) == 0 or step == last):
            save()
        done = step - first_step
        eta = (time.monotonic() - started) / done * (last - step)
        if done == ESTIMATE_AFTER_STEPS and step < last:
            progress.report(step / config.steps, f"Estimated training time: {_duration(eta)} for "
                                                 f"{last - step} more steps on {torch_device.type}")
        progress.report(step / config.steps, f"step {step}/{config.steps} loss {parts.loss:.3f} "
                                             f"ETA {_duration(eta)}")
    module.eval()
    collapsed = _collapse_warning(module, sampler, statistics, config, torch_device)  # said by the callers
    return TrainResult(
        module=module.cpu(),
        config=config,
        model_config=model_config,
        rasters=list(rasters),
        band_names=opened[0].band_names,
        pixel_size=_common_pixel_size(opened),
        mean=statistics.mean,
        std=statistics.std,
        per_raster=statistics.per_raster,
        steps_done=step,
        elapsed_s=elapsed_before + time.monotonic() - started,
        device=str(torch_device),
        history=history,
        mask=str(mask) if mask else None,
        warnings=[collapsed] if collapsed else [],
        data_warnings=list(statistics.fills),
    )


def _collapse_warning(module: torch.nn.Module, sampler: TripletSampler, statistics: TrainingStatistics,
                      config: Tile2VecConfig, device: torch.device) -> Optional[str]:
    """Why the trained network's learned values are useless, when most of them do not vary over a sample
    of its own training tiles (in eval mode, as the engines run it), else None.

    A collapsed network still writes a model whose loss curve can look healthy, and the band statistics
    appended to the learned values keep its embeddings varying, so no later check sees it: with a
    learning rate of 5, 12 of 16 learned values were constant. The bundled recipes leave 0-4 of 16-64
    constant on their training scene (README)."""
    batch = sampler.sample(COLLAPSE_CHECK_TRIPLETS, np.random.default_rng(config.seed + 1))
    tiles = _standardise(batch.tiles, batch.raster, statistics)
    with torch.no_grad():
        learned = module(torch.from_numpy(tiles.reshape(-1, *tiles.shape[2:])).to(device))
    learned = learned.float().cpu().numpy()[:, :config.z_dim]
    scale = max(float(np.abs(learned).max()), 1e-12) if np.isfinite(learned).all() else 0.0
    constant = int((learned.std(axis=0) <= 1e-4 * scale).sum()) if scale else config.z_dim
    if constant <= config.z_dim // 2:
        return None
    return (f"The training collapsed: {constant} of the {config.z_dim} learned values are the same on every "
            f"tile of a sample of its own training rasters, so they add nothing to the band statistics. "
            f"Train again with a lower learning rate (now {config.lr:g}) or L2 weight (now "
            f"{config.l2_weight:g}).")


def _diverged(step: int, loss: float, config: Tile2VecConfig, checkpoint: Optional[Path]) -> str:
    """Why a training stopped at a loss that is not a number, and what to do: it ran to its last step
    before, writing NaN weights over its checkpoint every time, and failed only when exporting."""
    kept = (f" The last checkpoint written ({checkpoint}) holds the weights before it and is kept."
            if checkpoint is not None and checkpoint.exists() else "")
    return (f"The training diverged at step {step}: the loss became {loss}. Lower the learning rate (now "
            f"{config.lr:g}) and train again; no model was written.{kept}")


def _duration(seconds: float) -> str:
    return f"{int(seconds) // 60}m{int(seconds) % 60:02d}s"
