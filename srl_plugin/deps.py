"""Check, before anything imports srl_core, that QGIS's Python has what srl_core needs.

QGIS ships its own Python; torch and friends are usually not in it. Importing the
model code without them would raise inside QGIS's plugin loader and show a traceback.
Instead the plugin asks :func:`missing_dependencies` first; when something is missing it
still registers its Processing provider (so that ``qgis_process`` and the toolbox know the
algorithms), every algorithm refuses to run with one message holding the exact command that
installs the missing packages into *QGIS's own* interpreter (:func:`qgis_python`: the one
whose version and prefix are those of the running Python, never merely the first
``python3`` on PATH, which may be a version manager's shim).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# import name -> pinned requirement; keep in step with requirements.txt (a test checks it).
REQUIREMENTS = {
    "torch": "torch==2.13.0",
    "safetensors": "safetensors==0.8.0",
    "sklearn": "scikit-learn==1.5.2",
    "shapely": "shapely==2.0.6",
}
# Python 3.9 (the QGIS 3.22 and 3.28 installers for Windows and macOS): the pins above have no wheels
# for it (torch and safetensors need 3.10), so the command was one that could never succeed. These
# are the newest releases with 3.9 wheels (PyPI, 28 Nov 2026); SRL is tested with the pins above only.
REQUIREMENTS_PY39 = {
    "torch": "torch==2.8.0",
    "safetensors": "safetensors==0.7.0",
    "sklearn": "scikit-learn==1.5.2",
    "shapely": "shapely==2.0.6",
}
# Oldest releases srl_core runs with (HDBSCAN came in scikit-learn 1.3): an older one that is present
# counts as missing, with the same command (Debian 12's scikit-learn is 1.2.1).
MINIMUM_VERSIONS = {"torch": (2, 1), "safetensors": (0, 4), "sklearn": (1, 3), "shapely": (2, 0)}
DISTRIBUTIONS = {"sklearn": "scikit-learn"}  # import name -> distribution, where they differ
# Shipped with every QGIS; missing only in a broken installation, so named but not pip-installed.
QGIS_PROVIDED = ("numpy", "osgeo")

TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


@dataclass(frozen=True)
class DependencyReport:
    """What is missing and how to fix it, ready to show to the analyst."""

    missing: tuple[str, ...]
    command: str

    @property
    def ok(self) -> bool:
        return not self.missing

    def message(self) -> str:
        names = ", ".join(self.missing)
        return (
            f"SRL needs Python packages that QGIS cannot find: {names}. "
            "Close QGIS, run this command in a terminal, then start QGIS again:\n\n"
            f"{self.command}"
        )


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(module: str) -> Optional[tuple[int, ...]]:
    """The installed release of ``module``'s distribution as numbers (None when unknown), without
    importing it (torch takes seconds)."""
    from importlib import metadata

    try:
        text = metadata.version(DISTRIBUTIONS.get(module, module))
    except metadata.PackageNotFoundError:
        return None
    release = re.match(r"\d+(?:\.\d+)*", text)  # 2.13.0+cpu -> 2.13.0, 2.0rc1 -> 2.0 (not 2.01)
    return tuple(int(part) for part in release.group().split(".")[:3]) if release else None


def too_old(module: str) -> bool:
    """Whether ``module`` is installed in a release older than srl_core runs with."""
    found, needed = _version(module), MINIMUM_VERSIONS.get(module)
    return bool(found and needed and found < needed)


def missing_dependencies(modules: Optional[list[str]] = None) -> list[str]:
    """Import names among ``modules`` (default: everything srl_core needs) that are absent, or present in
    a release too old (:data:`MINIMUM_VERSIONS`): scikit-learn 1.2 passed, then every clustering said
    "the module 'sklearn' is missing"."""
    wanted = modules if modules is not None else [*REQUIREMENTS, *QGIS_PROVIDED]
    return [m for m in wanted if not _installed(m) or too_old(m)]


def pinned() -> dict[str, str]:
    """The requirements for the running Python: :data:`REQUIREMENTS`, or on 3.9 :data:`REQUIREMENTS_PY39`."""
    return REQUIREMENTS_PY39 if sys.version_info < (3, 10) else REQUIREMENTS


def _interpreter_folders() -> list[Path]:
    """Folders the running Python's executable can be in: its prefix's and base prefix's bin, sysconfig's."""
    return [Path(folder) for folder in (Path(sys.prefix) / "bin", sysconfig.get_config_var("BINDIR"),
                                        Path(sys.base_prefix) / "bin", sys.prefix, sys.base_prefix) if folder]


def _interpreter_candidates() -> list[Path]:
    """Where the running Python's own executable lives, most specific first (from sysconfig and prefixes)."""
    version = sysconfig.get_config_var("VERSION") or f"{sys.version_info[0]}.{sys.version_info[1]}"
    names = [f"python{version}", f"python{sys.version_info[0]}", "python"]
    if sys.platform == "win32":
        names = ["python.exe", f"python{version.replace('.', '')}.exe"]
    folders = []
    for folder in _interpreter_folders():
        if folder and Path(folder) not in folders:
            folders.append(Path(folder))
    return [folder / name for folder in folders for name in names]


def qgis_python() -> str:
    """The Python interpreter QGIS runs.

    Inside QGIS ``sys.executable`` is the qgis binary, and under ``qgis_process`` it is whatever
    ``python3`` comes first on PATH (a version manager's shim, say): neither is trusted unless it
    lies in the running interpreter's own folders. The interpreter is found from ``sysconfig``
    (BINDIR, VERSION) and ``sys.prefix`` / ``sys.base_prefix``: ``/usr/bin/python3.11`` for
    Debian's QGIS.
    """
    exe = Path(sys.executable)
    own = {folder.resolve() for folder in _interpreter_folders()}
    if exe.name.lower().startswith("python") and exe.is_file() and exe.parent.resolve() in own:
        return str(exe)
    for candidate in _interpreter_candidates():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    if sys.platform == "win32":
        return "python"  # inside the OSGeo4W Shell, which puts QGIS's Python first on PATH
    versioned = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return shutil.which(versioned) or f"/usr/bin/{versioned}"


def _externally_managed() -> bool:
    """True where pip refuses --user installs without an override (PEP 668, e.g. Debian 12)."""
    stdlib = sysconfig.get_paths().get("stdlib", "")
    return bool(stdlib) and os.path.exists(os.path.join(stdlib, "EXTERNALLY-MANAGED"))


def install_command(missing: list[str]) -> str:
    """The exact shell command that installs ``missing`` into QGIS's Python on this platform."""
    pins = [pinned()[m] for m in missing if m in REQUIREMENTS]
    broken = [m for m in missing if m not in REQUIREMENTS]
    if not pins:
        return f"Reinstall QGIS: its own Python modules are missing ({', '.join(broken)})."
    upgrade = ["--upgrade"] if any(map(too_old, missing)) else []  # pip leaves an old release otherwise
    args = [f'"{qgis_python()}"', "-m", "pip", "install", *upgrade]
    if sys.platform.startswith("linux"):
        args.append("--user")
        if _externally_managed():
            args.append("--break-system-packages")
    if "torch==" in " ".join(pins) and sys.platform != "darwin":
        # The default PyPI torch wheel on Linux bundles CUDA (several GB); the CPU one is enough.
        args += ["--extra-index-url", TORCH_CPU_INDEX]
    command = " ".join(args + pins)
    if sys.platform == "win32":
        command = "In the OSGeo4W Shell (Start menu > QGIS > OSGeo4W Shell): " + command
    return command


# Optional modules (training only) whose pip name differs from the import name.
PIP_NAMES = {"PIL": "Pillow"}


def missing_module_message(module: str, error: Optional[BaseException] = None) -> str:
    """What to tell the analyst when a module turns out to be missing at run time, or present but failing
    to import (a DLL that does not load): that was called missing, with an install command that changes
    nothing, or "?" when the error named no module."""
    top = (module or "").split(".")[0]
    if not top:
        return (f"A Python module failed to import in QGIS's Python: {error}. Reinstall SRL's dependencies: "
                f"{install_command(list(REQUIREMENTS))}")
    if top in REQUIREMENTS:
        command = install_command([top])
    else:
        command = f'"{qgis_python()}" -m pip install {PIP_NAMES.get(top, top)}'
    broken = error is not None and not isinstance(error, ModuleNotFoundError)
    if broken and _installed(top) and not too_old(top):
        return (f"The Python module '{top}' is installed in QGIS's Python but fails to import: {error}. "
                f"Reinstall it: {command.replace(' install ', ' install --force-reinstall ', 1)}")
    return f"The Python module '{top}' is missing in QGIS's Python. Install it with: {command}"


def import_failure() -> Optional[str]:
    """The message for the first of srl_core's requirements that is present but fails to import, else
    None. A broken install (a DLL that does not load) raises OSError or ImportError from inside the
    package, which an algorithm reported as "a bug in SRL, not in your data". Run where the imports cost
    nothing extra: an algorithm imports them anyway."""
    import importlib

    for module in REQUIREMENTS:
        try:
            importlib.import_module(module)
        except Exception as exc:  # whatever a broken package raises while it loads
            return missing_module_message(module, exc)
    return None


def check() -> DependencyReport:
    """Run the check once; the plugin calls this in ``initGui`` before importing srl_core."""
    missing = missing_dependencies()
    return DependencyReport(missing=tuple(missing), command=install_command(missing) if missing else "")
