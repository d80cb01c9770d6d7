"""What both checkpoint importers share: safe loading and installing as a bundle."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..bundle import LoadedModel, save_bundle
from ..errors import ModelError
from ..model_ids import check_new_bundle

PathLike = Union[str, os.PathLike]
_ID_RE = re.compile(r"[^a-z0-9._-]+")
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def safe_torch_load(path: PathLike, what: str) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} checkpoint not found: {path}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _UNSUPPORTED.search(str(exc))
        if found is None:
            raise ModelError(f"{path} is not a readable {what} checkpoint (corrupt or truncated).") from exc
        raise ModelError(
            f"{path} holds Python objects other than tensors ({found.group(1)}), which are not loaded "
            f"for safety. Is this really a {what} checkpoint?"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ModelError(f"{path} is not a readable {what} checkpoint (corrupt or truncated): {exc}") from exc


def model_id_from(path: PathLike, given: Optional[str]) -> str:
    """A bundle id: the one given, or the checkpoint's file name made safe."""
    text = given if given else Path(path).stem
    clean = _ID_RE.sub("-", text.strip().lower()).strip("-.")
    if not clean:
        raise ModelError(f"Cannot make a model id from '{text}'; give one explicitly.")
    return clean


def install(loaded: LoadedModel, folder: Optional[PathLike] = None, overwrite: bool = False) -> LoadedModel:
    """Save an imported model as a bundle (default: the user's model folder / its id).

    The id and folder are checked by :func:`~srl_core.model_ids.check_new_bundle`: an installed
    model of the same id is only replaced with ``overwrite``.
    """
    target = check_new_bundle(loaded.card.id, folder, overwrite)
    path = save_bundle(loaded.module, loaded.card, target, overwrite=overwrite)
    return LoadedModel(module=loaded.module, card=loaded.card, path=path)
