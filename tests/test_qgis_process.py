"""The plugin through ``qgis_process``, as a new user runs it: installed from its folder, every
algorithm with only its required parameters on the bundled sample data gives a useful result or
refuses with one message naming what to change; without torch it refuses with the install command.

Skipped where ``qgis_process`` is not installed. Debian's ``/usr/bin/qgis_process`` wrapper passes
``--noversioncheck`` (from /etc/default/qgis), which qgis_process rejects, so ``qgis_process.bin``
is used when it is there. The training algorithms are left out: their defaults train for minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from srl_core.embedding_quality import raster_sample, spread

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RASTER = str(ROOT / "resources" / "sample_data" / "nc_landsat7_2000.tif")
MEUSE = str(ROOT / "resources" / "sample_data" / "meuse.gpkg")
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")

pytestmark = pytest.mark.skipif(QGIS_PROCESS is None, reason="qgis_process is not installed")


@pytest.fixture(scope="module")
def qgis_env(tmp_path_factory) -> dict:
    """A fresh QGIS profile (HOME) with the plugin folder on QGIS_PLUGINPATH, enabled."""
    sys.path.insert(0, str(ROOT / "packaging"))
    from build_zip import build_tree

    base = tmp_path_factory.mktemp("qgis_process")
    build_tree(base / "plugins")
    (base / "home").mkdir()
    env = {**os.environ, "HOME": str(base / "home"), "QGIS_PLUGINPATH": str(base / "plugins"),
           "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": ""}
    enabled = subprocess.run([QGIS_PROCESS, "plugins", "enable", "srl_qgis"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert enabled.returncode == 0, enabled.stdout[-2000:] + enabled.stderr[-2000:]
    return env


def qgis_process(env: dict, alg: str, with_deps: bool = True, **parameters) -> tuple[int, dict, str]:
    """(return code, JSON results or {}, log) of ``qgis_process run alg -- KEY=VALUE ...``."""
    if with_deps:  # the test interpreter's packages (torch, ...) on QGIS's Python path
        import torch

        env = {**env, "PYTHONPATH": str(Path(torch.__file__).parent.parent)}
    args = [QGIS_PROCESS, "--json", "run", f"srl:{alg}", "--"] + [f"{k}={v}" for k, v in parameters.items()]
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    try:
        results = json.loads(run.stdout[run.stdout.index("{"):]).get("results", {})
    except ValueError:
        results = {}
    return run.returncode, results, run.stdout + run.stderr


def test_without_torch_every_algorithm_refuses_with_the_command_for_qgis_python(qgis_env):
    probe = subprocess.run(["/usr/bin/env", "-i", "PATH=/usr/bin", sys.base_prefix + "/bin/python3", "-c",
                            "import torch"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip("QGIS's own Python has torch here: nothing is missing")
    code, _, log = qgis_process(qgis_env, "embed_raster", with_deps=False, INPUT=SAMPLE_RASTER,
                                OUTPUT="x.tif")
    assert code != 0 and "not found" not in log
    assert "pip install" in log and "torch==" in log and "shapely==" in log
    assert f"{sys.base_prefix}/bin/python3" in log.replace("//", "/")


def test_embeddings_with_required_parameters_only(qgis_env, tmp_path):
    code, results, log = qgis_process(qgis_env, "embed_raster", INPUT=SAMPLE_RASTER,
                                      OUTPUT=str(tmp_path / "e.tif"))
    assert code == 0, log[-3000:]
    assert spread(raster_sample(results["OUTPUT"])).median_cosine < 0.9 and "Bands chosen" in log
    code, _, log = qgis_process(qgis_env, "embed_raster", INPUT=SAMPLE_RASTER, BANDS="3,2,1",
                                OUTPUT=str(tmp_path / "bands.tif"))
    assert code == 0 and gdal.Open(str(tmp_path / "bands.tif")).GetMetadataItem("SRL_BANDS") == "3,2,1", log
    code, _, log = qgis_process(qgis_env, "embed_points", INPUT=MEUSE, OUTPUT=str(tmp_path / "p.gpkg"))
    assert code == 0 and "local location features" in log, log[-3000:]

    emb = str(tmp_path / "e.tif")
    for alg in ("cluster", "rgb_view"):
        code, results, log = qgis_process(qgis_env, alg, INPUT=emb, OUTPUT=str(tmp_path / f"{alg}.tif"))
        assert code == 0 and np.isfinite(gdal.Open(results["OUTPUT"]).ReadAsArray().astype(float)).any(), log
    code, _, log = qgis_process(qgis_env, "similarity", INPUT=emb)
    assert code != 0 and "'Query coordinate'" in log


def test_analyses_and_models_with_required_parameters_only(qgis_env, tmp_path):
    code, results, log = qgis_process(qgis_env, "interpolate", INPUT=MEUSE, OUTPUT=str(tmp_path / "i.tif"),
                                      OUTPUT_UNCERTAINTY=str(tmp_path / "u.tif"))
    assert code == 0, log[-3000:]
    values = gdal.Open(results["OUTPUT"]).ReadAsArray()
    assert np.isfinite(values).all() and values.min() >= 0 and "Field: cadmium" in log
    code, _, log = qgis_process(qgis_env, "sample_tiles_at_points", INPUT=SAMPLE_RASTER, POINTS=MEUSE,
                                OUTPUT=str(tmp_path / "s.gpkg"))
    assert code != 0 and "None of the 155 points" in log
    code, results, log = qgis_process(qgis_env, "list_models")
    assert code == 0 and "tile2vec-l8-rgb-compact" in results.get("CARDS", ""), log[-2000:]
    for alg, parameter in (("apply_cluster_model", "CLUSTER_MODEL"), ("import_checkpoint", "CHECKPOINT")):
        code, _, log = qgis_process(qgis_env, alg, INPUT=str(tmp_path / "i.tif"))
        assert code != 0 and parameter in log, log[-2000:]
