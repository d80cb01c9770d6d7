"""LocationEncoder = positional encoding o neural network, each chosen by name in a config.

A config is a plain JSON-able dict, stored in the model card::

    {"encoding": {"name": "sphericalharmonics", "legendre_polys": 10},
     "network":  {"name": "siren", "dim_hidden": 256, "num_layers": 2, "dim_out": 256}}

Everything but ``name`` is passed to the chosen class as keyword arguments; the network also
receives ``dim_in`` from the encoding's ``embedding_dim``. The module takes (N, 2) (lon, lat) in
degrees WGS84 and returns (N, dim_out); it does not validate coordinates (the engine does).

An optional ``"append": {"name": "sphericalharmonics", "legendre_polys": 10}`` appends a fixed
(untrained) encoding of the same coordinates to the network's output: (N, dim_out + its
size). A pretrained network knows what the ground looks like, but a linear model on it
extrapolates to regions no label reached less smoothly than on a low-degree basis; with both
in one vector, a downstream model can use each where it works (see README, location results).
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Mapping, Optional

import torch
from torch import nn

from ...names import LOCATION_ENCODING_ALIASES as ENCODING_ALIASES  # SatCLIP / TorchSpatial names
from .encodings import RBF, RFF, XYZ, Direct, NeRF, Tile, Wrap
from .geoclip import EqualEarthRFF, GeoCLIPBranches
from .multiscale import MULTISCALE_NAMES, MultiScale
from .networks import MLP, FCNet, LinearNet, Siren
from .scales import ScaleSum, Stack
from .spherical_harmonics import SphericalHarmonics


def _multiscale(name: str) -> Callable[..., nn.Module]:
    return lambda **kw: MultiScale(name=name, **kw)


ENCODINGS: dict[str, Callable[..., nn.Module]] = {
    "direct": Direct,
    "wrap": Wrap,
    "tile": Tile,
    "rbf": RBF,
    "rff": RFF,
    "nerf": NeRF,
    "xyz": XYZ,
    "sphericalharmonics": SphericalHarmonics,
    "geoclip": EqualEarthRFF,
    "stack": Stack,
    **{name: _multiscale(name) for name in MULTISCALE_NAMES},
}

NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "linear": LinearNet,
    "mlp": MLP,
    "fcnet": FCNet,
    "siren": Siren,
    "geoclip_branches": GeoCLIPBranches,
    "scale_sum": ScaleSum,
}


def encoding_names() -> list[str]:
    """Every accepted encoding name (aliases included)."""
    return sorted([*ENCODINGS, *ENCODING_ALIASES])


def _split(section: Any, what: str, known: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if not isinstance(section, Mapping) or "name" not in section:
        raise ValueError(f"config['{what}'] must be a dict with a 'name'")
    params = dict(section)
    name = str(params.pop("name")).lower()
    name = ENCODING_ALIASES.get(name, name) if what == "encoding" else name
    if name not in known:
        raise ValueError(f"Unknown {what} '{name}' (known: {', '.join(sorted(known))})")
    return name, params


class LocationEncoder(nn.Module):
    """Positional encoding (``posenc``) followed by a network (``nnet``), as in SatCLIP."""

    def __init__(self, posenc: nn.Module, nnet: nn.Module, config: Mapping[str, Any],
                 appended: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.posenc = posenc
        self.nnet = nnet
        self.appended = appended
        self.config = copy.deepcopy(dict(config))

    @property
    def embedding_size(self) -> int:
        return int(self.nnet.dim_out) + (int(self.appended.embedding_dim) if self.appended is not None else 0)

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        z = self.nnet(self.posenc(lonlat))
        if self.appended is None:
            return z
        return torch.cat([z, self.appended(lonlat).to(z.dtype)], dim=-1)


def build_encoding(section: Mapping[str, Any]) -> nn.Module:
    """Only the positional encoding of a config section ``{"name": ..., **params}``."""
    name, params = _split(section, "encoding", ENCODINGS)
    return ENCODINGS[name](**params)


def build_from_config(config: Mapping[str, Any]) -> LocationEncoder:
    """Build an (untrained) LocationEncoder from ``{"encoding": {...}, "network": {...}}``.

    Raises ValueError/TypeError for unknown names or parameters (the bundle loader turns these
    into a ModelError naming the model).
    """
    if not isinstance(config, Mapping):
        raise ValueError("A location encoder config must be a dict")
    posenc = build_encoding(config.get("encoding"))
    net_name, net_params = _split(config.get("network"), "network", NETWORKS)
    if net_name == "scale_sum":  # its branches split the input by the stack's parts
        net_params["part_dims"] = list(getattr(posenc, "part_dims", [posenc.embedding_dim]))
    nnet = NETWORKS[net_name](dim_in=posenc.embedding_dim, **net_params)
    appended = build_encoding(config["append"]) if config.get("append") is not None else None
    return LocationEncoder(posenc, nnet, config, appended)


def with_appended(encoder: LocationEncoder, section: Mapping[str, Any]) -> LocationEncoder:
    """``encoder`` (trained) with the fixed encoding ``section`` appended to its output; a new module."""
    if encoder.appended is not None:
        raise ValueError("This encoder already appends an encoding.")
    config = {**encoder.config, "append": copy.deepcopy(dict(section))}
    return LocationEncoder(encoder.posenc, encoder.nnet, config, build_encoding(section))
