"""Import GeoCLIP's published location encoder (``location_encoder_weights.pth``, MIT licence).

GeoCLIP's ``LocationEncoder`` holds, per scale i, ``LocEnc{i}.capsule.0.b`` (the random Fourier
matrix, (F, 2)), ``LocEnc{i}.capsule.{1,3,5}`` (Linear layers, ReLU between) and
``LocEnc{i}.head.0`` (output Linear). That is exactly srl_core's ``geoclip`` encoding (Equal Earth +
multi-scale RFF, the B matrices stacked) followed by ``geoclip_branches``; this module only renames.
GeoCLIP takes (lat, lon); the imported model, like every srl_core model, takes (lon, lat).
"""

from __future__ import annotations

import re
from typing import Optional

import torch

from ..bundle import LoadedModel, ModelCard, load_state_strict
from ..errors import ModelError
from ..model_build import build_bounded
from ..models.location import build_from_config
from ._common import PathLike, model_id_from, safe_torch_load

GEOCLIP_SIGMAS = (2.0**0, 2.0**4, 2.0**8)
_KEY = re.compile(r"^LocEnc(\d+)\.(capsule\.(\d+)|head\.0)\.(b|weight|bias)$")


def _branches(state: dict[str, torch.Tensor]) -> int:
    unknown = sorted(k for k in state if not _KEY.match(k))
    if unknown:
        raise ModelError(
            "Not a GeoCLIP location encoder: unexpected keys " + ", ".join(unknown[:8])
            + (" ..." if len(unknown) > 8 else "")
        )
    branches = sorted({int(_KEY.match(k).group(1)) for k in state})
    if not branches or branches != list(range(len(branches))):
        raise ModelError(f"GeoCLIP checkpoint has branches {branches}; expected LocEnc0, LocEnc1, ...")
    return len(branches)


def _need(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    if key not in state:
        raise ModelError(f"GeoCLIP checkpoint is missing {key}.")
    return state[key]


def geoclip_config(state: dict[str, torch.Tensor]) -> dict:
    """The srl_core location encoder config matching a GeoCLIP state dict."""
    n = _branches(state)
    b = _need(state, "LocEnc0.capsule.0.b")
    if b.ndim != 2 or b.shape[1] != 2:
        raise ModelError(f"GeoCLIP checkpoint: LocEnc0.capsule.0.b is {tuple(b.shape)}; expected (F, 2).")
    capsule = {_KEY.match(k).group(3) for k in state if k.startswith("LocEnc0.capsule.")}
    layers = sorted(int(i) for i in capsule if i != "0")
    keys = [f"LocEnc0.capsule.{i}.weight" for i in layers] + ["LocEnc0.head.0.weight"]
    weights = [_need(state, key) for key in keys]
    if any(w.ndim != 2 for w in weights):
        raise ModelError("GeoCLIP checkpoint: its LocEnc0 layer weights are not matrices.")
    hidden = weights[0].shape[0] if layers else 0
    sigmas = list(GEOCLIP_SIGMAS) if n == len(GEOCLIP_SIGMAS) else [float(i) for i in range(1, n + 1)]
    return {
        "encoding": {"name": "geoclip", "sigmas": sigmas, "num_features": int(b.shape[0])},
        "network": {
            "name": "geoclip_branches",
            "num_branches": n,
            "dim_hidden": int(hidden),
            "num_layers": len(layers),
            "dim_out": int(_need(state, "LocEnc0.head.0.weight").shape[0]),
        },
    }


def geoclip_state_to_srl(state: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """Rename GeoCLIP's keys onto a LocationEncoder built from ``geoclip_config``; a tensor of the
    checkpoint that fits no layer of it is refused (a branch deeper than LocEnc0 lost its last layer, and
    the model imported was not the checkpoint's function)."""
    n = config["network"]["num_branches"]
    num_layers = config["network"]["num_layers"]
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        used.add(key)
        return _need(state, key)

    matrices = [take(f"LocEnc{i}.capsule.0.b") for i in range(n)]
    if any(m.shape != matrices[0].shape for m in matrices):
        raise ModelError("GeoCLIP checkpoint: its branches' matrices LocEnc*.capsule.0.b differ in shape.")
    out = {"posenc.b": torch.stack(matrices)}
    for i in range(n):
        for j in range(num_layers):
            for p in ("weight", "bias"):
                out[f"nnet.branches.{i}.{2 * j}.{p}"] = take(f"LocEnc{i}.capsule.{2 * j + 1}.{p}")
        for p in ("weight", "bias"):
            out[f"nnet.branches.{i}.{2 * num_layers}.{p}"] = take(f"LocEnc{i}.head.0.{p}")
    unused = sorted(set(state) - used)
    if unused:
        listed = ", ".join(unused[:6]) + " ..." * (len(unused) > 6)
        raise ModelError(f"GeoCLIP checkpoint: {len(unused)} of its tensors fit no layer of an encoder "
                         f"shaped as its LocEnc0 ({listed}): its branches differ, or it is not GeoCLIP's "
                         "location encoder.")
    return out


def import_geoclip(pth_path: PathLike, model_id: Optional[str] = None) -> LoadedModel:
    """Load GeoCLIP's ``location_encoder_weights.pth`` into srl_core's own implementation."""
    state = safe_torch_load(pth_path, "GeoCLIP")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise ModelError(f"{pth_path} is not a GeoCLIP state dict (a dict of tensors).")
    config = geoclip_config(state)
    module = build_bounded(build_from_config, config, f"GeoCLIP checkpoint {pth_path}")
    load_state_strict(module, geoclip_state_to_srl(state, config), f"GeoCLIP checkpoint {pth_path}")
    module.eval()
    card = ModelCard(
        id=model_id_from(pth_path, model_id or "geoclip"),
        kind="location",
        architecture="location_encoder",
        config=config,
        embedding_size=config["network"]["dim_out"],
        description=(
            "GeoCLIP location encoder (Vivanco Cepeda, Nayak & Shah, NeurIPS 2023): Equal Earth "
            "projection, random Fourier features at sigma 2^0, 2^4, 2^8, three summed MLP branches. "
            "Trained contrastively against CLIP image features of geotagged Flickr photos."
        ),
        inputs={"coordinates": "lon/lat WGS84 degrees"},
        training={
            "source": "geoclip 1.3.0 (PyPI), geoclip/model/weights/location_encoder_weights.pth",
            "imported_from": str(pth_path),
            "paper": "https://arxiv.org/abs/2309.16020",
        },
        licence="MIT",
    )
    return LoadedModel(module=module, card=card, path=None)
