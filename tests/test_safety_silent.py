"""Issue 11, "silent wrong results": each input below used to give a wrong or useless output with
exit status 0; now it is refused with a clear message (or, for a raster without a CRS, warned
about through the engine's warning channel that the CLI and Processing show).

Cases: NaN weights (imported, trained, or in a bundle on disk), a model whose output is not finite,
similarity to a zero query (or to examples that cancel out), ``--tile-size 0``, an output named
``.png``, a raster with a geotransform but no CRS, and a 200000 x 200000 raster whose embeddings
cannot fit on the output disk.
"""

from __future__ import annotations

import shutil
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
from analysis_synthetic import GEOTRANSFORM, write_embedding_raster
from conftest import LANDSAT_CROP, TINY_LOCATION_MODEL_ID, TINY_TILE_MODEL_ID, run_cli
from safetensors.torch import load_file, save_file
from test_importers import satclip_checkpoint
from test_raster_grid import ramp, write_raster
from test_tile_engine import TileMean, mean_model

from srl_core.analysis.similarity import Query, similarity_points, similarity_raster
from srl_core.bundle import WEIGHTS_NAME, LoadedModel, ModelCard, load_model, save_bundle
from srl_core.errors import InputError, ModelError, OutputError
from srl_core.importers import import_satclip
from srl_core.location import embed_lonlat
from srl_core.models.location import build_from_config
from srl_core.progress import Progress
from srl_core.tiles import embed_raster, embed_tiles_at_points

MEUSE = str(Path(__file__).parent / "data" / "meuse" / "meuse.shp")


# -- NaN weights ---------------------------------------------------------------------------------
def test_imported_checkpoint_with_nan_weights_is_refused(tmp_path, user_models_dir, capsys):
    path = tmp_path / "nan.ckpt"
    satclip_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["model.location.nnet.layers.1.weight"][3, 4] = float("nan")
    torch.save(ckpt, path)
    with pytest.raises(ModelError, match=r"weight 'nnet\.layers\.1\.weight' holds 1 NaN or infinite"):
        import_satclip(path)
    code, _, err = run_cli(["import-model", "satclip", str(path)], capsys)
    assert code == 2 and "NaN or infinite" in err
    assert list(user_models_dir.iterdir()) == []


def test_bundle_with_nan_weights_is_refused_at_load(tiny_location_model, user_models_dir, tmp_path, capsys):
    weights = user_models_dir / TINY_LOCATION_MODEL_ID / WEIGHTS_NAME
    state = load_file(str(weights))
    first = sorted(state)[0]
    state[first] = torch.full_like(state[first], float("inf"))
    save_file(state, str(weights))
    with pytest.raises(ModelError, match=f"weight '{first}' holds"):
        load_model(TINY_LOCATION_MODEL_ID)
    out = tmp_path / "emb.gpkg"
    code, _, err = run_cli(["embed-points", MEUSE, str(out), "--model", TINY_LOCATION_MODEL_ID], capsys)
    assert code == 2 and "NaN or infinite" in err and not out.exists()


def test_trained_model_with_nan_weights_is_not_saved(tmp_path):
    config = {"encoding": {"name": "direct"}, "network": {"name": "linear", "dim_out": 2}}
    module = build_from_config(config)
    with torch.no_grad():
        module.nnet.weight[0, 0] = float("nan")
    card = ModelCard(
        id="diverged", kind="location", architecture="location_encoder", config=config, embedding_size=2
    )
    with pytest.raises(ModelError, match="NaN or infinite value.*retrain"):
        save_bundle(module, card, tmp_path / "diverged")
    assert list(tmp_path.iterdir()) == []


# -- engines check what the model returns --------------------------------------------------------
class NaNLocation(torch.nn.Module):
    embedding_size = 3

    def forward(self, lonlat: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(lonlat), 3)
        out[lonlat[:, 0] > 10] = float("nan")  # broken for part of the world only
        return out


class NaNTiles(TileMean):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


def test_location_engine_refuses_non_finite_embeddings():
    lonlat = np.array([[0.0, 0.0], [5.0, 50.0], [20.0, 10.0]])
    with pytest.raises(ModelError, match=r"NaN or infinite embeddings \(first at row 2\)"):
        embed_lonlat(NaNLocation(), lonlat, device="cpu")
    emb, valid = embed_lonlat(NaNLocation(), lonlat[:2], device="cpu")
    assert valid.all() and np.isfinite(emb).all()


def test_tile_engine_refuses_non_finite_embeddings(tmp_path):
    src = write_raster(tmp_path / "in.tif", ramp(2, 32, 32))
    broken = LoadedModel(NaNTiles(), mean_model(2, 8).card)
    with pytest.raises(ModelError, match="NaN or infinite embeddings"):
        embed_raster(src, tmp_path / "out.tif", broken, device="cpu")
    with pytest.raises(ModelError, match="NaN or infinite embeddings"):
        embed_tiles_at_points(src, np.array([[500100.0, 3999900.0]]), broken, device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


# -- similarity to a query with no direction -----------------------------------------------------
@pytest.fixture
def raster_with_a_zero_pixel(tmp_path) -> str:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(4, 10, 12)).astype(np.float32)
    data[:, 2, 3] = 0.0  # pixel (col 3, row 2): an all-zero embedding
    data[:, 2, 4] = 1e-9  # its neighbour: near zero
    return write_embedding_raster(tmp_path / "emb.tif", data)


def _pixel_centre(col: int, row: int) -> tuple[float, float]:
    x0, px, _, y0, _, py = GEOTRANSFORM
    return x0 + (col + 0.5) * px, y0 + (row + 0.5) * py


@pytest.mark.parametrize("col", [3, 4])
def test_similarity_to_a_zero_or_near_zero_query_is_refused(tmp_path, raster_with_a_zero_pixel, capsys, col):
    x, y = _pixel_centre(col, 2)
    with pytest.raises(InputError, match="zero or near-zero embedding"):
        Query().add_pixels(raster_with_a_zero_pixel, [[x, y]])
    out = tmp_path / "sim.tif"
    args = ["similarity", raster_with_a_zero_pixel, str(out), "--pixel", str(x), str(y)]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "points in no direction" in err and not out.exists()
    ok = run_cli(
        ["similarity", raster_with_a_zero_pixel, str(out), "--pixel", *map(str, _pixel_centre(5, 5))], capsys
    )
    assert ok[0] == 0 and out.exists()  # the same raster with a real example works


def test_examples_that_cancel_out_are_refused_for_mean_but_not_max(tmp_path, raster_with_a_zero_pixel):
    vector = np.array([1.0, 2.0, 0.5, -1.0], np.float32)
    query = Query().add_vectors(np.stack([vector, -vector]), "synthetic-tile")
    with pytest.raises(InputError, match="cancel out"):
        similarity_raster(raster_with_a_zero_pixel, query, str(tmp_path / "mean.tif"), "mean")
    assert not (tmp_path / "mean.tif").exists()
    similarity_raster(raster_with_a_zero_pixel, query, str(tmp_path / "max.tif"), "max")
    assert (tmp_path / "max.tif").exists()


def test_zero_query_vector_on_points(tmp_path, embedding_points):
    with pytest.raises(InputError, match="zero or near-zero"):
        similarity_points(
            str(embedding_points),
            Query().add_vectors(np.zeros(8), "synthetic-test"),
            str(tmp_path / "s.gpkg"),
        )
    assert not (tmp_path / "s.gpkg").exists()


# -- tile size 0 and outputs named in another format ---------------------------------------------
@pytest.mark.parametrize("size", ["0", "-16"])
def test_tile_size_zero_or_negative_is_refused(tmp_path, tiny_tile_model, capsys, size):
    out = tmp_path / "e.tif"
    code, _, err = run_cli(
        ["embed-raster", str(LANDSAT_CROP), str(out), "--model", tiny_tile_model, "--tile-size", size], capsys
    )
    assert code == 2 and "Tile size (pixels) must be a whole number from 1" in err and not out.exists()
    with pytest.raises(InputError, match="Tile size"):
        embed_raster(LANDSAT_CROP, out, tiny_tile_model, tile_size=int(size))
    with pytest.raises(InputError, match="Tile size"):
        embed_tiles_at_points(LANDSAT_CROP, np.zeros((1, 2)), tiny_tile_model, tile_size=int(size))


@pytest.mark.parametrize("name", ["emb.png", "emb.jpg", "emb", "emb.gpkg"])
def test_raster_output_with_another_extension_is_refused(tmp_path, tiny_tile_model, capsys, name):
    out = tmp_path / name
    with pytest.raises(OutputError, match=r"must end in \.tif or \.tiff"):
        embed_raster(LANDSAT_CROP, out, tiny_tile_model)
    code, _, err = run_cli(["embed-raster", str(LANDSAT_CROP), str(out), "--model", tiny_tile_model], capsys)
    assert code == 2 and "written as GeoTIFF" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user_models"]


def test_analysis_output_named_png_is_refused(tmp_path, embedding_raster, capsys):
    for command in (["cluster", "-k", "2"], ["rgb-view"]):
        out = tmp_path / "classes.png"
        code, _, err = run_cli([command[0], str(embedding_raster), str(out), *command[1:]], capsys)
        assert code == 2 and "must end in .tif or .tiff" in err and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [embedding_raster.name]


def test_processing_output_named_png_is_refused(srl_provider, tiny_tile_model, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    out = tmp_path / "emb.png"
    with pytest.raises(QgsProcessingException, match="GeoTIFF"):
        processing.run(
            "srl:embed_raster",
            {"INPUT": str(LANDSAT_CROP), "MODEL": tiny_tile_model, "DEVICE": "cpu", "OUTPUT": str(out)},
        )
    assert not out.exists()


# -- a raster with a geotransform but no CRS -----------------------------------------------------
def test_raster_without_crs_is_embedded_with_a_warning(tmp_path, capsys):
    src = write_raster(tmp_path / "nocrs.tif", ramp(2, 32, 32), epsg=None)
    result = embed_raster(src, tmp_path / "a.tif", mean_model(2, 8), device="cpu")
    assert any("no CRS" in w for w in result.warnings)
    with_crs = write_raster(tmp_path / "crs.tif", ramp(2, 32, 32))
    assert not any(
        "no CRS" in w for w in embed_raster(with_crs, tmp_path / "b.tif", mean_model(2, 8)).warnings
    )


def test_no_crs_warning_in_cli_and_processing(tmp_path, tiny_tile_model, srl_provider, capsys):
    import processing
    from osgeo import gdal
    from qgis.core import QgsProcessingFeedback

    crop = gdal.Open(str(LANDSAT_CROP))
    nodata = crop.GetRasterBand(1).GetNoDataValue()
    data, gt = crop.ReadAsArray().astype(np.float32), crop.GetGeoTransform()
    src = write_raster(tmp_path / "nocrs.tif", data, gt, epsg=None, nodata=nodata)
    code, _, err = run_cli(["embed-raster", src, str(tmp_path / "c.tif"), "--model", tiny_tile_model], capsys)
    assert code == 0 and "warning:" in err and "no CRS" in err

    class Collect(QgsProcessingFeedback):
        warnings: list[str] = []

        def pushWarning(self, text):  # noqa: N802
            self.warnings.append(text)

    feedback = Collect()
    processing.run(
        "srl:embed_raster",
        {"INPUT": src, "MODEL": tiny_tile_model, "DEVICE": "cpu", "OUTPUT": str(tmp_path / "d.tif")},
        feedback=feedback,
    )
    assert any("no CRS" in w for w in feedback.warnings)


# -- a huge raster: the output must fit before any work starts -----------------------------------
def write_huge_vrt(folder: Path, count: int) -> str:
    """A 200000 x 200000 px VRT of ``count`` bands whose only data is a 64 x 64 GeoTIFF in one corner."""
    small = write_raster(folder / f"small{count}.tif", ramp(count, 64, 64))
    bands = "".join(
        f'<VRTRasterBand dataType="Float32" band="{b}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{small}</SourceFilename><SourceBand>{b}</SourceBand>'
        '<SrcRect xOff="0" yOff="0" xSize="64" ySize="64"/><DstRect xOff="0" yOff="0" xSize="64" ySize="64"/>'
        "</SimpleSource></VRTRasterBand>"
        for b in range(1, count + 1)
    )
    path = folder / f"huge{count}.vrt"
    path.write_text(
        '<VRTDataset rasterXSize="200000" rasterYSize="200000"><SRS>EPSG:32633</SRS>'
        f"<GeoTransform>500000, 10, 0, 4000000, 0, -10</GeoTransform>{bands}</VRTDataset>"
    )
    return str(path)


@pytest.fixture
def huge_vrt(tmp_path) -> str:
    return write_huge_vrt(tmp_path, 2)


DiskUsage = namedtuple("DiskUsage", "total used free")


def test_huge_raster_is_refused_before_work_with_the_figures(tmp_path, huge_vrt, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda _: DiskUsage(10**12, 10**12 - 10**9, 10**9))
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "emb.tif"
    with pytest.raises(
        OutputError,
        match=r"needs about 1\.2 GB \(12500 x 12500 pixels x 2 bands of float32\) "
        r"but .* has only 1\.0 GB free",
    ):
        embed_raster(huge_vrt, out, mean_model(2, 16), device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.timeout(60)
@pytest.mark.parametrize("model, figures", [("mosaiks-rcf", r"141\.7 GB \(11764 x 11764 pixels x 256 bands"),
                                           ("bandstats", r"2\.2 GB \(11764 x 11764 pixels x 4 bands")])
def test_training_free_model_refuses_a_full_disk_before_reading_the_raster(tmp_path, huge_vrt, monkeypatch,
                                                                            model, figures):
    """Binding a training-free model reads the raster (a sample for its statistics, patches for MOSAIKS'
    filters): a disk too small for the output is refused before that, as for a learned model. (This
    raster's bands are constant: reading it first would have refused it for that instead.)"""
    monkeypatch.setattr(shutil, "disk_usage", lambda _: DiskUsage(10**12, 10**12 - 10**9, 10**9))
    with pytest.raises(OutputError, match=f"needs about {figures} of float32\\) but .* has only 1\\.0 GB"):
        embed_raster(huge_vrt, tmp_path / "emb.tif", model, device="cpu")
    assert not (tmp_path / "emb.tif").exists()


def test_huge_raster_against_the_real_free_space(tmp_path, huge_vrt):
    """Stride 1: 199985^2 pixels x 2 bands x 4 bytes = 320 GB, more than this disk has free."""
    needed = 199985**2 * 2 * 4
    if shutil.disk_usage(tmp_path).free >= needed:
        pytest.skip("this disk has more than 320 GB free")
    with pytest.raises(OutputError, match=r"needs about 320\.0 GB"):
        embed_raster(huge_vrt, tmp_path / "emb.tif", mean_model(2, 16), stride=1, device="cpu")
    assert not (tmp_path / "emb.tif").exists()


def test_huge_raster_through_cli_and_processing(tmp_path, tiny_tile_model, srl_provider, monkeypatch, capsys):
    import processing
    from qgis.core import QgsProcessingException

    huge = write_huge_vrt(tmp_path, 5)  # the tiny model reads 5 bands and gives 8
    monkeypatch.setattr(shutil, "disk_usage", lambda _: DiskUsage(10**12, 10**12 - 10**9, 10**9))
    out = tmp_path / "emb.tif"
    code, _, err = run_cli(["embed-raster", huge, str(out), "--model", TINY_TILE_MODEL_ID], capsys)
    assert code == 2 and "needs about 5.0 GB (12500 x 12500 pixels x 8 bands of float32)" in err
    with pytest.raises(QgsProcessingException, match="needs about 5.0 GB"):
        processing.run(
            "srl:embed_raster", {"INPUT": huge, "MODEL": tiny_tile_model, "DEVICE": "cpu", "OUTPUT": str(out)}
        )
    assert not out.exists()


def test_output_size_estimate_is_reported(tmp_path):
    messages: list[str] = []
    src = write_raster(tmp_path / "in.tif", ramp(2, 32, 32))
    embed_raster(
        src,
        tmp_path / "o.tif",
        mean_model(2, 8),
        device="cpu",
        progress=Progress(lambda _f, message: messages.append(message)),
    )
    estimate = next(m for m in messages if m.startswith("Output about"))
    assert estimate.startswith("Output about 128 B,") and "free" in estimate  # 4 x 4 px x 2 bands x 4 B


def test_tiny_location_model_still_embeds(tiny_location_model):
    """The checks above leave sound models alone: a finite model on valid points gives finite values."""
    emb, valid = embed_lonlat(TINY_LOCATION_MODEL_ID, np.array([[5.0, 52.0], [-70.0, -30.0]]), device="cpu")
    assert valid.all() and np.isfinite(emb).all()


def test_auto_normalisation_compares_a_constant_band_instead_of_assuming_likeness(tmp_path):
    """8-bit-like values (about 125) beside Landsat training means (thousands), one band all 0: the
    check sample once failed on the constant band, and "auto" then chose the card's statistics
    saying "the raster looks like its training data" (every embedding alike). Now the bands are
    compared, "raster" is chosen, and the constant band is refused by name before any tile."""
    rng = np.random.default_rng(5)
    values = rng.uniform(50, 200, (3, 120, 120)).astype(np.float32)
    values[2] = 0
    path = write_raster(tmp_path / "flat_band.tif", values)
    with pytest.raises(InputError, match=r"Band\(s\) \[3\] .* constant"):
        embed_raster(path, tmp_path / "out.tif", "tile2vec-l8-rgb-compact", device="cpu")
    assert not (tmp_path / "out.tif").exists()


def test_auto_normalisation_finds_a_valid_area_the_small_check_sample_misses(tmp_path):
    """Data only in the top 8 % of rows of a 1500 x 1500 frame of nodata: the check's squares all
    fall in nodata. "auto" once chose the card's statistics as if the raster looked like its
    training data; the denser sample finds the data, and its scaling, first."""
    rng = np.random.default_rng(5)
    values = np.full((3, 1500, 1500), -9999, np.float32)
    values[:, :120] = rng.uniform(50, 200, (3, 120, 1500))
    path = write_raster(tmp_path / "strip.tif", values, nodata=-9999, block=256)
    result = embed_raster(path, tmp_path / "out.tif", "tile2vec-l8-rgb-compact", device="cpu", stride=34)
    assert any("raster's own statistics, because band" in c for c in result.choices), result.choices


def test_examples_of_embeddings_in_small_units_are_not_refused_as_near_zero(tmp_path):
    """Every example of embeddings in units of 1e-8 was refused as having 'no direction' (a fixed length
    of 1e-6); the length is now judged against the raster's typical one, and a zero example still is."""
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(4, 10, 12)) * 1e-8).astype(np.float32)
    data[:, 2, 3] = 0.0
    path = write_embedding_raster(tmp_path / "small.tif", data)
    Query().add_pixels(path, [_pixel_centre(5, 5)])
    with pytest.raises(InputError, match="zero or near-zero embedding"):
        Query().add_pixels(path, [_pixel_centre(3, 2)])
