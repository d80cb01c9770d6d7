"""Import a SatCLIP Lightning checkpoint's location encoder (microsoft/satclip, MIT licence).

A SatCLIP ``.ckpt`` holds ``hyper_parameters`` (``le_type``: the positional encoding, e.g.
"sphericalharmonics"; ``pe_type``: the network, e.g. "siren"; ``legendre_polys``; ``embed_dim``;
``capacity``; ``num_hidden_layers``; ``harmonics_calculation``) and a ``state_dict`` whose location
network sits under ``model.location.nnet.`` (SatCLIPLightningModule.model = SatCLIP, whose
``location`` = LocationEncoder(posenc, nnet)). The image encoder is ignored. SatCLIP's spherical
harmonics come in srl_core's ``sphericalharmonics`` encoding with its exact ordering and
normalisation ("analytic" -> ``satclip``, "closed-form" -> ``satclip_closed_form``), and its SIREN,
FCNet and linear networks keep SatCLIP's parameter names, so loading is a prefix rename.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch

from ..bundle import LoadedModel, ModelCard, load_state_strict
from ..checks import int_in_range, mapping
from ..errors import ModelError
from ..model_build import build_bounded
from ..models.location import build_from_config
from ._common import PathLike, model_id_from, safe_torch_load

PREFIXES = ("model.location.nnet.", "location.nnet.", "nnet.")
_HARMONICS = {"analytic": "satclip", "closed-form": "satclip_closed_form"}
REQUIRED_HPARAMS = ("le_type", "pe_type", "legendre_polys", "embed_dim", "capacity", "num_hidden_layers")
# Sizes read from a checkpoint, bounded before anything is allocated (published: L 10/40, 256 wide).
HPARAM_RANGES = {"legendre_polys": (1, 200), "embed_dim": (1, 8192), "capacity": (1, 16384),
                 "num_hidden_layers": (1, 64)}


def _size(hp: Mapping[str, Any], name: str) -> int:
    low, high = HPARAM_RANGES[name]
    return int_in_range(hp[name], f"SatCLIP checkpoint hyper-parameter {name}", low, high, ModelError)


def satclip_config(hp: Mapping[str, Any]) -> dict:
    """The srl_core location encoder config matching SatCLIP hyper-parameters."""
    mapping(hp, "SatCLIP checkpoint hyper_parameters")
    missing = [k for k in REQUIRED_HPARAMS if k not in hp]
    if missing:
        raise ModelError(f"SatCLIP checkpoint hyper_parameters lack {', '.join(missing)}.")
    le_type, pe_type = str(hp["le_type"]).lower(), str(hp["pe_type"]).lower()
    if le_type != "sphericalharmonics":
        raise ModelError(
            f"SatCLIP location encoding '{le_type}' is not supported for import (only "
            "'sphericalharmonics', which all published SatCLIP checkpoints use)."
        )
    calc = str(hp.get("harmonics_calculation", "analytic"))
    if calc not in _HARMONICS:
        raise ModelError(f"SatCLIP harmonics_calculation '{calc}' is not supported (analytic, closed-form).")
    encoding = {
        "name": "sphericalharmonics",
        "legendre_polys": _size(hp, "legendre_polys"),
        "normalisation": _HARMONICS[calc],
    }
    out, hidden = _size(hp, "embed_dim"), _size(hp, "capacity")
    if pe_type == "siren":
        network = {
            "name": "siren",
            "dim_hidden": hidden,
            "num_layers": _size(hp, "num_hidden_layers"),
            "dim_out": out,
            "w0": 1.0,
            "w0_initial": 30.0,
            "dropout": 0.5,
        }
    elif pe_type == "fcnet":
        network = {"name": "fcnet", "dim_hidden": hidden, "num_layers": 4, "dim_out": out, "dropout": 0.5}
    elif pe_type == "linear":
        network = {"name": "linear", "dim_out": out}
    else:
        raise ModelError(f"SatCLIP network '{pe_type}' is not supported for import (siren, fcnet, linear).")
    return {"encoding": encoding, "network": network}


def satclip_location_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The location network's tensors, renamed to srl_core's ``nnet.`` prefix."""
    mapping(state, "SatCLIP checkpoint state_dict")
    odd = sorted(str(k) for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor)))
    if odd:
        raise ModelError(f"SatCLIP checkpoint state_dict holds entries that are not named tensors: {odd[:4]}")
    for prefix in PREFIXES:
        found = {"nnet." + k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if found:
            return found
    sample = ", ".join(sorted(state)[:6]) or "none"
    raise ModelError(
        f"No location encoder weights (keys under {PREFIXES[0]}) in this checkpoint; "
        f"its keys start: {sample}."
    )


def import_satclip(ckpt_path: PathLike, model_id: Optional[str] = None) -> LoadedModel:
    """Load the location encoder of a SatCLIP Lightning checkpoint for offline use."""
    ckpt = safe_torch_load(ckpt_path, "SatCLIP")
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt or "hyper_parameters" not in ckpt:
        raise ModelError(
            f"{ckpt_path} is not a SatCLIP Lightning checkpoint (no state_dict / hyper_parameters)."
        )
    hp = ckpt["hyper_parameters"]
    config = satclip_config(hp)
    module = build_bounded(build_from_config, config, f"SatCLIP checkpoint {ckpt_path}")
    load_state_strict(module, satclip_location_state(ckpt["state_dict"]), f"SatCLIP checkpoint {ckpt_path}")
    module.eval()
    legendre = config["encoding"]["legendre_polys"]
    card = ModelCard(
        id=model_id_from(ckpt_path, model_id),
        kind="location",
        architecture="location_encoder",
        config=config,
        embedding_size=config["network"]["dim_out"],
        description=(
            f"SatCLIP location encoder (Klemmer et al., 2023): spherical harmonics L={legendre} + "
            f"{config['network']['name'].upper()}, pretrained contrastively against Sentinel-2 imagery "
            "(S2-100K)."
        ),
        inputs={"coordinates": "lon/lat WGS84 degrees"},
        training={
            "source": "microsoft/satclip checkpoint",
            "imported_from": str(ckpt_path),
            "hyper_parameters": {k: hp[k] for k in REQUIRED_HPARAMS},
            "paper": "https://arxiv.org/abs/2311.17179",
        },
        licence="MIT",
    )
    return LoadedModel(module=module, card=card, path=None)
