"""Location encoders: (lon, lat) degrees -> embedding, as positional encoding o neural network.

``build_from_config(config)`` is what :mod:`srl_core.bundle` calls for the architecture
``"location_encoder"``. Encodings (see each module's docstring for formula and source):
direct, wrap, tile, rbf, rff, nerf, xyz (:mod:`.encodings`); grid, theory, spherec, spherecplus,
spherem, spheremplus, dfs (:mod:`.multiscale`); sphericalharmonics (:mod:`.spherical_harmonics`);
geoclip (:mod:`.geoclip`); stack (:mod:`.scales`). Networks: linear, mlp, fcnet, siren
(:mod:`.networks`), geoclip_branches (:mod:`.geoclip`) and scale_sum (:mod:`.scales`).
"""

from .encoder import (
    ENCODING_ALIASES,
    ENCODINGS,
    NETWORKS,
    LocationEncoder,
    build_encoding,
    build_from_config,
    encoding_names,
)
from .multiscale import wavelengths
from .spherical_harmonics import SphericalHarmonics, legendre_table

__all__ = [
    "ENCODINGS",
    "ENCODING_ALIASES",
    "NETWORKS",
    "LocationEncoder",
    "SphericalHarmonics",
    "build_encoding",
    "build_from_config",
    "encoding_names",
    "legendre_table",
    "wavelengths",
]
