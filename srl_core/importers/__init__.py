"""Importers for published location encoder checkpoints (GeoCLIP, SatCLIP) into srl_core bundles.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors and plain containers only.
``import_checkpoint`` picks the importer by name; ``install`` saves the result as a bundle in the
user's model folder so it can be used offline by id.
"""

from __future__ import annotations

from typing import Callable, Optional

from ..bundle import LoadedModel
from ..errors import InputError
from ..progress import Progress, ensure_progress
from ._common import PathLike, install
from .geoclip import import_geoclip
from .satclip import import_satclip

IMPORTERS: dict[str, Callable[..., LoadedModel]] = {"geoclip": import_geoclip, "satclip": import_satclip}


def import_checkpoint(kind: str, path: PathLike, model_id: Optional[str] = None) -> LoadedModel:
    """Import a 'geoclip' or 'satclip' checkpoint (not yet saved; see :func:`install`)."""
    try:
        importer = IMPORTERS[kind.lower()]
    except KeyError as exc:
        raise InputError(f"Unknown checkpoint kind '{kind}' (known: {', '.join(IMPORTERS)}).") from exc
    return importer(path, model_id)


def import_and_install(kind: str, path: PathLike, model_id: Optional[str] = None,
                       progress: Optional[Progress] = None, overwrite: bool = False) -> LoadedModel:
    """Import a checkpoint and install it in the user model folder (the command line's and the plugin's
    *import*); the returned model's ``path`` is its bundle folder. Cancel is honoured before installing.
    An installed model of the same id is only replaced with ``overwrite``
    (see :func:`~srl_core.model_ids.check_new_bundle`)."""
    loaded = import_checkpoint(kind, path, model_id or None)
    ensure_progress(progress).check()
    return install(loaded, overwrite=overwrite)


__all__ = [
    "IMPORTERS", "import_and_install", "import_checkpoint", "import_geoclip", "import_satclip", "install",
]
