"""Names of the location encodings interpolation can use, importable without torch.

The QGIS plugin lists them in the *Interpolate a field* dialog when QGIS starts; importing
the encodings themselves would load torch, which takes seconds.
"""

from __future__ import annotations

# Space2Vec (grid, theory) and Sphere2Vec (sphere*, dfs) multi-scale encodings,
# see srl_core.models.location.multiscale
MULTISCALE_NAMES = ("grid", "theory", "spherec", "spherecplus", "spherem", "spheremplus", "dfs")
# random Fourier features first: the recommended default
ENCODINGS = ("rff", *MULTISCALE_NAMES)
