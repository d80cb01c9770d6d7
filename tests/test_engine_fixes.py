"""The tile engine's reading and resuming rules that once went wrong without a word.

A resumed window-by-window run kept the parts of another model; per-band mask bands were
ignored; south-up rasters gave other tiles than the same ground stored north-up; a VRT's
source could be overwritten by the run reading it; ``--extent -100,...`` failed on the
command line. Small synthetic rasters, training-free models and a tiny random CNN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pytest
from osgeo import gdal, osr
from test_dask_backend import FailingOnce

from srl_core.atomic import output_run
from srl_core.backends.local import LocalBackend
from srl_core.cli import build_parser
from srl_core.errors import OutputError
from srl_core.gdal_exceptions import gdal_exceptions
from srl_core.raster.parts import PartStore
from srl_core.raster.source import open_source
from srl_core.tiles import embed_raster, embed_tiles_at_points

PIXEL = 28.5  # the tiny tile model's pixel size
ORIGIN = (500000.0, 4000000.0)  # top-left corner of the north-up rasters, UTM 17N


def write_raster(path: Path, data: np.ndarray, gt: tuple = (ORIGIN[0], PIXEL, 0.0, ORIGIN[1], 0.0, -PIXEL),
                 options: Optional[list[str]] = None) -> Path:
    """A float32 GeoTIFF of ``data`` (C, H, W) in UTM 17N."""
    with gdal_exceptions():
        ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0],
                                                  gdal.GDT_Float32, options or [])
        ds.SetGeoTransform(gt)
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32617)
        ds.SetProjection(srs.ExportToWkt())
        ds.WriteArray(data)
        ds = None
    return path


def read(path: Path) -> tuple[np.ndarray, tuple]:
    with gdal_exceptions():
        ds = gdal.Open(str(path))
        return ds.ReadAsArray(), ds.GetGeoTransform()


def random_data(bands: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(50, 110, (bands, height, width)).astype(np.float32)


# -- 1. resuming keeps only the same model's parts ---------------------------------------------------
@pytest.mark.parametrize("first", ["bandstats-multiscale", "mosaiks-rcf"])
def test_a_resumed_run_drops_the_parts_of_another_training_free_model(tmp_path, first):
    raster = write_raster(tmp_path / "in.tif", random_data(3, 80, 80))
    out = tmp_path / "out.tif"
    args = dict(tile_size=10, device="cpu", window_tiles=4)
    with pytest.raises(RuntimeError, match="worker lost"):
        embed_raster(raster, out, first, backend=FailingOnce(3), **args)
    assert len(list((tmp_path / ".out.tif.parts").glob("part-*.npy"))) == 2
    again = FailingOnce(0)
    embed_raster(raster, out, "bandstats", backend=again, **args)  # another model, no weights either
    assert again.computed == 4  # every window computed anew
    clean = tmp_path / "clean.tif"
    embed_raster(raster, clean, "bandstats", backend=LocalBackend(), **args)
    np.testing.assert_array_equal(read(out)[0], read(clean)[0])
    assert not (tmp_path / ".out.tif.parts").exists()


def test_a_parts_folder_holding_other_files_is_not_deleted(tmp_path):
    folder = tmp_path / ".out.tif.parts"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="other than the parts"):
        PartStore(str(tmp_path / "out.tif"), "key").open()
    assert (folder / "notes.txt").read_text() == "mine"


# -- 2. per-band mask bands ----------------------------------------------------------------------------
def test_per_band_masks_mark_invalid_pixels(tmp_path, monkeypatch):
    raster = write_raster(tmp_path / "pbm.tif", random_data(3, 60, 60))
    monkeypatch.setenv("GDAL_TIFF_INTERNAL_MASK", "NO")  # a .msk file, one mask per band
    mask = np.full((60, 60), 255, np.uint8)
    mask[:, :30] = 0  # the left half masked out, in band 2 only
    with gdal_exceptions():
        ds = gdal.Open(str(raster), gdal.GA_Update)
        for band in (1, 2, 3):
            ds.GetRasterBand(band).CreateMaskBand(0)
            ds.GetRasterBand(band).GetMaskBand().WriteArray(mask if band == 2 else np.full_like(mask, 255))
        ds = None
        ds = gdal.Open(str(raster))
        assert [ds.GetRasterBand(b).GetMaskFlags() for b in (1, 2, 3)] == [0, 0, 0]  # per-band masks
        ds = None
        assert open_source(str(raster), 3).mask_bands == (1, 2, 3)
    out = tmp_path / "out.tif"
    embed_raster(raster, out, "bandstats", tile_size=10, device="cpu")
    valid = np.isfinite(read(out)[0][0])
    assert valid[:, 3:].all() and not valid[:, :3].any()


def test_a_per_dataset_mask_is_read_once(tmp_path):
    raster = write_raster(tmp_path / "pdm.tif", random_data(3, 20, 20))
    with gdal_exceptions():
        ds = gdal.Open(str(raster), gdal.GA_Update)
        ds.CreateMaskBand(gdal.GMF_PER_DATASET)
        ds = None
        assert open_source(str(raster), 3).mask_bands == (1,)
        plain = write_raster(tmp_path / "plain.tif", random_data(3, 20, 20))
        assert open_source(str(plain), 3).mask_bands == ()


# -- 3. south-up and east-left rasters give north-up tiles ---------------------------------------------
FLIPS = {"south-up": (1,), "east-left": (2,), "both": (1, 2)}


def flipped_copy(path: Path, data: np.ndarray, axes: tuple[int, ...]) -> Path:
    """The same ground as ``data`` north-up at ORIGIN, stored with ``axes`` of the array reversed."""
    height, width = data.shape[1:]
    x0, dx = (ORIGIN[0] + width * PIXEL, -PIXEL) if 2 in axes else (ORIGIN[0], PIXEL)
    y0, dy = (ORIGIN[1] - height * PIXEL, PIXEL) if 1 in axes else (ORIGIN[1], -PIXEL)
    return write_raster(path, np.ascontiguousarray(np.flip(data, axes)), (x0, dx, 0.0, y0, 0.0, dy))


def north_up(array: np.ndarray, gt: tuple) -> np.ndarray:
    """An embedding raster's pixels (D, h, w) with north at the top and east on the right."""
    axes = tuple(axis for axis, flipped in ((1, gt[5] > 0), (2, gt[1] < 0)) if flipped)
    return np.flip(array, axes)


@pytest.mark.parametrize("flip", FLIPS)
def test_a_flipped_raster_embeds_like_its_north_up_copy(tmp_path, tiny_tile_model, flip):
    data = random_data(5, 48, 64)
    north = write_raster(tmp_path / "north.tif", data)
    other = flipped_copy(tmp_path / "other.tif", data, FLIPS[flip])
    args = dict(tile_size=16, device="cpu", normalisation="model")
    for backend in (None, LocalBackend()):
        embeddings = []
        for raster in (north, other):
            out = tmp_path / f"{raster.stem}-{backend is None}.tif"
            embed_raster(raster, out, tiny_tile_model, backend=backend, **args)
            embeddings.append(north_up(*read(out)))
        assert np.isfinite(embeddings[0]).all()
        np.testing.assert_allclose(embeddings[1], embeddings[0], rtol=1e-5, atol=1e-5)


def test_a_turned_grid_is_said_and_a_north_up_one_is_not(tmp_path):
    """Tiles of a rotated grid reach the model turned with it, which nothing said."""
    import math

    data = random_data(5, 48, 64)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    turned = write_raster(tmp_path / "turned.tif", data,
                          (ORIGIN[0], PIXEL * c, PIXEL * s, ORIGIN[1], PIXEL * s, -PIXEL * c))
    said = embed_raster(turned, tmp_path / "t.tif", "bandstats", tile_size=16, device="cpu").choices
    assert any("turned 30° from north-up" in line for line in said)
    # a quarter turn and a transposed grid were taken for north-up: no model is invariant to them
    # (tile2vec down to cosine 0.86, MOSAIKS 0.25 on the same ground stored turned; found by an audit)
    quarter = (ORIGIN[0], 0.0, PIXEL, ORIGIN[1], PIXEL, 0.0)
    transposed = (ORIGIN[0], 0.0, PIXEL, ORIGIN[1], -PIXEL, 0.0)
    for geotransform, said_as in ((quarter, "turned 90° from north-up:"),
                                  (transposed, "90° from north-up and mirrored")):
        raster = write_raster(tmp_path / "quarter.tif", data, geotransform)
        choices = embed_raster(raster, tmp_path / "q.tif", "bandstats", tile_size=16, device="cpu").choices
        assert any(said_as in line for line in choices), choices
    north = embed_raster(write_raster(tmp_path / "north.tif", data), tmp_path / "n.tif", "bandstats",
                         tile_size=16, device="cpu").choices
    assert not any("turned" in line for line in north)
    # a south-up grid with a rotation term of a writer's rounding is stored flipped, not turned (a review)
    rounded = write_raster(tmp_path / "rounded.tif", data, (ORIGIN[0], PIXEL, 1e-9, ORIGIN[1], 0.0, PIXEL))
    choices = embed_raster(rounded, tmp_path / "r.tif", "bandstats", tile_size=16, device="cpu").choices
    assert not any("turned" in line for line in choices)


@pytest.mark.parametrize("flip", FLIPS)
def test_mosaiks_draws_the_same_filters_from_a_flipped_copy(tmp_path, flip):
    """Its patches were drawn, and kept, in the file's own order: a south-up copy of a raster got other
    filters, and embeddings up to 3.3 apart for the same ground (session 24, an audit)."""
    data = random_data(3, 48, 64)
    north = write_raster(tmp_path / "north.tif", data)
    other = flipped_copy(tmp_path / "other.tif", data, FLIPS[flip])
    embeddings = []
    for raster in (north, other):
        out = tmp_path / f"{raster.stem}-mosaiks.tif"
        embed_raster(raster, out, "mosaiks-rcf", tile_size=16, device="cpu")
        embeddings.append(north_up(*read(out)))
    np.testing.assert_allclose(embeddings[1], embeddings[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("flip", FLIPS)
def test_points_on_a_flipped_raster_embed_like_on_its_north_up_copy(tmp_path, tiny_tile_model, flip):
    data = random_data(5, 48, 64)
    north = write_raster(tmp_path / "north.tif", data)
    other = flipped_copy(tmp_path / "other.tif", data, FLIPS[flip])
    xy = np.array([[ORIGIN[0] + c * PIXEL, ORIGIN[1] - r * PIXEL] for c, r in ((20, 20), (40, 25), (33, 30))])
    first, valid = embed_tiles_at_points(north, xy, tiny_tile_model, device="cpu", normalisation="model")
    second, _ = embed_tiles_at_points(other, xy, tiny_tile_model, device="cpu", normalisation="model")
    assert valid.all()
    np.testing.assert_allclose(second, first, rtol=1e-5, atol=1e-5)


# -- 4. the files behind a VRT input are inputs too ---------------------------------------------------
def test_the_source_of_a_vrt_input_is_not_overwritten(tmp_path):
    source = write_raster(tmp_path / "b.tif", random_data(3, 40, 40))
    before = source.read_bytes()
    with gdal_exceptions():
        gdal.BuildVRT(str(tmp_path / "b.vrt"), [str(source)]).FlushCache()
    with pytest.raises(OutputError, match="would overwrite the input"):
        embed_raster(tmp_path / "b.vrt", source, "bandstats", tile_size=10, device="cpu")
    assert source.read_bytes() == before
    points = tmp_path / "points.csv"
    points.write_text("x,y\n1,2\n")
    with output_run([tmp_path / "out.tif"], [tmp_path / "b.vrt", points, tmp_path / "missing.tif"]):
        pass  # other inputs (not rasters, absent) are compared by name only


def test_the_file_of_a_vrt_name_and_the_sources_of_a_vrt_of_vrts_are_not_overwritten(tmp_path):
    """A 'vrt://FILE?bands=...' input and the files behind a VRT that a VRT reads were not inputs: the
    Landsat file itself was replaced by its embeddings (session 24, an audit)."""
    source = write_raster(tmp_path / "b.tif", random_data(3, 40, 40))
    before = source.read_bytes()
    with pytest.raises(OutputError, match="would overwrite the input"):
        embed_raster(f"vrt://{source}?bands=1,2", source, "bandstats", tile_size=10, device="cpu")
    with gdal_exceptions():
        gdal.BuildVRT(str(tmp_path / "inner.vrt"), [str(source)]).FlushCache()
        gdal.BuildVRT(str(tmp_path / "outer.vrt"), [str(tmp_path / "inner.vrt")]).FlushCache()
    with pytest.raises(OutputError, match="would overwrite the input"):
        embed_raster(tmp_path / "outer.vrt", source, "bandstats", tile_size=10, device="cpu")
    assert source.read_bytes() == before


@pytest.mark.parametrize("declared", ["-3.402823e+38", "-3.4028e+38", "-3.4028234663852886e+38"])
def test_a_float_fill_declared_with_few_digits_is_no_data(tmp_path, declared):
    """The float's lowest value as fill, its no-data written short (C's %e): GDAL and QGIS mask it, SRL
    embedded it as data, standardised by a band mean of -1.3e38 (session 24, an audit)."""
    data = random_data(2, 40, 40)
    data[:, :, :20] = -np.finfo(np.float32).max
    raster = write_raster(tmp_path / "fill.tif", data)
    ds = gdal.Open(str(raster), gdal.GA_Update)
    for band in (1, 2):
        ds.GetRasterBand(band).SetNoDataValue(float(declared))
    ds = None
    out = tmp_path / "out.tif"
    embed_raster(raster, out, "bandstats", tile_size=10, device="cpu")
    emb = gdal.Open(str(out)).ReadAsArray()
    assert np.isnan(emb[:, :, :2]).all() and np.isfinite(emb[:, :, 2:]).all()
    assert np.abs(emb[:, :, 2:]).max() < 10  # standardised by the data's statistics, not the fill's


def test_a_float_alpha_band_masks_the_pixels_it_makes_transparent(tmp_path):
    """gdalwarp -dstalpha on a float raster writes a Float32 alpha band, which GDAL takes for no mask:
    SRL left it out as transparency yet embedded the area outside the warp's footprint as ground."""
    data = np.concatenate([random_data(3, 40, 40), np.full((1, 40, 40), 255, np.float32)])
    data[3, :, :20] = 0  # transparent on the left
    raster = write_raster(tmp_path / "rgba.tif", data)
    ds = gdal.Open(str(raster), gdal.GA_Update)
    ds.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds = None
    out = tmp_path / "out.tif"
    embed_raster(raster, out, "bandstats", tile_size=10, device="cpu")
    emb = gdal.Open(str(out)).ReadAsArray()
    assert emb.shape[0] == 6 and np.isnan(emb[:, :, :2]).all() and np.isfinite(emb[:, :, 2:]).all()


# -- 5. negative coordinates on the command line -------------------------------------------------------
@pytest.mark.parametrize("argv, name, value", [
    (["embed-raster", "a.tif", "b.tif", "--extent", "-100,3000,200,4000"], "extent", [-100, 3000, 200, 4000]),
    (["embed-raster", "a.tif", "b.tif", "--extent=-100,-3000,200,4000"], "extent", [-100, -3000, 200, 4000]),
    (["similarity", "a.tif", "o.tif", "--pixel", "-1e5", "-2.5"], "pixel", [[-1e5, -2.5]]),
    (["interpolate", "p.gpkg", "f", "a.tif", "b.tif", "--extent", "-1e5", "-2", "-.5", "4"], "extent",
     [-1e5, -2, -0.5, 4]),
])
def test_coordinate_options_take_negative_numbers(argv, name, value):
    assert getattr(build_parser().parse_args(argv), name) == value


# -- parts folders: only SRL's are removed, a damaged part is computed again ---------------------------
def test_a_folder_named_like_the_parts_but_holding_user_files_is_never_removed(tmp_path, tiny_location_model):
    """Every embed-points run removed `.<output>.parts` when done, whatever it held."""
    from conftest import DATA_DIR

    from srl_core.location import embed_points_file

    out = tmp_path / "emb.gpkg"
    notes = tmp_path / ".emb.gpkg.parts" / "my_notes.txt"
    notes.parent.mkdir()
    notes.write_text("keep me")
    embed_points_file(str(DATA_DIR / "meuse" / "meuse.shp"), str(out), tiny_location_model)
    assert notes.read_text() == "keep me"


def test_a_damaged_part_is_computed_again_not_loaded(tmp_path):
    """A part emptied by a power cut made every rerun fail with numpy's pickle error."""
    store = PartStore(str(tmp_path / "out.tif"), "key")
    store.open()
    store.save(0, np.ones((2, 2), np.float32))
    store.save(1, np.ones((2, 2), np.float32))
    store._path(1).write_bytes(b"")
    assert PartStore(str(tmp_path / "out.tif"), "key").open() == {0}


def test_a_malformed_scheduler_address_is_an_input_error():
    """distributed raises ValueError for it, which reached the analyst as an "internal error"."""
    import pytest

    from srl_core.backends.dask import DaskBackend
    from srl_core.errors import InputError

    with pytest.raises(InputError, match="Could not start or reach the Dask scheduler at nonsense://x"):
        _ = DaskBackend(scheduler="nonsense://x").client


def test_a_windowed_run_needs_room_for_its_parts_and_a_resumed_one_counts_them(tmp_path, monkeypatch):
    """A run on workers keeps its windows' parts (float32) beside the output until it is written: a folder
    with room for the output alone failed on a full disk, and the parts kept then made every rerun fail the
    check (found by an audit). Needed: the output and its parts, less the parts already there."""
    import shutil
    from collections import namedtuple

    raster = write_raster(tmp_path / "in.tif", random_data(3, 80, 80))
    out = tmp_path / "out.tif"
    args = dict(tile_size=10, device="cpu", window_tiles=4)
    output_bytes = 8 * 8 * 6 * 4  # 8 x 8 tiles of bandstats' 6 values, float32
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 3 * output_bytes // 2,
                                                                3 * output_bytes // 2))
    with pytest.raises(OutputError, match="and its windows' parts while it runs on workers"):
        embed_raster(raster, out, "bandstats", backend=LocalBackend(), **args)
    embed_raster(raster, tmp_path / "here.tif", "bandstats", **args)  # in this process it fits
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="worker lost"):  # 2 of 4 windows kept
        embed_raster(raster, out, "bandstats", backend=FailingOnce(3), **args)
    kept = sum(p.stat().st_size for p in (tmp_path / ".out.tif.parts").iterdir())
    free = output_bytes + output_bytes - kept + 10  # the rest of the parts fits, not all of them again
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9 - free, free))
    embed_raster(raster, out, "bandstats", backend=LocalBackend(), **args)
    assert out.is_file() and not (tmp_path / ".out.tif.parts").exists()


def test_a_full_disk_on_workers_names_the_parts_it_keeps(tmp_path):
    """The parts kept to resume hold the space the run needs: the error says where they are."""
    class FullAfterTwo(LocalBackend):
        def map_unordered(self, fn, items, on_result, progress):
            def filling(j, array):
                if j == 2:
                    raise OutputError("Writing out.tif failed (disk full?).")
                on_result(j, array)

            super().map_unordered(fn, items, filling, progress)

    raster = write_raster(tmp_path / "in.tif", random_data(3, 80, 80))
    with pytest.raises(OutputError, match=r"disk full\?\)\. The 2 windows done so far are kept in .*"
                                          r"\.out\.tif\.parts \(hidden\) to resume"):
        embed_raster(raster, tmp_path / "out.tif", "bandstats", backend=FullAfterTwo(), tile_size=10,
                     device="cpu", window_tiles=4)


def test_a_model_whose_card_says_its_training_went_wrong_is_said_with_every_use(tmp_path, tiny_tile_model,
                                                                                  user_models_dir):
    """Training wrote "The training collapsed ..." to the card, and no one read it: the model's appended band
    statistics kept its embeddings above the degenerate check, so its constant values passed unsaid."""
    import json

    card_path = user_models_dir / tiny_tile_model / "card.json"
    card = json.loads(card_path.read_text())
    card["training"] = {"warnings": ["The training collapsed: 7 of the 8 learned values are constant."]}
    card_path.write_text(json.dumps(card))
    raster = write_raster(tmp_path / "r.tif", random_data(5, 48, 64))
    result = embed_raster(raster, tmp_path / "e.tif", tiny_tile_model, device="cpu", normalisation="model")
    said = [w for w in result.warnings if "training collapsed" in w]
    assert len(said) == 1 and f"The card of model '{tiny_tile_model}'" in said[0]
    assert "training collapsed" in gdal.Open(str(tmp_path / "e.tif")).GetMetadataItem("SRL_QUALITY_WARNING")
    xy = np.array([[ORIGIN[0] + 20 * PIXEL, ORIGIN[1] - 20 * PIXEL]])
    heard = []
    embed_tiles_at_points(raster, xy, tiny_tile_model, device="cpu", normalisation="model",
                          on_warning=heard.append)
    assert any("training collapsed" in w for w in heard)
