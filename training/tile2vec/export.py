"""Turn a training result into a model bundle whose card says how to use and reproduce it."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch

from srl_core.bundle import ModelCard, save_bundle
from srl_core.errors import InputError
from srl_core.models.tile import embedding_size

from ..datasets.packages import DATA_PACKAGES
from ..datasets.provenance import recorded_provenance
from .rasters import PACKAGE_PREFIX, STACK_SEPARATOR
from .trainer import TrainResult

HISTORY_POINTS = 20  # loss curve points kept in the card


def package_entries(names: Sequence[str]) -> list[dict[str, str]]:
    """Name, version and licence of each known data package among ``names``."""
    return [{"name": name, "version": DATA_PACKAGES[name][0], "licence": DATA_PACKAGES[name][1]}
            for name in names if name in DATA_PACKAGES]


def describe_data(specs: Sequence[str]) -> list[dict[str, Any]]:
    """Provenance of each training raster: its spec and, for package files, package, version, licence;
    for a raster written from packages (:mod:`training.datasets.provenance`), the source it records."""
    described = []
    for spec in specs:
        entry: dict[str, Any] = {"raster": spec}
        packages = sorted({part[len(PACKAGE_PREFIX):].split("/", 1)[0]
                           for part in spec.split(STACK_SEPARATOR) if part.startswith(PACKAGE_PREFIX)})
        if packages:
            entry["packages"] = package_entries(packages)
        else:
            recorded = recorded_provenance(spec)
            entry.update({key: recorded[key] for key in ("source", "packages") if key in recorded})
        described.append(entry)
    return described


def _relative_paths(specs: Sequence[str]) -> bool:
    """Whether any training raster or mask is named by a path relative to the working folder."""
    parts = [part for spec in specs if spec for part in spec.split(STACK_SEPARATOR)]
    paths = [part[len("vrt://"):].split("?")[0] if part.startswith("vrt://") else part for part in parts
             if not part.startswith(PACKAGE_PREFIX)]
    return any(not Path(path).is_absolute() for path in paths)


def describe_mask(mask: Optional[str]) -> Optional[str]:
    """The valid-area mask's path, followed by the source it records when it was written from packages."""
    source = recorded_provenance(mask).get("source") if mask else None
    return f"{mask} ({source})" if source else mask


_SAMPLING = "neighbour within a radius, distant tile far away or on another raster, flips and rot90"
METHODS = {
    "triplet": "Tile2Vec (Jean et al., AAAI 2019): triplet margin loss with L2 penalty on embeddings, "
               + _SAMPLING,
    "infonce": "Tile2Vec triplets (Jean et al., AAAI 2019) with an InfoNCE objective (each anchor picks its "
               "neighbour among all tiles of the batch, cosine similarity over a temperature), " + _SAMPLING,
    "vicreg": "Tile2Vec triplets (Jean et al., AAAI 2019) with a VICReg objective (Bardes et al., ICLR 2022: "
              "anchor and neighbour pulled together, each dimension's spread kept, dimensions decorrelated; "
              "no negatives), " + _SAMPLING,
}


def build_card(
    result: TrainResult,
    model_id: str,
    *,
    band_names: Optional[Sequence[str]] = None,
    band_descriptions: Optional[Sequence[str]] = None,
    sensor: str = "",
    description: str = "",
    licence: str = "",
    command: str = "",
    started_utc: str = "",
    threads: Optional[int] = None,
    metrics: Optional[dict[str, Any]] = None,
    data: Optional[Sequence[dict[str, Any]]] = None,
    mask: Optional[str] = None,
) -> ModelCard:
    """The card of a Tile2Vec model: inputs (bands, normalisation, tile and pixel size, and the nodata
    value training was told, which the engines then apply to rasters that declare none), training, metrics.

    ``data`` and ``mask``: what the training rasters and the valid-area mask were, instead of their
    paths, when the files were written for the run and are gone; by default the paths
    (:func:`describe_data`) and the mask's path (:func:`describe_mask`).
    """
    names = list(band_names) if band_names else list(result.band_names)
    descriptions = list(band_descriptions) if band_descriptions else [""] * len(names)
    for what, given in (("band names", names), ("band descriptions", descriptions)):
        if len(given) != len(result.mean):  # zip would drop the bands after the shorter list
            raise InputError(f"{len(given)} {what} given for a model of {len(result.mean)} bands.")
    step = max(1, len(result.history) // HISTORY_POINTS)
    curve = result.history[::step]
    if result.history and curve[-1] is not result.history[-1]:
        curve.append(result.history[-1])
    training = {
        "method": METHODS[result.config.objective],
        "data": list(data) if data is not None else describe_data(result.rasters),
        "valid_area_mask": mask if mask is not None else describe_mask(result.mask),
        "config": asdict(result.config),
        "steps_done": result.steps_done,
        "seed": result.config.seed,
        "command": command,
        # where the rasters' relative paths lead: the command named no file elsewhere (package and absolute
        # paths need none, and a shipped card keeps no builder's folder)
        **({"working_folder": os.getcwd()} if _relative_paths([*result.rasters, result.mask or ""]) else {}),
        "started_utc": started_utc,
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_s": round(result.elapsed_s, 1),
        "device": result.device,
        "threads": threads if threads is not None else torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "loss_curve": [{k: round(v, 4) if isinstance(v, float) else v for k, v in p.items()} for p in curve],
        **({"warnings": list(result.warnings)} if result.warnings else {}),
        # not "warnings", which every use of the model repeats: zeros that are data would be a false alarm
        **({"data_warnings": list(result.data_warnings)} if result.data_warnings else {}),
    }
    return ModelCard(
        id=model_id,
        kind="tile",
        architecture="tilenet",
        config=dict(result.model_config),
        embedding_size=embedding_size(result.model_config),
        description=description,
        inputs={
            "bands": [{"name": n, "description": d} for n, d in zip(names, descriptions)],
            "normalisation": _normalisation(result),
            "tile_size": int(result.config.tile_size),
            "pixel_size_m": result.pixel_size,
            "sensor": sensor,
            **({"nodata": float(result.config.nodata)} if result.config.nodata is not None else {}),
        },
        training=training,
        metrics=dict(metrics or {"final_loss": round(result.final_loss, 4)}),
        licence=licence or "unknown",
    )


def _normalisation(result: TrainResult) -> dict[str, Any]:
    """The card's normalisation: the pooled training statistics, and ``per_raster`` when each training
    raster was standardised by its own (the engines then standardise the user's raster by its own)."""
    section: dict[str, Any] = {"mean": [float(v) for v in result.mean], "std": [float(v) for v in result.std]}
    if result.per_raster:
        section["per_raster"] = True
    return section


def export_bundle(
    result: TrainResult, folder: Union[str, Path], model_id: str, overwrite: bool = False, **card_fields: Any
) -> Path:
    """Write weights and card (see :func:`build_card` for the fields) atomically into ``folder``.

    An existing bundle there is only replaced with ``overwrite`` (see ``save_bundle``).
    """
    return save_bundle(result.module, build_card(result, model_id, **card_fields), folder, overwrite)
