"""srl_core: spatial representation learning for GIS data, without QGIS.

Layers in, embeddings as the common currency, analyses out. See ARCHITECTURE in the
project README. This package never imports ``qgis``.
"""

from .errors import CancelledError, InputError, ModelError, OutputError, SRLError
from .progress import Progress

__version__ = "0.1.0"

__all__ = [
    "CancelledError",
    "InputError",
    "ModelError",
    "OutputError",
    "Progress",
    "SRLError",
    "__version__",
]
