"""`make demo` end to end: the plugin's algorithms on the bundled sample data, rendered by QGIS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parent.parent


def test_demo_writes_outputs_and_a_map(tmp_path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run([sys.executable, "-m", "srl_plugin.demo", "--out", str(tmp_path)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert len((tmp_path / "algorithms.txt").read_text().split()) >= 12
    clusters = gdal.Open(str(tmp_path / "clusters.tif")).ReadAsArray()
    assert sorted(np.unique(clusters[clusters > 0])) == [1, 2, 3, 4, 5, 6]  # k = 6 (0 = nodata)
    for name in ("tile_embeddings.tif", "similarity.tif"):
        assert np.isfinite(gdal.Open(str(tmp_path / name)).ReadAsArray()).mean() > 0.8, name  # nodata rim
    # zinc: empty farther than 300 m from every sample (the corners of the samples' bounding box)
    prediction, uncertainty = (gdal.Open(str(tmp_path / f"zinc_{n}.tif")).ReadAsArray()
                               for n in ("prediction", "uncertainty"))
    assert 0.3 < np.isfinite(prediction).mean() < 0.9
    np.testing.assert_array_equal(np.isfinite(prediction), np.isfinite(uncertainty))
    # the map is a real rendering: six panels of varied colours, not a blank canvas
    rgb = gdal.Open(str(tmp_path / "map.png")).ReadAsArray()[:3].astype(float)
    assert rgb.shape[1] > 1000 and rgb.shape[2] > 1500
    assert rgb.std() > 30 and np.unique(rgb.reshape(3, -1), axis=1).shape[1] > 1000
