"""Check, before anything imports srl_core, that QGIS's Python has what srl_core needs.

QGIS ships its own Python; torch and friends are usually not in it. Importing the
processing algorithms or the model code without them would raise inside QGIS's plugin
loader and show a traceback. Instead the plugin asks :func:`missing_dependencies` first,
and when something is missing it registers nothing that needs it and shows one message
with the exact command that installs the missing packages for this platform.
"""

from __future__ import annotations

import importlib.util
import os
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


def missing_dependencies(modules: Optional[list[str]] = None) -> list[str]:
    """Import names among ``modules`` (default: everything srl_core needs) that are absent."""
    wanted = modules if modules is not None else [*REQUIREMENTS, *QGIS_PROVIDED]
    return [m for m in wanted if not _installed(m)]


def qgis_python() -> str:
    """The Python interpreter QGIS runs (``sys.executable`` is the qgis binary inside QGIS)."""
    exe = Path(sys.executable)
    if exe.name.lower().startswith("python"):
        return str(exe)
    if sys.platform == "win32":
        return "python"  # inside the OSGeo4W Shell, which puts QGIS's Python first on PATH
    if sys.platform == "darwin":
        bundled = Path(sys.prefix) / "bin" / "python3"
        if bundled.exists():
            return str(bundled)
    return shutil.which("python3") or "/usr/bin/python3"


def _externally_managed() -> bool:
    """True where pip refuses --user installs without an override (PEP 668, e.g. Debian 12)."""
    stdlib = sysconfig.get_paths().get("stdlib", "")
    return bool(stdlib) and os.path.exists(os.path.join(stdlib, "EXTERNALLY-MANAGED"))


def install_command(missing: list[str]) -> str:
    """The exact shell command that installs ``missing`` into QGIS's Python on this platform."""
    pins = [REQUIREMENTS[m] for m in missing if m in REQUIREMENTS]
    broken = [m for m in missing if m not in REQUIREMENTS]
    if not pins:
        return f"Reinstall QGIS: its own Python modules are missing ({', '.join(broken)})."
    args = [f'"{qgis_python()}"', "-m", "pip", "install"]
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


def missing_module_message(module: str) -> str:
    """What to tell the analyst when a module turns out to be missing at run time."""
    top = (module or "?").split(".")[0]
    if top in REQUIREMENTS:
        command = install_command([top])
    else:
        command = f'"{qgis_python()}" -m pip install {PIP_NAMES.get(top, top)}'
    return f"The Python module '{top}' is missing in QGIS's Python. Install it with: {command}"


def check() -> DependencyReport:
    """Run the check once; the plugin calls this in ``initGui`` before importing srl_core."""
    missing = missing_dependencies()
    return DependencyReport(missing=tuple(missing), command=install_command(missing) if missing else "")
