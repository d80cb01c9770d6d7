"""srl_core raises GDAL's errors inside its own calls and leaves GDAL's setting to everyone else.

QGIS 3.22's DB Manager opens a GeoPackage for update and falls back to read-only when GDAL returns
``None``; with exceptions switched on for good by a library it gets a RuntimeError instead. Every
test starts with exceptions off (tests/conftest.py, as QGIS 3.22–3.36 runs) and fails if they are
left on; these tests check the mechanism itself and the places where QGIS would notice.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import processing
import pytest
from conftest import run_cli
from osgeo import gdal, ogr, osr
from qgis.core import QgsApplication

from srl_core.gdal_exceptions import THREAD_LOCAL, gdal_exceptions
from srl_core.progress import Progress

MODULES = (gdal, ogr, osr)


def states() -> tuple[int, ...]:
    return tuple(module.GetUseExceptions() for module in MODULES)


def test_on_inside_off_after_also_when_nested_or_failing():
    assert states() == (0, 0, 0)
    with gdal_exceptions():
        assert states() == (1, 1, 1)
        with gdal_exceptions():
            assert states() == (1, 1, 1)
        assert states() == (1, 1, 1)  # the inner exit keeps the outer block's setting
    assert states() == (0, 0, 0)


def test_gdal_raises_inside_and_returns_none_after():
    with pytest.raises(RuntimeError), gdal_exceptions():
        gdal.OpenEx("/nonexistent/layer.gpkg")
    assert states() == (0, 0, 0)
    assert gdal.OpenEx("/nonexistent/layer.gpkg") is None  # what QGIS's DB Manager relies on


def test_a_caller_who_turned_exceptions_on_keeps_them():
    gdal.UseExceptions()
    try:
        with gdal_exceptions():
            pass
        assert gdal.GetUseExceptions() == 1
    finally:
        gdal.DontUseExceptions()


def test_threads_of_one_run_share_it_and_others_keep_their_setting():
    """Per-thread GDAL: another thread never sees a change. Global GDAL (< 3.7): on while any SRL
    call runs, off after the last one ends, whatever the order they end in."""
    inside, release, seen = threading.Event(), threading.Event(), {}

    def worker() -> None:
        with gdal_exceptions():
            inside.set()
            release.wait(10)
        seen["worker after"] = gdal.GetUseExceptions()

    thread = threading.Thread(target=worker)
    thread.start()
    assert inside.wait(10)
    seen["main during"] = gdal.GetUseExceptions()
    with gdal_exceptions():
        release.set()
        thread.join(10)
        seen["main inside, worker gone"] = gdal.GetUseExceptions()
    assert seen["main inside, worker gone"] == 1
    assert seen["main during"] == (0 if THREAD_LOCAL else 1)
    assert seen["worker after"] == (0 if THREAD_LOCAL else 1)  # global: main still inside
    assert states() == (0, 0, 0)


def test_processing_run_leaves_gdal_as_qgis_had_it(srl_provider, embedding_raster, tmp_path):
    result = processing.run("srl:cluster", {"INPUT": str(embedding_raster), "K": 2,
                                            "OUTPUT": str(tmp_path / "c.tif")})
    assert result["CLUSTERS"] == 2
    assert states() == (0, 0, 0)
    assert gdal.OpenEx(str(tmp_path / "missing.gpkg")) is None


def test_qgis_db_manager_still_tells_a_geopackage_after_an_srl_run(srl_provider, embedding_raster, tmp_path,
                                                                  monkeypatch):
    """QGIS's own DB Manager asks GDAL whether a file is a GeoPackage and expects None for 'no';
    after any SRL algorithm had run it got a RuntimeError instead (srl_core before 28 Nov 2026)."""
    plugins = Path(QgsApplication.pkgDataPath()) / "python" / "plugins"
    monkeypatch.syspath_prepend(str(plugins))
    connector = pytest.importorskip("db_manager.db_plugins.gpkg.connector")
    processing.run("srl:rgb_view", {"INPUT": str(embedding_raster), "OUTPUT": str(tmp_path / "v.tif")})
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database")
    assert connector.GPKGDBConnector.isValidDatabase(str(notes)) is False


def test_a_corrupt_input_is_still_a_clear_error_with_exceptions_off(tmp_path, capsys):
    """GDAL's refusal reaches srl_core as an error it words, not as a None it trips over."""
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 64)
    code, _, err = run_cli(["cluster", str(corrupt), str(tmp_path / "c.tif"), "-k", "2"], capsys)
    assert code == 2 and "corrupt.tif" in err and "internal error" not in err
    assert states() == (0, 0, 0)
    assert not (tmp_path / "c.tif").exists()


def test_background_task_raises_inside_and_restores(qgis_app):
    from srl_plugin.tasks import SrlTask

    seen = []
    task = SrlTask("probe", lambda progress: seen.append(states()))
    assert task.run()
    assert seen == [(1, 1, 1)] and states() == (0, 0, 0)


def test_points_warning_names_the_callers_line(tmp_path):
    """The decorator adds a frame: the location engine's warning must still point at its caller."""
    from srl_core.location import embed_points_file

    points = tmp_path / "p.csv"
    points.write_text("x,y\n5.0,50.0\n5.001,50.001\n5.002,50.0\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embed_points_file(str(points), str(tmp_path / "out.gpkg"), model="auto", crs=4326,
                          progress=Progress())
    ours = [w for w in caught if issubclass(w.category, UserWarning)]
    assert ours and all(Path(w.filename).name == Path(__file__).name for w in ours), \
        [(w.filename, str(w.message)[:60]) for w in ours]


def test_styling_reads_metadata_with_exceptions_off_or_on(embedding_raster, tmp_path):
    """Styling runs on QGIS's main thread, outside SRL's calls: a file GDAL cannot open (deleted
    since it was loaded) means no metadata, whichever way GDAL reports it."""
    from qgis.core import QgsRasterLayer

    from srl_plugin.styling import metadata_item

    copy = tmp_path / "gone.tif"
    copy.write_bytes(Path(embedding_raster).read_bytes())
    layer = QgsRasterLayer(str(copy), "gone")
    assert layer.isValid()
    copy.unlink()
    assert metadata_item(layer, "SRL_MODEL_ID") is None
    with gdal_exceptions():
        assert metadata_item(layer, "SRL_MODEL_ID") is None


def test_probing_a_csv_of_points_prints_no_gdal_warning(tmp_path, capfd):
    """GDAL's XYZ raster driver printed 'Warning 1: Could not find one of the X, Y or Z column names'
    for every CSV of points srl_core probed as a raster (sample-tiles, interpolate)."""
    from srl_core.analysis.api import open_input
    from srl_core.atomic import output_run

    csv = tmp_path / "pts.csv"
    csv.write_text("lon,lat,v\n5.7,50.9,1\n5.8,51.0,2\n")
    assert not open_input(str(csv)).is_raster
    with output_run([tmp_path / "out.gpkg"], [csv]):
        pass
    assert "Warning" not in capfd.readouterr().err
