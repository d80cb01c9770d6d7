"""Atomic outputs: write under a temporary name in the target folder, rename at the end.

A cancelled or failed run must leave nothing behind, and an existing file at the
target must survive until the new one is complete.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator, Union

from .errors import OutputError

PathLike = Union[str, os.PathLike]

# GDAL and OGR may write these beside a file; they belong to the temporary output too.
_SIDECAR_SUFFIXES = (".aux.xml", ".ovr", "-journal", "-wal", "-shm")


def check_writable(path: PathLike) -> Path:
    """Fail early, with a clear message, if ``path`` cannot be created."""
    target = Path(path).expanduser().resolve()
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"Output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"Output folder is not writable: {folder}")
    if target.is_dir():
        raise OutputError(f"Output path is a folder, not a file: {target}")
    return target


def remove_with_sidecars(path: PathLike) -> None:
    """Delete a file and the sidecars GDAL/OGR may have written beside it."""
    path = Path(path)
    for candidate in [path] + [Path(str(path) + s) for s in _SIDECAR_SUFFIXES]:
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only on success.

    The temporary name keeps the real suffix so that GDAL/OGR pick the right driver.
    On any exception (cancel included) the temporary file and its sidecars are removed.
    """
    target = check_writable(path)
    tmp = target.with_name(f".{target.stem}.partial-{uuid.uuid4().hex[:8]}{target.suffix}")
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"Nothing was written for {target}")
        os.replace(tmp, target)
        aux = Path(str(tmp) + ".aux.xml")
        if aux.exists():
            os.replace(aux, Path(str(target) + ".aux.xml"))
    except OSError as exc:
        remove_with_sidecars(tmp)
        raise OutputError(f"Could not write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        remove_with_sidecars(tmp)
        raise
