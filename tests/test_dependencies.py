"""A new user without torch: the provider still registers, every algorithm refuses with the install
command, and that command names QGIS's own interpreter and installs what it names.

QGIS embeds Python (``sys.executable`` is the qgis binary). The command must name the interpreter
whose version and prefix are the running Python's, not the first ``python3`` on PATH (a version
manager's shim, say). The command itself is run in a throwaway venv made from that interpreter,
against a local wheelhouse of stand-in wheels with the pinned names and versions, so the test
checks that its pins resolve and install the modules the plugin imports, without downloading GBs.
"""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback

import srl_plugin
from srl_plugin import deps

PROBE = "import sys; print(sys.version_info[:2], sys.base_prefix)"


def _probe(python: str) -> str:
    return subprocess.run([python, "-c", PROBE], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(params=["qgis binary", "shim"])
def inside_qgis(request, monkeypatch, tmp_path):
    """As inside QGIS (sys.executable is the qgis binary) or qgis_process (sys.executable is the first
    python3 on PATH), with a foreign python3 shim first on PATH."""
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / "python3"
    shim.write_text("#!/bin/sh\necho 'a version manager shim' >&2\nexit 3\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis" if request.param == "qgis binary" else str(shim))
    return shim


@pytest.fixture
def torch_hidden(monkeypatch):
    real_find_spec = deps.importlib.util.find_spec
    monkeypatch.setattr(deps.importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))


def test_the_interpreter_is_the_running_one_not_the_first_on_path(inside_qgis):
    python = deps.qgis_python()
    assert python != str(inside_qgis) and Path(python).is_file()
    assert _probe(python) == f"{tuple(sys.version_info[:2])} {sys.base_prefix}"


def test_without_torch_the_provider_registers_and_every_algorithm_refuses_with_the_command(
    qgis_iface, qgis_processing, torch_hidden, inside_qgis
):
    instance = srl_plugin.classFactory(qgis_iface)
    instance.initGui()
    try:
        provider = QgsApplication.processingRegistry().providerById("srl")
        assert provider is not None and len(provider.algorithms()) >= 10
        command = deps.check().command
        assert "torch==2.13.0" in command and str(inside_qgis) not in command
        context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
        for alg in provider.algorithms():
            ok, message = alg.checkParameterValues({}, context)
            assert not ok and command in message, alg.id()
            with pytest.raises(Exception, match="pip install"):
                alg.processAlgorithm({}, context, feedback)
    finally:
        instance.unload()


def _stand_in_wheel(folder: Path, requirement: str, module: str) -> None:
    """A minimal pure-Python wheel for ``name==version`` providing import name ``module``."""
    name, version = requirement.split("==")
    dist = f"{name.replace('-', '_')}-{version}"
    info = f"{dist}.dist-info"
    with zipfile.ZipFile(folder / f"{dist}-py3-none-any.whl", "w") as wheel:
        wheel.writestr(f"{module}/__init__.py", f"STAND_IN = {requirement!r}\n")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")


@pytest.fixture
def venv_python(tmp_path, inside_qgis) -> str:
    """A throwaway venv (no system site packages) made by the interpreter the command names."""
    venv = tmp_path / "venv"
    made = subprocess.run([deps.qgis_python(), "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"this interpreter cannot make a venv (python3-venv missing?): {made.stderr[-300:]}")
    python = str(venv / "bin" / "python")
    assert _probe(python).startswith(str(tuple(sys.version_info[:2])))
    return python


def _pip(venv_python: str, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}  # nothing but what is given
    return subprocess.run([venv_python, *args], capture_output=True, text=True, env=env, timeout=300)


def test_the_command_installs_what_it_names_in_a_venv_of_the_same_interpreter(tmp_path, venv_python):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for module, requirement in deps.REQUIREMENTS.items():
        _stand_in_wheel(wheels, requirement, module)
    args = shlex.split(deps.install_command(list(deps.REQUIREMENTS)))
    assert Path(args[0]).resolve() == Path(deps.qgis_python()).resolve()
    assert args[1:4] == ["-m", "pip", "install"]
    # --user / --break-system-packages are for the system interpreter: a venv has no user site
    run = _pip(venv_python, [a for a in args[1:] if a not in ("--user", "--break-system-packages")]
               + ["--no-index", "--find-links", str(wheels)])
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-1500:]
    probe = "import torch, safetensors, sklearn, shapely; print(torch.STAND_IN)"
    imported = subprocess.run([venv_python, "-c", probe], capture_output=True, text=True)
    assert imported.stdout.strip() == deps.REQUIREMENTS["torch"]


def test_the_pinned_torch_wheel_fits_the_interpreter(venv_python):
    """Where a real torch wheel of the pinned version is at hand, that interpreter's pip accepts it."""
    version = deps.REQUIREMENTS["torch"].split("==")[1]
    folders = os.environ.get("PIP_FIND_LINKS", "").split()
    local = [w for d in folders for w in glob.glob(f"{d}/torch-{version}*.whl")]
    if not local:
        pytest.skip("no local torch wheel (PIP_FIND_LINKS) to check against")
    run = _pip(venv_python, ["-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", "--find-links",
                             str(Path(local[0]).parent), deps.REQUIREMENTS["torch"]])
    assert run.returncode == 0 and f"torch-{version}" in run.stdout, run.stdout[-1500:] + run.stderr[-1500:]


def test_a_release_too_old_counts_as_missing_and_the_command_upgrades_it(monkeypatch):
    """Debian 12's scikit-learn 1.2 passed the check (it was present), then every clustering said 'the
    module sklearn is missing' (HDBSCAN came in 1.3) with a command that left 1.2 in place."""
    monkeypatch.setattr(deps, "_version", lambda module: (1, 2, 1) if module == "sklearn" else (99,))
    assert deps.missing_dependencies(["sklearn", "torch"]) == ["sklearn"]
    command = deps.install_command(["sklearn"])
    assert "--upgrade" in command and "scikit-learn==1.5.2" in command


def test_python_3_9_gets_requirements_that_have_wheels_for_it(monkeypatch):
    """torch 2.13 and safetensors 0.8 need Python 3.10: on the QGIS 3.22/3.28 installers' 3.9 the
    command could never succeed."""
    monkeypatch.setattr(deps.sys, "version_info", (3, 9, 18, "final", 0))
    command = deps.install_command(["torch", "safetensors"])
    assert "torch==2.8.0" in command and "safetensors==0.7.0" in command and "2.13.0" not in command


def test_a_module_that_is_installed_but_fails_to_import_is_not_called_missing():
    """A DLL that does not load raised ImportError from inside torch: the message said torch was missing
    and gave the install command of what was already there; with no module named it said '?'."""
    error = ImportError("DLL load failed while importing _C: the specified module could not be found")
    said = deps.missing_module_message("torch", error)
    assert "installed in QGIS's Python but fails to import: DLL load failed" in said
    assert "--force-reinstall" in said
    assert "'?'" not in deps.missing_module_message("", ImportError("cannot import name 'x'"))


def test_an_algorithm_says_which_installed_package_fails_to_load(monkeypatch, srl_provider):
    """torch present but failing to load (OSError from a DLL) was 'Internal error ... a bug in SRL'."""
    import importlib.abc
    import importlib.util

    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """safetensors is found, and fails while it loads, as a DLL that does not load makes it."""

        def find_spec(self, name, path=None, target=None):
            return importlib.util.spec_from_loader(name, self) if name == "safetensors" else None

        def create_module(self, spec):
            return None

        def exec_module(self, module):
            raise OSError("[WinError 126] The specified module could not be found")

    monkeypatch.delitem(sys.modules, "safetensors", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    algorithm = srl_provider.algorithm("list_models").create()
    with pytest.raises(QgsProcessingException, match="'safetensors' is installed in QGIS's Python but fails "
                                                     "to import: \\[WinError 126\\]"):
        algorithm.processAlgorithm({}, QgsProcessingContext(), QgsProcessingFeedback())


def test_release_numbers_are_read_as_released(monkeypatch):
    """A pre-release '2.0rc1' read as 2.01, i.e. (2, 1): new enough where 2.0 is not."""
    from importlib import metadata

    for text, expected in (("2.13.0+cpu", (2, 13, 0)), ("1.4.1.post1", (1, 4, 1)), ("2.0rc1", (2, 0)),
                           ("unknown", None)):
        monkeypatch.setattr(metadata, "version", lambda name, text=text: text)
        assert deps._version("torch") == expected
