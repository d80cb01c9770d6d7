"""What both checkpoint importers share: safe loading and installing as a bundle."""

from __future__ import annotations

import os
import pickle
import pickletools
import re
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..bundle import LoadedModel, save_bundle
from ..errors import InputError, ModelError
from ..model_ids import check_model_id, check_new_bundle

PathLike = Union[str, os.PathLike]
_ID_RE = re.compile(r"[^a-z0-9._-]+")
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
# Callables a torch.save file names for its tensors and containers; anything else is someone's code.
_TORCH_GLOBALS = re.compile(r"^(torch\.|collections\.OrderedDict$|builtins\.(set|frozenset|bytearray)$)")


def _pickle_bytes(path: Path) -> bytes:
    """The pickle stream of a checkpoint: ``data.pkl`` inside a torch zip file, or the file itself."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("data.pkl")]
            return archive.read(names[0]) if names else b""
    return path.read_bytes()


def foreign_callables(path: Path) -> list[str]:
    """The Python callables (module.name) a checkpoint's pickle would call, other than torch's own.

    Read with :mod:`pickletools`, which lists opcodes and never runs them: what a refused
    file tried to do can be named without doing it.
    """
    found: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(_pickle_bytes(path)):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name in ("GLOBAL", "INST"):
                name = str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            else:
                continue
            if not _TORCH_GLOBALS.match(name) and name not in found:
                found.append(name)
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, IndexError):
        pass  # a truncated stream: what was listed before the break still counts
    return found


def safe_torch_load(path: PathLike, what: str) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary objects."""
    path = Path(path)
    if path.is_dir():  # it said "not found" of a folder that is there
        raise ModelError(f"{path} is a folder: choose the {what} checkpoint file in it.")
    if not path.is_file():
        raise ModelError(f"{what} checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = _UNSUPPORTED.search(str(exc))
        names = [found.group(1)] if found else foreign_callables(path)
        if not names or (found and _ends_in(path, found.group(1))):  # 'torch..', 'collec.': a file cut short
            raise ModelError(f"{path} is not a readable {what} checkpoint (corrupt or truncated).") from exc
        raise ModelError(
            f"{path} holds code or Python objects other than tensors ({', '.join(names[:4])}), which are "
            f"not loaded for safety: the code was refused and nothing in the file was run. Is this really "
            f"a {what} checkpoint? Use checkpoints only from a source you trust."
        ) from exc
    # torch's unpickler meets a cut-off or foreign file with any of these (IndexError, KeyError and
    # struct.error too: "a bug in SRL" for a text file or a download cut short)
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError,
            struct.error) as exc:
        raise ModelError(f"{path} is not a readable {what} checkpoint (corrupt or truncated): {exc}") from exc


def _ends_in(path: Path, name: str) -> bool:
    """Whether the checkpoint's pickle ends inside the callable's name torch refused: a file cut short (a
    download that stopped) there, not code. A whole pickle ends in its STOP opcode, and an old-format
    file in its tensors' bytes, never in a name."""
    try:
        data = _pickle_bytes(path)
    except (OSError, zipfile.BadZipFile, KeyError):
        return False
    data, last = data.rstrip(b"\n"), name.rsplit(".", 1)[-1].encode()
    return len(data) - (data.rfind(last) + len(last)) <= 1  # torch drops the last byte of a line cut short


def model_id_from(path: PathLike, given: Optional[str]) -> str:
    """A bundle id: the one given, as given (lower-cased, ``MyGeoCLIP`` could not be loaded by the name
    the analyst typed), or the checkpoint's file name made safe."""
    if given:
        try:
            return check_model_id(given)
        except InputError as exc:
            raise ModelError(str(exc)) from exc
    text = Path(path).stem
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
