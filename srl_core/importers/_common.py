"""What both checkpoint importers share: safe loading and installing as a bundle."""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..bundle import LoadedModel, save_bundle, user_models_dir
from ..errors import ModelError

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


def install(loaded: LoadedModel, folder: Optional[PathLike] = None) -> LoadedModel:
    """Save an imported model as a bundle (default: the user's model folder / its id)."""
    target = Path(folder) if folder is not None else user_models_dir() / loaded.card.id
    path = save_bundle(loaded.module, loaded.card, target)
    return LoadedModel(module=loaded.module, card=loaded.card, path=path)
