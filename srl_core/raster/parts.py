"""Window-by-window runs that survive being killed: each finished window is a part on disk.

A run is cut into windows (items); a backend (:mod:`srl_core.backends`) computes them in
any order, on any number of workers. Each result is saved at once as a part, a ``.npy``
file in a folder beside the output (``.<output name>.parts``), written under a temporary
name and renamed, so a part is whole or absent. The parts are written to the output in
window order as soon as the windows before them are done: the output file is the same,
byte for byte, whatever the number of workers or the order they finish in.

The folder holds a manifest: a fingerprint of the inputs and settings. A run that finds
parts with the same fingerprint (the same run, killed or failed earlier) keeps them and
computes only the missing windows; parts of another run are discarded (a folder of that name
holding anything else is left alone and the run refused). A cancel removes
the parts; success removes them once the output is in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from ..atomic import fitting_name, raster_input_files
from ..errors import CancelledError, ClusterLostError, OutputError
from ..progress import Progress
from ..signals import Interrupted

MANIFEST = "manifest.json"
PART_NAME = re.compile(r"manifest\.json|\.?part-\d+\.npy(\.tmp)?")  # what a run writes in its parts folder


def fingerprint(settings: Mapping[str, Any]) -> str:
    """A stable hex digest of JSON-able run settings (with file sizes and times for inputs)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def weights_digest(module: Any) -> str:
    """A digest of a torch module's weights and buffers, so that parts of a retrained model with
    the same id are not reused. Buffers that are not saved (non-persistent) count too: a
    training-free module holds what it was bound to (filters drawn from a raster) in them."""
    tensors = {**module.state_dict(), **dict(module.named_buffers())}
    digest = hashlib.sha256()
    for name, tensor in sorted(tensors.items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def file_stamp(path: str) -> Optional[list[float]]:
    """(size, mtime) of a local file, so that parts of a since-changed input are not reused."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # a GDAL virtual path (/vsicurl/ ...): its name stands for it
    return [st.st_size, st.st_mtime]


# Files GDAL lists beside a raster that hold no pixels it reads at full resolution: statistics (written by
# gdalinfo -stats, or QGIS on opening) and overviews. Stamping them, a stopped run no longer resumed after
# QGIS had shown the input.
SIDECARS = (".aux.xml", ".ovr")


def sources_stamp(path: str) -> list:
    """``[file, (size, mtime)]`` of every file GDAL reads pixels from for the raster ``path``: behind a
    VRT (and a VRT it reads) and a ``vrt://`` name too, not :data:`SIDECARS`. Stamping the name alone
    reused parts of a VRT's source replaced since (the old pixels' embeddings in the first windows,
    unsaid)."""
    files = [f for f in raster_input_files(path) if not f.name.lower().endswith(SIDECARS)] or [Path(path)]
    return [[str(f), file_stamp(str(f))] for f in files]


def parts_folder(output_path: str) -> Path:
    """Where the parts of ``output_path`` are kept: a hidden folder beside it."""
    target = Path(output_path).expanduser().resolve()
    return target.with_name(f".{fitting_name(target.name, len('..parts'))}.parts")


def parts_bytes(output_path: str) -> int:
    """The bytes the parts of ``output_path`` already hold (a resumed run needs that much less)."""
    folder = parts_folder(output_path)
    try:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    except OSError:
        return 0


def resume_note(folder: Path, earlier: int, what: str) -> str:
    """For a run that resumed ``earlier`` parts, what a cancel keeps in ``folder`` and how to use it; '' for
    a run that started afresh (its cancel discards its parts)."""
    if not earlier:
        return ""
    done = len(list(folder.glob("part-*.npy")))
    return (f"the {done} {what} finished ({earlier} by an earlier run) are kept in {folder} (hidden) to "
            "resume: run the same command again, or delete that folder.")


def remove_parts(output_path: str) -> None:
    """Delete the parts of ``output_path``, if any (its run is complete): only a folder holding
    nothing but what a run writes there, never one of that name holding the user's files."""
    folder = parts_folder(output_path)
    if folder.is_dir() and only_parts(folder):
        shutil.rmtree(folder, ignore_errors=True)


def only_parts(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but what a run writes there (a manifest, parts and their
    temporary files): only such a folder is SRL's to discard."""
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return False
    return all(PART_NAME.fullmatch(name) for name in names)


def _readable(path: Path) -> bool:
    """Whether a part's file holds a whole array (a power cut can leave one empty or cut short)."""
    try:
        np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return False
    return True


class PartStore:
    """The parts folder of one output: saved windows, by index, for one fingerprint."""

    def __init__(self, output_path: str, key: str) -> None:
        self.folder = parts_folder(output_path)
        self.key = key
        self.earlier = 0  # parts an earlier run left (set by open): a cancel keeps them, it does not discard

    def kept_note(self, what: str) -> str:
        """For a resumed run, what a cancel keeps (see :func:`resume_note`)."""
        return resume_note(self.folder, self.earlier, what)

    def open(self) -> set[int]:
        """Create the folder (dropping parts of another run); return the indices already done."""
        manifest = self.folder / MANIFEST
        try:
            same = json.loads(manifest.read_text(encoding="utf-8")).get("key") == self.key
        except (OSError, ValueError):
            same = False
        if not same and self.folder.exists() and not only_parts(self.folder):
            raise OutputError(f"{self.folder} holds files other than the parts of an earlier run; "
                              "move or delete it, then run again.")
        try:
            if not same:
                shutil.rmtree(self.folder, ignore_errors=True)
                self.folder.mkdir(parents=True)
                manifest.write_text(json.dumps({"key": self.key}), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"Cannot create the parts folder {self.folder}: {exc.strerror or exc}") from exc
        done = set()
        for path in self.folder.glob("part-*.npy"):
            if _readable(path):
                done.add(int(path.stem[5:]))
            else:  # computed again rather than failing every rerun
                path.unlink(missing_ok=True)
        self.earlier = len(done)
        return done

    def _path(self, index: int) -> Path:
        return self.folder / f"part-{index:07d}.npy"

    def save(self, index: int, array: np.ndarray) -> None:
        """Write one window's result, whole or not at all."""
        path = self._path(index)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with open(tmp, "wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise OutputError(f"Cannot write the part {path} (disk full?): {exc.strerror or exc}") from exc

    def load(self, index: int) -> np.ndarray:
        return np.load(self._path(index), allow_pickle=False)

    def remove(self) -> None:
        """Delete the folder and every part in it."""
        shutil.rmtree(self.folder, ignore_errors=True)


def run_parts(backend: Any, fn: Callable[[Any], np.ndarray], items: Sequence[Any], parts: PartStore,
              write: Callable[[int, np.ndarray], None], progress: Progress, what: str = "windows") -> None:
    """Compute ``fn(item)`` for the items without a part, save each, ``write`` all in item order.

    ``backend`` is any :class:`~srl_core.backends.Backend`. On cancel (QGIS's, Ctrl-C) the parts are
    removed; on SIGTERM and any other error they are kept, so that running the same call again resumes
    (none are left when no window had finished).
    SIGTERM is how a batch system's time limit, an eviction or a plain ``kill`` stop a run: it threw
    away every finished window of the long runs that resuming is for.
    """
    finished = parts.open()
    todo = [i for i in range(len(items)) if i not in finished]
    following = 0

    def drain() -> None:
        nonlocal following
        while following in finished:
            write(following, parts.load(following))
            following += 1

    def on_result(j: int, array: np.ndarray) -> None:
        parts.save(todo[j], array)
        finished.add(todo[j])
        drain()
        progress.report(len(finished) / len(items), f"{len(finished)} of {len(items)} {what}")

    try:
        with removed_on_cancel(parts.remove, partial(parts.kept_note, what)):
            drain()
            if finished:
                progress.report(len(finished) / len(items), f"{len(finished)} of {len(items)} {what} kept "
                                "from an earlier run")
            backend.map_unordered(fn, [items[i] for i in todo], on_result, progress)
            drain()
    except Exception as exc:
        if not finished:  # nothing to resume (no scheduler reached, the first window failed): no folder left
            parts.remove()
            raise
        if isinstance(exc, OutputError):  # a full disk: say what holds the space, and how to get it back
            raise OutputError(f"{exc} The {len(finished)} {what} done so far are kept in {parts.folder} "
                              "(hidden) to resume: run the same command again once there is room, or delete "
                              "that folder.") from exc
        if isinstance(exc, ClusterLostError):  # not the disk's fault: no 'once there is room'
            raise ClusterLostError(f"{exc} It goes on from the {len(finished)} {what} done so far, kept in "
                                   f"{parts.folder} (hidden); or delete that folder.") from exc
        raise


@contextlib.contextmanager
def removed_on_cancel(remove: Callable[[], None], kept: Optional[Callable[[], str]] = None) -> Iterator[None]:
    """Call ``remove`` (the parts) when the work inside is cancelled (QGIS's cancel, Ctrl-C), not on
    SIGTERM (a time limit: the same command resumes) nor on other errors. Also while the finished parts
    are written out: a Ctrl-C then left them, though the run said it kept nothing. ``kept``: where that
    gives a note (a resumed run: hours of an earlier run's windows were deleted by one Ctrl-C), the parts
    stay and the note goes with the exception (``exc.kept``), for the message to say so."""
    try:
        yield
    except Interrupted as exc:
        if exc.signum != signal.SIGTERM:
            _discard(exc, remove, kept)
        raise
    except CancelledError as exc:
        _discard(exc, remove, kept)
        raise


def _discard(exc: BaseException, remove: Callable[[], None], kept: Optional[Callable[[], str]]) -> None:
    note = kept() if kept is not None else ""
    if note:
        exc.kept = note  # type: ignore[attr-defined]
    else:
        remove()
