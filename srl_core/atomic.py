"""Atomic outputs: write under a temporary name in the target folder, rename at the end.

A cancelled or failed run must leave nothing behind, and an existing file at the
target must survive until the new one is complete. Every output of a run is checked
before any work (:func:`output_run`): its folder exists and is writable, it is none of
the run's inputs (same path, or the same file under another name) nor a file GDAL reads
for a raster input (the sources behind a VRT), and no two outputs
are the same file. Inside a run, finished outputs are only renamed into place when the
whole run succeeds, so a run writes all its outputs or none.

Temporary names carry the owning process (``.out.partial-<pid>-<host>-<random>.tif``):
a run removes the partial files of its own outputs that a dead process left (killed,
power cut), never those of a run still going.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import shutil
import socket
import sqlite3
import traceback
import uuid
import zlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, TypeVar, Union

from osgeo import gdal

from .errors import OutputError
from .gdal_exceptions import gdal_exceptions, quiet
from .names import file_part

PathLike = Union[str, os.PathLike]
F = TypeVar("F", bound=Callable[..., Any])

# GDAL and OGR may write these beside a file; they belong to the temporary output too, and
# a replaced output loses its old ones (stale statistics, overviews or a GeoPackage journal).
_SIDECAR_SUFFIXES = (".aux.xml", ".ovr", ".msk", "-journal", "-wal", "-shm")
NAME_MAX = 255  # bytes of one file name (Linux, macOS; Windows counts characters, as many)
_PARTIAL = ".partial-"


def check_writable(path: PathLike, layers: bool = True) -> Path:
    """Fail early, with a clear message, if ``path`` cannot be created (with ``layers``, or over a
    GeoPackage of several layers: :func:`_refuse_several_layers`)."""
    target = Path(path).expanduser().resolve()
    folder = target.parent
    if not folder.is_dir():
        raise OutputError(f"Output folder does not exist: {folder}")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"Output folder is not writable: {folder}")
    if target.is_dir():
        raise OutputError(f"Output path is a folder, not a file: {target}")
    if layers:
        _refuse_several_layers(target)
    return target


def _refuse_several_layers(target: Path) -> None:
    """Refuse a GeoPackage output that holds more than one layer or table of the user's: SRL replaces the
    file whole, so the others (a QGIS project stored in it too) would go. One layer, the analyst's to
    replace by naming the file, is replaced as before."""
    layers, tables = _geopackage_tables(target)
    names = layers + tables
    if len(names) > 1:
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        kinds = "layers and tables" if tables else "layers"
        raise OutputError(
            f"{target} is a GeoPackage holding {len(names)} {kinds} ({shown}); SRL writes a file of its own "
            "and would replace them all. Choose a new file."
        )


def _geopackage_tables(target: Path) -> tuple[list[str], list[str]]:
    """The layers of an existing GeoPackage, and its other tables but GeoPackage's own (none for any
    other file): a project's GeoPackage of roads and parcels named as an output was replaced whole by
    the one layer written, and so was one of a single layer beside a QGIS project stored in it (a table
    ``qgis_projects``, no layer)."""
    if target.suffix.lower() != ".gpkg" or not target.is_file():
        return [], []
    try:
        with contextlib.closing(sqlite3.connect(f"{target.as_uri()}?mode=ro", uri=True)) as db:
            layers = [row[0] for row in db.execute("SELECT table_name FROM gpkg_contents")]
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.Error:
        return [], []  # not a GeoPackage (yet): nothing of the user's to name
    own = ("gpkg_", "rtree_", "sqlite_")
    return layers, [t for t in tables if t not in layers and not t.lower().startswith(own)]


def sidecars(path: PathLike) -> list[Path]:
    """The files GDAL/OGR may keep beside ``path`` (statistics, overviews, journals), of names a file can
    have: one past :data:`NAME_MAX` cannot exist, and looking at it raised (ENAMETOOLONG)."""
    return [side for side in (_sidecar(path, s) for s in _SIDECAR_SUFFIXES) if side is not None]


def _sidecar(path: PathLike, suffix: str) -> Optional[Path]:
    """``path`` + ``suffix``, or None where that name is past :data:`NAME_MAX`."""
    fits = len(os.fsencode(Path(path).name)) + len(suffix) <= NAME_MAX
    return Path(str(path) + suffix) if fits else None


def remove_with_sidecars(path: PathLike) -> None:
    """Delete a file (or a partial folder) and the sidecars GDAL/OGR may have written beside it."""
    path = Path(path)
    with contextlib.suppress(OSError):  # a name too long to look at: nothing of it to remove
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
    for candidate in [path] + sidecars(path):
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            candidate.unlink()


def _host_tag() -> str:
    """Short tag of this machine, so that a pid is only judged dead on the machine that owns it."""
    return f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFFFF:06x}"


_OWNER_BYTES = len(f"{_PARTIAL}{2**22}-000000-00000000")  # what partial_path adds, pid up to 2^22


def fitting_name(name: str, added: int) -> str:
    """``name``, or its start and a checksum of it, so that ``added`` more bytes still fit in
    :data:`NAME_MAX`: the hidden names made beside an output of 226-255 bytes (valid; 76 Chinese characters
    make one) passed the limit, and the run failed as "a bug in SRL"."""
    encoded, room = os.fsencode(name), NAME_MAX - added
    if len(encoded) <= room:
        return name
    mark = f"~{zlib.crc32(encoded):08x}"
    return encoded[: room - len(mark)].decode("utf-8", "ignore") + mark  # "ignore": a character cut in two


def _partial_stem(target: Path) -> str:
    """``target``'s stem as partial names start with it (:func:`fitting_name`); GDAL may write the partial
    file's sidecars beside it."""
    sidecar = max(map(len, _SIDECAR_SUFFIXES))
    return fitting_name(target.stem, 1 + _OWNER_BYTES + len(os.fsencode(target.suffix)) + sidecar)


def partial_path(target: PathLike) -> Path:
    """The hidden temporary name beside ``target``, owned by this process (same suffix, for GDAL)."""
    target = Path(target)
    owner = f"{os.getpid()}-{_host_tag()}-{uuid.uuid4().hex[:8]}"
    return target.with_name(f".{_partial_stem(target)}{_PARTIAL}{owner}{target.suffix}")


def output_name(path: PathLike) -> str:
    """The file name of ``path`` as an output: for a temporary name made by :func:`partial_path`
    (``.<stem>.partial-<pid>-<host>-<random><suffix>``), the output's own, which is what a message
    about the output must name."""
    name = Path(path).name
    stem, found, rest = name[1:].partition(_PARTIAL)
    owner, dot, suffix = rest.partition(".")
    if not (name.startswith(".") and found and len(owner.split("-")) == 3):
        return name
    return stem + dot + suffix


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there: never judge it dead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_partials(target: PathLike) -> list[Path]:
    """Remove the partial files of ``target`` whose owner process is dead; return what was removed.

    Only names made by :func:`partial_path` on this machine are considered: a partial file of
    a live run, of another machine, or of unknown origin is left alone (and, on Windows, all).
    """
    target = Path(target)
    prefix, host = f".{_partial_stem(target)}{_PARTIAL}", _host_tag()
    removed = []
    if not target.parent.is_dir():
        return removed
    for entry in target.parent.iterdir():
        name = entry.name
        if not name.startswith(prefix) or not name.endswith(target.suffix):
            continue
        owner = name[len(prefix) : len(name) - len(target.suffix)].split("-")
        if len(owner) != 3 or not owner[0].isdigit() or owner[1] != host:
            continue
        if not _pid_alive(int(owner[0])):
            remove_with_sidecars(entry)
            removed.append(entry)
    return removed


def same_file(a: Path, b: Path) -> bool:
    """True when two paths name one file: equal once resolved, or the same inode (hard link, mount)."""
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def _commit(pending: Sequence[tuple[Path, Path]]) -> None:
    """Rename finished temporaries onto their targets; the targets' old sidecars go with them."""
    for tmp, target in pending:
        os.replace(tmp, target)
        for suffix in _SIDECAR_SUFFIXES:
            new, old = _sidecar(tmp, suffix), _sidecar(target, suffix)
            if new is not None and new.exists():
                if old is not None:
                    os.replace(new, old)
                else:  # the output's name leaves no room for it
                    new.unlink()
            elif old is not None:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()


@dataclass
class _Run:
    inputs: list[Path]
    outputs: list[Path]
    together: bool
    pending: list[tuple[Path, Path]] = field(default_factory=list)


_CURRENT: ContextVar[Optional[_Run]] = ContextVar("srl_output_run", default=None)


def _paths(values: Iterable[Any]) -> list[Path]:
    """Path-like values (lists flattened, None skipped), resolved."""
    found: list[Path] = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            found += _paths(value)
        elif isinstance(value, (str, os.PathLike)) and str(value):  # a layer of a file: the file
            found.append(Path(file_part(str(value))).expanduser().resolve())
    return found


def _names(values: Iterable[Any]) -> list[str]:
    """The values as given (lists flattened, None skipped): GDAL names such as ``vrt://file?bands=1``."""
    found: list[str] = []
    for value in values:
        if isinstance(value, (list, tuple)):
            found += _names(value)
        elif isinstance(value, (str, os.PathLike)) and str(value):
            found.append(str(value))
    return found


def _with_raster_files(values: Iterable[Any]) -> list[Path]:
    """The inputs' paths and every file GDAL reads for those that are rasters, and so on through every
    level: the sources behind a VRT (and behind a VRT it reads), a ``vrt://`` name's file, a raster's
    mask or overviews. Writing over one of them destroys the input as surely as writing over the file
    named (a ``vrt://`` input and a second-level VRT source were both overwritten)."""
    values = list(values)
    found = _paths(values)
    pending = [str(p) for p in found] + [n for n in _names(values) if _gdal_name(n)]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for file in _raster_files(name):
            if file not in found:
                found.append(file)
                pending.append(str(file))
    return found


def raster_input_files(name: str) -> list[Path]:
    """The files behind raster ``name`` at every level (itself, a VRT's sources, a ``vrt://`` name's
    file, masks and overviews); empty when it is no local file or GDAL name that opens as a raster."""
    return _with_raster_files([name])


def _is_file(name: str) -> bool:
    """Whether ``name`` is a local file; False for a name the system cannot look at (over 255 bytes:
    a layer's source text is no file)."""
    try:
        return Path(name).is_file()
    except OSError:
        return False


def _gdal_name(name: str) -> bool:
    """Whether ``name`` is a dataset name GDAL opens that is no local path (``vrt://``, ``/vsi...``)."""
    return name.startswith(("vrt://", "/vsi"))


@gdal_exceptions()
def _raster_files(name: str) -> list[Path]:
    """The files GDAL lists for ``name`` opened as a raster (resolved); none when it is neither a local
    file nor a GDAL name that GDAL opens as a raster (a vector layer, a model folder, a remote path)."""
    if not (_is_file(name) or _gdal_name(name)):
        return []
    try:
        with quiet():
            ds = gdal.OpenEx(name, gdal.OF_RASTER)
    except RuntimeError:
        return []
    files = (ds.GetFileList() or []) if ds is not None else []
    return [Path(f).expanduser().resolve() for f in files]


def _check_against(outputs: Sequence[Path], inputs: Sequence[Path]) -> None:
    for i, out in enumerate(outputs):
        for inp in inputs:
            if same_file(out, inp):
                raise OutputError(
                    f"The output {out} would overwrite the input {inp} of this run; "
                    "choose another output path."
                )
        for other in outputs[:i]:
            if same_file(out, other):
                raise OutputError(
                    f"Two outputs of this run are the same file ({out}); give each its own path."
                )


@contextlib.contextmanager
def output_run(
    outputs: Iterable[Any], inputs: Iterable[Any] = (), together: bool = True
) -> Iterator[list[Path]]:
    """Validate a run's outputs before any work, and write them together or not at all.

    Every output must be creatable (:func:`check_writable`), must not be one of ``inputs``
    nor a file GDAL reads for a raster input (a VRT's sources; compared resolved and by file
    identity) and must differ from the other outputs.
    Stale partial files of the outputs left by dead processes are removed. Outputs written
    with :func:`atomic_output` inside the block are renamed into place when the outermost
    run ends without an exception; otherwise all are removed. Yields the resolved outputs.
    ``together=False`` only validates: each output is renamed as soon as it is complete
    (for callers that read an output back before the run ends).
    """
    outer = _CURRENT.get()
    ins = _with_raster_files(inputs) + (outer.inputs if outer is not None else [])
    outs = [check_writable(p, layers=False) for p in _paths(outputs)]
    _check_against(outs, ins)  # first: an output that is an input is said as such
    for out in outs:
        _refuse_several_layers(out)
    for out in outs:
        remove_stale_partials(out)
    run = _Run(ins, outs, together)
    token = _CURRENT.set(run)
    try:
        yield outs
    except BaseException:
        _CURRENT.reset(token)
        for tmp, _ in run.pending:
            remove_with_sidecars(tmp)
        raise
    _CURRENT.reset(token)
    if outer is not None and outer.together:
        outer.pending += run.pending
        return
    try:
        _commit(run.pending)
    except OSError as exc:
        for tmp, _ in run.pending:
            remove_with_sidecars(tmp)
        raise OutputError(f"Could not write the outputs: {exc.strerror or exc}") from exc


def guards_files(*, outputs: Sequence[str], inputs: Sequence[str] = ()) -> Callable[[F], F]:
    """Run the decorated function in an :func:`output_run` of its arguments named ``outputs``/``inputs``.

    Public functions that write files declare here which arguments are read and which are
    written, so the checks of :func:`output_run` hold for every caller (Python, CLI, QGIS).
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs).arguments
            with output_run([bound.get(n) for n in outputs], [bound.get(n) for n in inputs]):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def release_error_frames(exc: BaseException) -> None:
    """Drop the locals of the finished frames of ``exc``'s traceback; call it before closing an output.

    Those frames (GDAL's own wrappers among them) can hold the output's dataset, or a band or layer
    of it (with GDAL >= 3.8 a band keeps its dataset alive). While the error lives, the file would
    then stay open after the writer lets go of it: removed while open (refused on Windows, leaving
    the partial file) and closed whenever the error is collected, after its layers or not. The
    errors it was raised from (``__cause__``, ``__context__``) hold frames too.
    """
    seen: set[int] = set()
    pending: list[Optional[BaseException]] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        pending += [error.__cause__, error.__context__]


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` only on success.

    The temporary name keeps the real suffix so that GDAL/OGR pick the right driver.
    On any exception (cancel included) the temporary file and its sidecars are removed.
    Inside an :func:`output_run` the rename waits for the end of the run; alone, this is a
    run of its own with one output.
    """
    run = _CURRENT.get()
    if run is None:
        with output_run([path]), atomic_output(path) as tmp:
            yield tmp
        return
    target = check_writable(path)
    _check_against([target], run.inputs)
    tmp = partial_path(target)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"Nothing was written for {target}")
    except OSError as exc:
        remove_with_sidecars(tmp)
        raise OutputError(f"Could not write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        remove_with_sidecars(tmp)
        raise
    if run.together:
        run.pending.append((tmp, target))
        return
    try:
        _commit([(tmp, target)])
    except OSError as exc:
        remove_with_sidecars(tmp)
        raise OutputError(f"Could not write {target}: {exc.strerror or exc}") from exc
