"""The names module: one torch-free source for every name, and the engines agree with it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from srl_core import names
from srl_core.device import resolve_device
from srl_core.errors import InputError


def test_names_import_without_torch_or_gdal():
    code = "import sys, srl_core.names; print(__import__('json').dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not {"torch", "osgeo", "numpy", "qgis"} & loaded


def test_the_models_know_exactly_the_names_offered():
    from srl_core.models.location.encoder import ENCODINGS as BUILDERS
    from srl_core.models.tile import VARIANTS

    assert set(names.TILE_VARIANTS) == set(VARIANTS)
    assert set(names.ENCODINGS) <= set(BUILDERS)


def test_the_engines_accept_every_name_and_refuse_others(embedding_points, tmp_path):
    from srl_core.analysis.clustering import cluster_points
    from srl_core.analysis.similarity import cosine_scores

    assert str(resolve_device("cpu")) == "cpu"
    with pytest.raises(InputError, match=", ".join(names.DEVICE_CHOICES)):
        resolve_device("tpu")
    unit = np.eye(2, dtype=np.float32)
    assert [cosine_scores(unit, unit, mode).tolist() for mode in names.COMBINE_MODES] == [
        pytest.approx([2**-0.5, 2**-0.5]), [1.0, 1.0]]
    with pytest.raises(InputError, match=", ".join(names.CLUSTER_METHODS)):
        cluster_points(str(embedding_points), str(tmp_path / "x.gpkg"), method="dbscan")
