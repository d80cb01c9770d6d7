"""The plugin zip: what QGIS's "Install from ZIP" gets must be small, clean and loadable."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, str(ROOT / "packaging" / "build_zip.py"), "--out", str(out), "--build", str(build)],
        check=True,
        cwd=ROOT,
    )
    (archive,) = out.glob("srl_qgis-*.zip")
    return archive


def test_zip_is_one_plugin_folder_under_25_mb_without_junk(plugin_zip):
    assert plugin_zip.stat().st_size < 25_000_000  # plugins.qgis.org's limit, in bytes
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert {n.split("/")[0] for n in names} == {"srl_qgis"}
    required = ("__init__.py", "metadata.txt", "LICENSE", "srl_plugin/__init__.py", "srl_core/__init__.py")
    assert all(f"srl_qgis/{name}" in names for name in required)
    junk = [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n or ".partial" in n]
    assert junk == []
    assert any(n.startswith("srl_qgis/resources/icons/") for n in names)


def test_metadata_has_every_field_qgis_requires():
    import configparser

    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    general = meta["general"]
    keys = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository")
    for key in keys:
        assert general.get(key, "").strip(), key
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert (ROOT / general["icon"]).is_file()


_OUR_PACKAGES = ("srl_core", "srl_plugin", "srl_qgis")


def _our_modules() -> dict:
    return {k: v for k, v in sys.modules.items() if k.split(".")[0] in _OUR_PACKAGES}


def test_unzipped_plugin_loads_and_unloads_in_qgis(plugin_zip, tmp_path, qgis_iface, monkeypatch):
    """Import the plugin from the extracted zip alone (the source tree hidden), as QGIS would."""
    from qgis.core import QgsApplication

    zipfile.ZipFile(plugin_zip).extractall(tmp_path)
    saved = _our_modules()
    for name in saved:
        del sys.modules[name]
    hidden = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    monkeypatch.setattr(sys, "path", [str(tmp_path), *hidden])
    try:
        import srl_qgis

        plugin = srl_qgis.classFactory(qgis_iface)
        plugin.initGui()
        assert sys.modules["srl_core"].__file__.startswith(str(tmp_path))
        assert sys.modules["srl_plugin"].__file__.startswith(str(tmp_path))
        registry = QgsApplication.processingRegistry()
        provider = registry.providerById("srl")
        assert provider is not None and len(provider.algorithms()) >= 1
        plugin.unload()
        assert registry.providerById("srl") is None
        # an upgrade: QGIS forgets the modules named after the folder, and imports it again; the new
        # srl_core must run, not the one still in memory (it did until QGIS restarted)
        old_core = sys.modules["srl_core"]
        for name in [n for n in sys.modules if n.split(".")[0] == "srl_qgis"]:
            del sys.modules[name]
        import srl_qgis  # noqa: F811

        srl_qgis.classFactory(qgis_iface)
        import srl_core

        assert srl_core is not old_core and srl_core.__file__.startswith(str(tmp_path))
    finally:
        for name in _our_modules():
            del sys.modules[name]
        sys.modules.update(saved)
