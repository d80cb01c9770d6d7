"""The tile engine end to end: known answers, georeferencing, nodata, masks, cancel and bad input."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal, ogr, osr
from test_raster_grid import GT, UTM33, ramp, write_raster

from srl_core.bundle import LoadedModel, ModelCard, save_bundle
from srl_core.cli import main as cli_main
from srl_core.embedding_format import read_raster_info
from srl_core.errors import CancelledError, InputError, ModelError, OutputError
from srl_core.models.tile import build_from_config
from srl_core.progress import Progress
from srl_core.tiles import embed_raster, embed_tiles_at_points

DATA = Path(__file__).resolve().parent / "data"
CROP = str(DATA / "nc_landsat_crop.tif")


class TileMean(torch.nn.Module):
    """A 'model' with a known answer: the per-band mean of the (normalised) tile."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def mean_model(bands: int, tile: int, mean: float = 0.0, std: float = 1.0) -> LoadedModel:
    norm = {"mean": [mean] * bands, "std": [std] * bands}
    card = ModelCard(id="tile-mean", kind="tile", architecture="tilenet", config={"in_channels": bands},
                     embedding_size=bands, inputs={"tile_size": tile, "normalisation": norm})
    return LoadedModel(TileMean(), card)


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    """A small compact TileNet bundle for the 5-band NC Landsat crop (random weights, fixed seed)."""
    torch.manual_seed(0)
    config = {"in_channels": 5, "variant": "compact", "widths": [8, 16], "blocks": [1, 1, 1], "z_dim": 12}
    card = ModelCard(id="tiny-nc", kind="tile", architecture="tilenet", config=config, embedding_size=12,
                     inputs={"tile_size": 16, "pixel_size_m": 30.0,
                             "normalisation": {"mean": [80, 65, 70, 60, 100], "std": [20, 20, 25, 30, 40]}})
    return save_bundle(build_from_config(config).eval(), card, tmp_path_factory.mktemp("models") / "tiny-nc")


def read(path) -> tuple[np.ndarray, gdal.Dataset]:
    ds = gdal.Open(str(path))
    return ds.ReadAsArray(), ds


def test_tile_means_with_overlap_and_georeferencing(tmp_path) -> None:
    data = ramp(2, 45, 52)
    src = write_raster(tmp_path / "in.tif", data, block=16)
    out = tmp_path / "emb.tif"
    result = embed_raster(src, out, mean_model(2, 12, mean=1.0, std=2.0), stride=5, batch_size=7,
                          normalisation="model")
    emb, ds = read(out)
    assert (result.width, result.height, result.tiles_total, result.tiles_embedded) == (9, 7, 63, 63)
    assert emb.shape == (2, 7, 9)
    for r in range(7):
        for c in range(9):
            tile = data[:, 5 * r:5 * r + 12, 5 * c:5 * c + 12]
            np.testing.assert_allclose(emb[:, r, c], (tile.mean(axis=(1, 2)) - 1) / 2, rtol=1e-5)
    # Output pixel (0, 0) is centred on the first tile's centre (6, 6) px, one stride (50 m) wide.
    assert ds.GetGeoTransform() == pytest.approx((GT[0] + 3.5 * 10, 50.0, 0.0, GT[3] - 3.5 * 10, 0.0, -50.0))
    srs = osr.SpatialReference(wkt=ds.GetProjection())
    assert srs.GetAuthorityCode(None) == str(UTM33)
    info = read_raster_info(str(out))
    assert (info.model_id, info.size, info.tile_size, info.stride) == ("tile-mean", 2, 12, 5)
    assert ds.GetRasterBand(2).GetDescription() == "emb_001"
    assert np.isnan(ds.GetRasterBand(1).GetNoDataValue())


def test_mostly_nodata_tiles_are_nan_and_others_filled(tmp_path) -> None:
    data = np.full((1, 40, 40), 7.0, dtype=np.float32)
    data[0, :, :6] = 0  # nodata in 60% of the first column of tiles
    data[0, 12, 12] = 0  # one nodata pixel in tile (1, 1): filled with the band mean (0 after normalising)
    src = write_raster(tmp_path / "in.tif", data, nodata=0)
    result = embed_raster(src, tmp_path / "emb.tif", mean_model(1, 10, mean=5.0))
    emb, _ = read(tmp_path / "emb.tif")
    assert np.isnan(emb[:, 0]).all() and result.tiles_embedded == 12
    assert emb[1, 1] == pytest.approx(2.0 * 99 / 100)
    assert emb[0, 1] == pytest.approx(2.0)
    embed_raster(src, tmp_path / "lenient.tif", mean_model(1, 10, mean=5.0), max_nodata_fraction=0.6)
    assert np.isfinite(read(tmp_path / "lenient.tif")[0]).all()


def test_real_crop_with_tilenet_bundle(tmp_path, tiny_bundle) -> None:
    """The committed NC Landsat crop: left nodata border -> NaN, deterministic, float16 close to float32."""
    first = embed_raster(CROP, tmp_path / "a.tif", tiny_bundle, stride=8, device="cpu")
    embed_raster(CROP, tmp_path / "b.tif", str(tiny_bundle), stride=8, batch_size=13, device="cpu")
    embed_raster(CROP, tmp_path / "h.tif", tiny_bundle, stride=8, dtype="float16", device="cpu")
    a, ds = read(tmp_path / "a.tif")
    b, _ = read(tmp_path / "b.tif")
    h, _ = read(tmp_path / "h.tif")
    assert a.shape == (12, 15, 15) and first.embedding_size == 12 and first.warnings == ()
    assert np.isnan(a[:, :, 0]).all()  # tiles over the crop's 12 nodata columns: 12/16 > 0.5
    assert np.isfinite(a[:, :, 2:]).all()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)  # batching does not matter
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Float32
    np.testing.assert_allclose(h, a, rtol=2e-3, atol=2e-3, equal_nan=True)
    assert (tmp_path / "h.tif").stat().st_size < (tmp_path / "a.tif").stat().st_size


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_cuda_gpu_the_raster_matches_the_cpus(tmp_path, tiny_bundle) -> None:
    """With batches in flight on the GPU (small batches: many per strip), every tile is its own."""
    embed_raster(CROP, tmp_path / "cpu.tif", tiny_bundle, stride=8, device="cpu")
    embed_raster(CROP, tmp_path / "gpu.tif", tiny_bundle, stride=8, device="cuda", batch_size=5)
    cpu, gpu = read(tmp_path / "cpu.tif")[0], read(tmp_path / "gpu.tif")[0]
    np.testing.assert_allclose(gpu, cpu, rtol=0, atol=2e-3 * np.nanmax(np.abs(cpu)), equal_nan=True)


def test_points_match_the_embedding_raster(tmp_path, tiny_bundle) -> None:
    embed_raster(CROP, tmp_path / "emb.tif", tiny_bundle, device="cpu")  # a GPU's TF32 differs by batch
    emb, ds = read(tmp_path / "emb.tif")
    gt = ds.GetGeoTransform()
    cells = [(2, 3), (7, 7), (0, 0), (5, 1)]
    xy = [(gt[0] + (c + 0.5) * gt[1], gt[3] + (r + 0.5) * gt[5]) for r, c in cells]
    xy += [(gt[0] - 5000, gt[3]), (np.nan, 0.0)]
    points, valid = embed_tiles_at_points(CROP, np.array(xy), tiny_bundle, batch_size=3, device="cpu")
    assert valid.tolist() == [True, True, False, True, False, False]  # (0, 0) is mostly nodata
    for i, (r, c) in enumerate(cells):
        if valid[i]:
            np.testing.assert_allclose(points[i], emb[:, r, c], rtol=1e-5, atol=1e-6)
    assert np.isnan(points[~valid]).all() and points.dtype == np.float32


def test_extent_and_masks(tmp_path) -> None:
    data = ramp(1, 60, 60)
    src = write_raster(tmp_path / "in.tif", data)
    model = mean_model(1, 10)
    extent = (GT[0] + 100, GT[3] - 400, GT[0] + 400, GT[3] - 200)  # pixels x 10..40, y 20..40
    embed_raster(src, tmp_path / "ext.tif", model, extent=extent, normalisation="model")
    emb, ds = read(tmp_path / "ext.tif")
    assert emb.shape == (2, 3) and ds.GetGeoTransform()[0] == GT[0] + 100
    assert emb[1, 2] == pytest.approx(data[0, 30:40, 30:40].mean())

    mask = np.zeros((1, 60, 60), dtype=np.uint8)
    mask[0, :30, :] = 1  # top half inside
    mask_path = write_raster(tmp_path / "mask.tif", mask)
    embed_raster(src, tmp_path / "masked.tif", model, mask_path=mask_path)
    masked, _ = read(tmp_path / "masked.tif")
    assert np.isfinite(masked[:3]).all() and np.isnan(masked[3:]).all()

    polygon = tmp_path / "poly.gpkg"
    vds = ogr.GetDriverByName("GPKG").CreateDataSource(str(polygon))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM33)
    layer = vds.CreateLayer("area", srs, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    x0, y0 = GT[0], GT[3]  # the left 20 px (two tile columns), full height
    feature.SetGeometry(ogr.CreateGeometryFromWkt(
        f"POLYGON(({x0} {y0},{x0 + 200} {y0},{x0 + 200} {y0 - 600},{x0} {y0 - 600},{x0} {y0}))"))
    layer.CreateFeature(feature)
    vds = None
    embed_raster(src, tmp_path / "poly.tif", model, mask_path=str(polygon))
    poly, _ = read(tmp_path / "poly.tif")
    assert np.isfinite(poly[:, :2]).all() and np.isnan(poly[:, 2:]).all()

    # a second layer: the file alone no longer says which polygons; the layer named does
    vds = ogr.Open(str(polygon), 1)
    layer = vds.CreateLayer("right", srs, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    left, right_edge = x0 + 400, x0 + 600  # the right 20 px
    ring = f"{left} {y0},{right_edge} {y0},{right_edge} {y0 - 600},{left} {y0 - 600},{left} {y0}"
    feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({ring}))"))
    layer.CreateFeature(feature)
    vds = None
    with pytest.raises(InputError, match=r"holds 2 layers \(area, right\): name the one"):
        embed_raster(src, tmp_path / "two.tif", model, mask_path=str(polygon))
    with pytest.raises(InputError, match="has no layer 'nope'"):
        embed_raster(src, tmp_path / "two.tif", model, mask_path=f"{polygon}|layername=nope")
    embed_raster(src, tmp_path / "right.tif", model, mask_path=f"{polygon}|layername=right")
    right, _ = read(tmp_path / "right.tif")
    assert np.isnan(right[:, :4]).all() and np.isfinite(right[:, 4:]).all()
    assert not (tmp_path / "two.tif").exists()


@pytest.mark.parametrize("chunk_cells", [1 << 22, 12, 1])  # the whole grid at once, 2 rows, 1 row at a time
def test_a_raster_mask_means_non_zero_and_not_nodata_whatever_its_values(tmp_path, monkeypatch,
                                                                          chunk_cells) -> None:
    """Zero, nodata, NaN and the grid beyond the mask are outside; -1 and 0.4 are inside. Warping into
    bytes with 0 as nodata lost the last two, and on GDAL >= 3.9 turned every 0 into 1 (inside)."""
    import srl_core.raster.mask as masks
    from srl_core.raster.mask import outside_mask

    monkeypatch.setattr(masks, "CHUNK_CELLS", chunk_cells)

    values = np.array([[-1.0, 0.4, 0.0, -9999.0, 7.0, np.nan], [7.0, 0.0] * 3], dtype=np.float32)
    mask = write_raster(tmp_path / "mask.tif", np.repeat(values, 2, axis=1)[None], nodata=-9999.0)
    cells = (GT[0], 20.0, 0.0, GT[3], 0.0, -10.0)  # a tile per 2 mask pixels, a row past the mask
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM33)
    outside = outside_mask(mask, cells, srs.ExportToWkt(), 6, 3)
    assert outside.tolist() == [[False, False, True, True, False, True], [False, True] * 3, [True] * 6]


def test_a_polygon_mask_without_a_crs_is_refused_by_name(tmp_path) -> None:
    """GDAL transformed it anyway: PROJ's 'Invalid latitude' noise, then 'does not cover any pixel'."""
    from srl_core.raster.mask import outside_mask

    vec = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "m.gpkg"))
    layer = vec.CreateLayer("m", None, ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({GT[0]} {GT[3]},{GT[0] + 50} {GT[3]},"
                                                  f"{GT[0] + 50} {GT[3] - 50},{GT[0]} {GT[3]})))"))
    layer.CreateFeature(feature)
    feature = layer = vec = None
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM33)
    with pytest.raises(InputError, match="has no CRS"):
        outside_mask(str(tmp_path / "m.gpkg"), (GT[0], 10.0, 0.0, GT[3], 0.0, -10.0), srs.ExportToWkt(), 6, 3)


def test_cancel_leaves_nothing_and_keeps_an_existing_output(tmp_path, write_thread) -> None:
    src = write_raster(tmp_path / "in.tif", ramp(1, 200, 200))
    out = tmp_path / "emb.tif"
    out.write_bytes(b"previous result")
    calls = []
    progress = Progress(lambda f, m: calls.append(f), lambda: len(calls) > 2)
    started = threading.active_count()
    with pytest.raises(CancelledError):
        embed_raster(src, out, mean_model(1, 4), batch_size=8, progress=progress)
    assert threading.active_count() == started  # no reader or writer left running
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.tif", "in.tif"]
    assert out.read_bytes() == b"previous result"


def test_failed_write_leaves_nothing(tmp_path, monkeypatch, write_thread) -> None:
    from test_safety_crashes import fill_the_disk_of_geotiffs

    from srl_core import tiles

    src = write_raster(tmp_path / "in.tif", ramp(1, 40, 40))
    fill_the_disk_of_geotiffs(monkeypatch, tiles)
    started = threading.active_count()
    with pytest.raises(OutputError, match="disk full"):
        embed_raster(src, tmp_path / "emb.tif", mean_model(1, 10), stride=2, batch_size=8)
    assert threading.active_count() == started
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


def test_bad_inputs(tmp_path, tiny_bundle) -> None:
    model = mean_model(2, 10)
    two = write_raster(tmp_path / "two.tif", ramp(2, 30, 30))
    with pytest.raises(InputError, match="smaller than one 64 x 64"):
        embed_raster(two, tmp_path / "o.tif", model, tile_size=64)
    with pytest.raises(InputError, match="expects 5 band"):
        embed_raster(two, tmp_path / "o.tif", tiny_bundle)
    with pytest.raises(InputError, match="do not exist"):
        embed_raster(two, tmp_path / "o.tif", model, bands=[2, 3])
    empty = write_raster(tmp_path / "empty.tif", np.zeros((2, 30, 30), dtype=np.uint8), nodata=0)
    with pytest.raises(InputError, match="nothing to embed"):
        embed_raster(empty, tmp_path / "o.tif", model)
    geographic = write_raster(tmp_path / "geo.tif", ramp(2, 30, 30), (10, 0.001, 0, 50, 0, -0.001), 4326)
    with pytest.raises(InputError, match="geographic"):
        embed_raster(geographic, tmp_path / "o.tif", model)
    with pytest.raises(OutputError, match="overwrite the input"):
        embed_raster(two, two, model)
    with pytest.raises(OutputError, match="does not exist"):
        embed_raster(two, tmp_path / "missing" / "o.tif", model)
    with pytest.raises(InputError, match="float16"):
        embed_raster(two, tmp_path / "o.tif", model, dtype="int8")
    location = LoadedModel(TileMean(), ModelCard(id="loc", kind="location", architecture="location_encoder",
                                                 config={}, embedding_size=2))
    with pytest.raises(ModelError, match="not a tile model"):
        embed_raster(two, tmp_path / "o.tif", location)
    with pytest.raises(InputError, match=r"\(N, 2\)"):
        embed_tiles_at_points(two, np.zeros(3), model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tif", "geo.tif", "two.tif"]


def test_command_line(tmp_path, tiny_bundle, capsys) -> None:
    out = tmp_path / "emb.tif"
    code = cli_main(["embed-raster", CROP, str(out), "--model", str(tiny_bundle), "--stride", "16",
                     "--bands", "1,2,3,4,5", "--float16"])
    assert code == 0 and read_raster_info(str(out)).size == 12
    assert "tiles embedded" in capsys.readouterr().out
    assert cli_main(["embed-raster", CROP, str(tmp_path / "x.tif"), "--model", str(tiny_bundle),
                     "--bands", "1,2"]) == 2
    assert "expects 5 band" in capsys.readouterr().err


def test_mixed_precision_off_a_gpu_is_refused_before_any_work(tmp_path, tiny_bundle, capsys) -> None:
    """API, both engine entry points, and the command line: one sentence naming the setting, no output."""
    out = tmp_path / "emb.tif"
    with pytest.raises(InputError, match="Precision 'mixed' needs a CUDA device.*set precision to fp32"):
        embed_raster(CROP, out, str(tiny_bundle), device="cpu", precision="mixed")
    with pytest.raises(InputError, match="Precision must be one of fp32, mixed"):
        embed_tiles_at_points(CROP, np.zeros((1, 2)), str(tiny_bundle), precision="half")
    assert cli_main(["embed-raster", CROP, str(out), "--model", str(tiny_bundle), "--device", "cpu",
                     "--precision", "mixed"]) == 2
    assert "Precision 'mixed' needs a CUDA device" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_default_batch_is_larger_on_a_cuda_gpu() -> None:
    from srl_core.tile_encoder import default_batch_size

    assert default_batch_size(torch.device("cpu")) == 64
    assert default_batch_size(torch.device("cuda")) == 1024  # a torch.device needs no GPU to exist


@pytest.mark.parametrize("inputs,message", [
    ({"tile_size": 10}, "normalisation"),
    ({"tile_size": 10, "normalisation": {"mean": [0], "std": [1]}}, "normalisation"),
    ({"tile_size": 10, "normalisation": {"mean": [0, 0], "std": [1, 0]}}, "non-positive"),
    ({"normalisation": {"mean": [0, 0], "std": [1, 1]}}, "tile size"),
])
def test_incomplete_model_cards(tmp_path, inputs: dict, message: str) -> None:
    card = ModelCard(id="broken", kind="tile", architecture="tilenet", config={"in_channels": 2},
                     embedding_size=2, inputs=inputs)
    src = write_raster(tmp_path / "in.tif", ramp(2, 20, 20))
    with pytest.raises(ModelError, match=message):
        embed_raster(src, tmp_path / "o.tif", LoadedModel(TileMean(), card))
    assert not (tmp_path / "o.tif").exists()
