"""Build the installable plugin: ``build/srl_qgis/`` (sources linked) and ``dist/srl_qgis-<version>.zip``.

The zip holds one folder, ``srl_qgis/``, with the shim ``__init__.py``, ``metadata.txt``,
``LICENSE``, ``srl_plugin/``, ``srl_core/``, ``training/`` and ``resources/`` — nothing else: no tests,
no caches, no partial model folders. QGIS's "Install from ZIP" takes it as it is.
"""

from __future__ import annotations

import argparse
import configparser
import os
import shutil
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "srl_qgis"
PACKAGES = ("srl_plugin", "srl_core", "training", "resources")
TOP_FILES = ("metadata.txt", "LICENSE")
MAX_ZIP_BYTES = 25_000_000  # plugins.qgis.org's limit (its validator: 25,000,000 bytes, not 25 MiB)
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache", "tests"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".aux.xml", ".orig", ".rej", ".swp")


def plugin_version() -> str:
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    return meta["general"]["version"]


def build_tree(build_dir: Path) -> Path:
    """``build/srl_qgis``: the shim and metadata copied, the packages linked (edits show at once)."""
    target = build_dir / PLUGIN_NAME
    if target.exists() or target.is_symlink():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copy2(ROOT / "packaging" / "plugin_init.py", target / "__init__.py")
    for name in TOP_FILES:
        shutil.copy2(ROOT / name, target / name)
    for name in PACKAGES:
        os.symlink(ROOT / name, target / name, target_is_directory=True)
    return target


def _included(path: Path) -> bool:
    parts = set(path.parts)
    if parts & _SKIP_DIRS or any(p.startswith(".") for p in path.parts):
        return False
    return not path.name.endswith(_SKIP_SUFFIXES)


def build_zip(tree: Path, out_dir: Path) -> Path:
    """Zip the tree (following links) into ``out_dir``; refuse if it exceeds 25 MB."""
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{PLUGIN_NAME}-{plugin_version()}.zip"
    partial = archive.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for dirpath, dirnames, filenames in os.walk(tree, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                rel = path.relative_to(tree.parent)
                if _included(rel.relative_to(PLUGIN_NAME)):
                    zf.write(path, rel.as_posix())
    size = partial.stat().st_size
    if size > MAX_ZIP_BYTES:
        partial.unlink()
        raise SystemExit(f"Plugin zip would be {size / 1e6:.1f} MB, over the 25 MB limit.")
    os.replace(partial, archive)
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "dist"), help="folder for the zip")
    parser.add_argument("--build", default=str(ROOT / "build"), help="folder for the linked plugin tree")
    args = parser.parse_args()
    tree = build_tree(Path(args.build))
    archive = build_zip(tree, Path(args.out))
    print(f"{archive} ({archive.stat().st_size / 1e6:.2f} MB); plugin tree: {tree}")


if __name__ == "__main__":
    main()
