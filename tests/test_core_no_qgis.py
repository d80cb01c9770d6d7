"""srl_core must stay usable without QGIS: no module imports qgis, directly or indirectly."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_BLOCK_QGIS_AND_IMPORT_ALL = r"""
import importlib, importlib.abc, pkgutil, sys

class BlockQgis(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "qgis" or name.startswith("qgis.") or name.startswith("srl_plugin"):
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, BlockQgis())
import srl_core
names = [m.name for m in pkgutil.walk_packages(srl_core.__path__, "srl_core.")
         if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
assert not any(m == "qgis" or m.startswith("qgis.") for m in sys.modules)
print(len(names))
"""


def test_every_srl_core_module_imports_with_qgis_blocked():
    result = subprocess.run(
        [sys.executable, "-c", _BLOCK_QGIS_AND_IMPORT_ALL], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 5


def test_no_source_file_in_srl_core_or_training_names_qgis_or_the_plugin():
    offenders = []
    for folder in ("srl_core", "training"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in ("qgis", "srl_plugin")]
    assert offenders == []


def test_command_line_runs_without_qgis():
    result = subprocess.run(
        [sys.executable, "-m", "srl_core", "models"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
