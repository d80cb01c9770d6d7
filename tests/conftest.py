"""Shared pytest configuration (keep minimal; add fixtures others need below).

pytest-qgis creates the QgsApplication before this file is read, so headless runs need
``QT_QPA_PLATFORM=offscreen`` (or Xvfb) in the environment, as the Makefile sets.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# One OpenMP thread: on a shared 2-core CI runner, scikit-learn's k-means otherwise spin-waits
# for busy cores (measured 15x slower under load). Set before any test imports sklearn/torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(__file__).resolve().parent / "data"
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


_OPENERS = (("gdal", "Open"), ("gdal", "OpenEx"), ("ogr", "Open"), ("gdal", "GetDriverByName"))


@pytest.fixture(autouse=True)
def gdal_exceptions_as_qgis(monkeypatch):
    """Every test starts with GDAL's Python exceptions off, as QGIS 3.22–3.36 runs, and must end so.

    srl_core turns them on only inside its own calls (srl_core.gdal_exceptions). Here a GDAL or OGR
    open called from srl_core or training outside such a call fails the test, and so does a test
    after which exceptions are left on: that would change GDAL for every other plugin in QGIS.
    """
    from osgeo import gdal, ogr, osr

    modules = {"gdal": gdal, "ogr": ogr}
    for module in (osr, ogr, gdal):  # GDAL < 3.7 pops the modules' error handlers in this order
        module.DontUseExceptions()
    for module_name, function in _OPENERS:
        original = getattr(modules[module_name], function)

        def checked(*args, _original=original, _name=f"{module_name}.{function}", **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if caller.split(".")[0] in ("srl_core", "training") and not gdal.GetUseExceptions():
                raise AssertionError(f"{caller} called {_name} with GDAL exceptions off "
                                     "(outside srl_core.gdal_exceptions)")
            return _original(*args, **kwargs)

        monkeypatch.setattr(modules[module_name], function, checked)
    yield
    _wait_for_background_tasks()  # a task still running holds them on (GDAL < 3.7: globally) by design
    left_on = [m.__name__ for m in (gdal, ogr, osr) if m.GetUseExceptions()]
    for module in (osr, ogr, gdal):
        module.DontUseExceptions()
    assert not left_on, f"GDAL exceptions left on after the test in {left_on}"


def _wait_for_background_tasks(timeout_ms: int = 60000) -> None:
    """Let SRL's QgsTasks a test started (a dialog's, a tool's) end before the next test begins; one that
    does not end fails the test. QGIS's own (the batch dialog's progress proxy, alive until the dialog is
    collected) are not SRL's work and are left alone: waiting for them stalled a test for the full minute."""
    if "srl_plugin.tasks" not in sys.modules:
        return
    from qgis.core import QgsApplication

    from srl_plugin.tasks import SrlTask

    if QgsApplication.instance() is None:
        return
    for task in QgsApplication.taskManager().activeTasks():
        if isinstance(task, SrlTask):
            assert task.waitForFinished(timeout_ms), f"SRL task '{task.description()}' still running"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """``python -m srl_core ARGS`` in this process: (exit status, stdout, stderr), never a traceback."""
    from srl_core.cli import main

    code = main(args)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def user_models_dir(tmp_path, monkeypatch) -> Path:
    """An empty, private user model folder (SRL_MODELS_DIR) for this test."""
    folder = tmp_path / "user_models"
    folder.mkdir()
    monkeypatch.setenv("SRL_MODELS_DIR", str(folder))
    return folder


# -- synthetic embeddings with a known answer (fast, no model run) ---------------------------
SYNTHETIC_MODEL_ID = "synthetic-test"
UTM17N = 32617


def _crs_wkt(epsg: int) -> str:
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


@pytest.fixture
def embedding_raster(tmp_path) -> Path:
    """A 24 x 16 px, 8-band embedding raster (UTM 17N, 100 m pixels) with two known halves.

    Columns 0..11 point along direction A, columns 12..23 along direction B (plus small
    noise); pixel (0, 0) is nodata (NaN). Origin (500000, 4000000), so the map point
    (500650, 3999150) lies in the left half and (501850, 3999150) in the right one.
    """
    import numpy as np

    from srl_core.embedding_format import field_names, raster_metadata
    from srl_core.raster.geotiff import create_geotiff

    rng = np.random.default_rng(0)
    d, w, h = 8, 24, 16
    a, b = np.eye(d, dtype=np.float32)[0] * 3, np.eye(d, dtype=np.float32)[1] * 3
    data = np.empty((d, h, w), np.float32)
    data[:, :, :12] = a[:, None, None]
    data[:, :, 12:] = b[:, None, None]
    data += rng.normal(0, 0.1, data.shape).astype(np.float32)
    data[:, 0, 0] = np.nan
    path = tmp_path / "synthetic_embeddings.tif"
    ds = create_geotiff(
        str(path),
        w,
        h,
        d,
        np.float32,
        (500000, 100, 0, 4000000, 0, -100),
        _crs_wkt(UTM17N),
        nodata=float("nan"),
        metadata=raster_metadata(SYNTHETIC_MODEL_ID, d, 16, 16),
        band_names=field_names(d),
    )
    for i in range(d):
        ds.GetRasterBand(i + 1).WriteArray(data[i])
    ds = None
    return path


@pytest.fixture
def embedding_points(tmp_path) -> Path:
    """40 embedding points (GeoPackage, WGS84): ids 1..20 near direction A, 21..40 near B.

    Attribute ``value`` is 10 for the A group and 20 for the B group plus a small trend.
    """
    import numpy as np

    from srl_core.vector.points import write_points

    rng = np.random.default_rng(1)
    n, d = 40, 8
    group = np.repeat([0, 1], n // 2)
    emb = np.zeros((n, d), np.float32)
    emb[group == 0, 0] = 3
    emb[group == 1, 1] = 3
    emb += rng.normal(0, 0.1, emb.shape).astype(np.float32)
    lon = -79.0 + rng.uniform(0, 0.5, n) + group * 0.6
    lat = 35.5 + rng.uniform(0, 0.5, n)
    value = 10.0 + 10.0 * group + 0.1 * np.arange(n)
    path = tmp_path / "synthetic_points.gpkg"
    write_points(
        str(path),
        np.column_stack([lon, lat]),
        _crs_wkt(4326),
        {"value": value},
        embeddings=emb,
        model_id=SYNTHETIC_MODEL_ID,
    )
    return path


@pytest.fixture
def srl_provider(qgis_processing):
    """The plugin's Processing provider, registered for one test (processing.run('srl:...'))."""
    from qgis.core import QgsApplication

    from srl_plugin.provider import SrlProvider

    registry = QgsApplication.processingRegistry()
    provider = SrlProvider()
    assert registry.addProvider(provider)
    yield provider
    registry.removeProvider(provider)


# -- tiny random-weight model bundles (fast; the real ones live in resources/models) --------
TINY_TILE_MODEL_ID = "tiny-tile-test"
LANDSAT_CROP = DATA_DIR / "nc_landsat_crop.tif"


def half_polygon(raster: Path, path: Path, side: str = "right", layer_name: str = "land") -> Path:
    """A polygon over the left or right half of ``raster``, in its CRS, with its ``side`` as attribute,
    added to layer ``layer_name`` of the GeoPackage ``path`` (each made when missing): a valid-area mask."""
    from osgeo import gdal, ogr, osr

    ds = gdal.Open(str(raster))
    gt, w, h = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
    vec = (ogr.Open(str(path), 1) if path.exists() else
           ogr.GetDriverByName("GPKG").CreateDataSource(str(path)))
    srs = osr.SpatialReference()
    srs.ImportFromWkt(ds.GetProjection())
    layer = vec.GetLayerByName(layer_name)
    if layer is None:
        layer = vec.CreateLayer(layer_name, srs, ogr.wkbPolygon)
        layer.CreateField(ogr.FieldDefn("side", ogr.OFTString))
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("side", side)
    x0, x1 = (gt[0] + w / 2 * gt[1], gt[0] + w * gt[1]) if side == "right" else (gt[0], gt[0] + w / 2 * gt[1])
    y0, y1 = gt[3], gt[3] + h * gt[5]
    ring = f"{x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}"
    feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({ring}))"))
    layer.CreateFeature(feature)
    vec = None
    return path


@pytest.fixture
def tiny_tile_model(user_models_dir) -> str:
    """A 5-band, 16 px, 8-d compact TileNet with random weights, installed in the user folder."""
    import torch

    from srl_core.bundle import ModelCard, save_bundle
    from srl_core.models.tile import build_from_config

    torch.manual_seed(0)
    config = {"in_channels": 5, "variant": "compact", "widths": [4, 8], "blocks": [1, 1, 1], "z_dim": 8}
    card = ModelCard(
        id=TINY_TILE_MODEL_ID,
        kind="tile",
        architecture="tilenet",
        config=config,
        embedding_size=8,
        description="Random weights, for tests only.",
        inputs={
            "bands": [{"name": f"lsat7_2000_{b}"} for b in (10, 20, 30, 40, 50)],
            "normalisation": {"mean": [80.0] * 5, "std": [30.0] * 5},
            "tile_size": 16,
            "pixel_size_m": 28.5,
        },
        licence="CC0-1.0",
    )
    save_bundle(build_from_config(config), card, user_models_dir / TINY_TILE_MODEL_ID)
    return TINY_TILE_MODEL_ID


TINY_LOCATION_MODEL_ID = "tiny-location-test"


@pytest.fixture
def tiny_location_model(user_models_dir) -> str:
    """Spherical harmonics (L=4) + a small MLP to 8-d, random weights, installed in the user folder."""
    import torch

    from srl_core.bundle import ModelCard, save_bundle
    from srl_core.models.location import build_from_config

    torch.manual_seed(0)
    config = {
        "encoding": {"name": "sphericalharmonics", "legendre_polys": 4},
        "network": {"name": "mlp", "dim_hidden": 16, "num_layers": 2, "dim_out": 8},
    }
    card = ModelCard(
        id=TINY_LOCATION_MODEL_ID,
        kind="location",
        architecture="location_encoder",
        config=config,
        embedding_size=8,
        description="Random weights, for tests only.",
        inputs={"coordinates": "lon/lat WGS84 degrees"},
        licence="CC0-1.0",
    )
    save_bundle(build_from_config(config), card, user_models_dir / TINY_LOCATION_MODEL_ID)
    return TINY_LOCATION_MODEL_ID


@pytest.fixture(params=[False, True], ids=["main-thread-writes", "write-thread"])
def write_thread(request, monkeypatch) -> bool:
    """The engine as on the CPU (the main thread writes), and as beside a GPU (a writing thread)."""
    from srl_core import tiles
    from srl_core.threads import IoPlan

    monkeypatch.setattr(tiles, "io_plan", lambda device, threads: IoPlan(1, 1, request.param))
    return request.param


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (training: faster and deterministic on 2 cores), restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
