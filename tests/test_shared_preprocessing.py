"""Training and inference share one preprocessing: valid pixels, band statistics, normalisation, masks.

A Tile2Vec model is trained on tiles standardised by statistics it stores in its card; the
engines standardise the user's raster by those (or by the raster's own) and judge pixels
valid by their own rules. If the two disagreed (nodata ignored in training, a constant band
handled differently, the mask band read by one only), a model would be fed inputs unlike
those it was trained on. These tests hold them to the same numbers on one raster with
every kind of invalid pixel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import half_polygon
from osgeo import gdal, osr

from srl_core.errors import InputError
from srl_core.raster.reader import Normaliser, point_batches
from srl_core.raster.source import open_source
from srl_core.raster.statistics import band_statistics as engine_statistics
from training.tile2vec import band_statistics as training_statistics
from training.tile2vec import normalise, open_training_rasters

NODATA = -9999.0
GT = (500000.0, 30.0, 0.0, 4000000.0, 0.0, -30.0)


def utm_wkt() -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32617)
    return srs.ExportToWkt()


def write_utm(path: Path, data: np.ndarray, options: tuple[str, ...] = ()) -> str:
    """(bands, rows, cols) float32 as a GeoTIFF on ``GT`` in UTM 17N."""
    data = data.reshape(-1, *data.shape[-2:])
    ds = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], data.shape[0],
                                              gdal.GDT_Float32, list(options))
    ds.SetGeoTransform(GT)
    ds.SetProjection(utm_wkt())
    for i, band in enumerate(data):
        ds.GetRasterBand(i + 1).WriteArray(band)
    ds = None
    return str(path)


def pixel_box_mask(path: Path, col: int, row: int, width: int, height: int) -> str:
    """A polygon layer covering pixels [col, col + width) x [row, row + height) of the ``GT`` grid."""
    from osgeo import ogr

    x0, y0 = GT[0] + col * GT[1], GT[3] + row * GT[5]
    x1, y1 = x0 + width * GT[1], y0 + height * GT[5]
    vec = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = vec.CreateLayer(path.stem, osr.SpatialReference(utm_wkt()), ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    ring = f"{x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}"
    feature.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({ring}))"))
    layer.CreateFeature(feature)
    vec = None
    return str(path)


def awkward_raster(path: Path) -> str:
    """3 bands, 40 x 40 px: nodata in band 2 only, NaN in band 3 only, and a per-dataset mask band."""
    rng = np.random.default_rng(7)
    centre, spread = np.array([100.0, 50.0, 10.0])[:, None, None], np.array([10.0, 5.0, 2.0])[:, None, None]
    data = rng.normal(centre, spread, (3, 40, 40)).astype(np.float32)
    data[1, :6, :] = NODATA
    data[2, 20:23, 5:30] = np.nan
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 40, 40, 3, gdal.GDT_Float32)
    ds.SetGeoTransform(GT)
    ds.SetProjection(utm_wkt())
    for i in range(3):
        band = ds.GetRasterBand(i + 1)
        band.SetNoDataValue(NODATA)
        band.WriteArray(data[i])
    ds.CreateMaskBand(gdal.GMF_PER_DATASET)
    mask = np.full((40, 40), 255, np.uint8)
    mask[:, 34:] = 0  # e.g. an alpha-masked edge
    ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    ds = None
    return str(path)


def test_training_statistics_are_the_engines_statistics(tmp_path):
    path = awkward_raster(tmp_path / "awkward.tif")
    stats = training_statistics(open_training_rasters([path]))
    mean, std = stats.mean, stats.std
    engine = engine_statistics(open_source(path, 3))
    np.testing.assert_allclose(mean, engine.mean, rtol=1e-6)
    np.testing.assert_allclose(std, engine.std, rtol=1e-6)
    # and they are the statistics of exactly the valid pixels (no nodata, NaN or masked pixel)
    ds = gdal.Open(path)
    data = ds.ReadAsArray().astype(np.float64)
    valid = (data[1] != NODATA) & np.isfinite(data).all(axis=0)
    valid[:, 34:] = False
    np.testing.assert_allclose(mean, data[:, valid].mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(std, data[:, valid].std(axis=1), rtol=1e-4)


def test_training_tiles_are_the_tiles_the_engine_feeds_the_model(tmp_path):
    path = awkward_raster(tmp_path / "awkward.tif")
    (raster,) = open_training_rasters([path])
    stats = training_statistics([raster])
    mean, std = stats.mean, stats.std
    origins = np.array([[2, 1], [20, 15], [25, 18], [30, 30]])  # over nodata, NaN, mask edge, clean
    tile = 9
    trained = normalise(np.stack([raster.read(c, r, tile) for c, r in origins]), mean, std)
    source = open_source(path, 3)
    batches = list(point_batches(source, origins, tile, Normaliser(mean, std), 16, 1.0))
    engine = np.concatenate([b.tiles for b in batches])[np.argsort(np.concatenate([b.rows for b in batches]))]
    np.testing.assert_allclose(trained, engine, atol=1e-6)
    assert (trained[0, :, :5] == 0).all() and (trained[3] != 0).any()  # invalid pixels are 0 in every band


def test_a_constant_band_is_refused_by_both(tmp_path):
    data = np.ones((2, 20, 20), np.float32)
    data[1] = np.arange(400, dtype=np.float32).reshape(20, 20)
    path = write_utm(tmp_path / "flat.tif", data)
    with pytest.raises(InputError, match="constant"):
        engine_statistics(open_source(str(path), 2))
    with pytest.raises(InputError, match="constant"):
        training_statistics(open_training_rasters([str(path)]))


def test_a_polygon_mask_limits_training_tiles_and_statistics(tmp_path):
    data = np.zeros((1, 40, 40), np.float32)
    data[0, :, :20] = 1000.0 + np.arange(20)  # 'sea' on the left, far brighter
    data[0, :, 20:] = np.arange(20) % 5  # 'land' on the right
    path = Path(write_utm(tmp_path / "coast.tif", data))
    land = half_polygon(path, tmp_path / "land.gpkg", "right")  # columns 20..40, the 'land'
    (raster,) = open_training_rasters([str(path)], mask=str(land))
    stats = training_statistics([raster])
    mean, std = stats.mean, stats.std
    expected = data[0, :, 20:]
    np.testing.assert_allclose(mean, [expected.mean()], rtol=1e-5)
    np.testing.assert_allclose(std, [expected.std()], rtol=1e-4)
    assert np.isnan(raster.read(0, 0, 8)).all() and not np.isnan(raster.read(25, 0, 8)).any()


def _coast(tmp_path: Path, size: int = 40) -> str:
    """1 band: 'sea' on the left half, far brighter than the 'land' on the right."""
    data = np.zeros((size, size), np.float32)
    data[:, : size // 2] = 1000.0 + np.arange(size // 2)
    data[:, size // 2:] = np.arange(size - size // 2) % 5
    return write_utm(tmp_path / f"coast{size}.tif", data)


def test_the_engine_takes_statistics_inside_the_mask_as_training_does(tmp_path):
    """Training drew its statistics from inside its mask; the engine from the whole raster, so a model
    trained on the land of a coastal scene found that very scene unlike its training data."""
    path = _coast(tmp_path)
    land = str(half_polygon(Path(path), tmp_path / "land.gpkg", "right"))
    trained = training_statistics(open_training_rasters([path], mask=land))
    engine = engine_statistics(open_source(path, 1), mask_path=land)
    np.testing.assert_allclose(engine.mean, trained.mean, rtol=1e-6)
    np.testing.assert_allclose(engine.std, trained.std, rtol=1e-6)
    assert engine.whole  # every pixel inside was read: the normalisation reuses this sample


def test_a_small_mask_in_a_large_raster_is_found_by_the_sample(tmp_path):
    """The squares sampled over the whole raster would hold no pixel of a small mask: they are drawn
    over the part of the raster that holds it."""
    from srl_core.raster.statistics import DEFAULT_MAX_PIXELS

    size = 4000
    assert size * size > DEFAULT_MAX_PIXELS  # sampled, not read whole
    data = np.full((size, size), 500.0, np.float32)
    data[3900:3950, 3900:3950] = 7.0
    path = write_utm(tmp_path / "big.tif", data, ("TILED=YES", "COMPRESS=DEFLATE"))
    spot = pixel_box_mask(tmp_path / "spot.gpkg", 3900, 3900, 50, 50)
    stats = engine_statistics(open_source(path, 1), mask_path=spot, allow_constant=True)
    assert stats.mean == (7.0,) and stats.pixels == 50 * 50


def test_auto_normalisation_compares_the_masked_area(tmp_path, tiny_tile_model):
    """With the mask the model was trained inside, 'auto' keeps the card's statistics."""
    from srl_core.names import NORMALISATION_KEY
    from srl_core.tiles import embed_raster

    data = np.random.default_rng(0).normal(80.0, 30.0, (5, 48, 48)).astype(np.float32)  # the card's
    data[:, :, :24] += 5000.0  # a left half unlike anything the model saw
    path = Path(write_utm(tmp_path / "scene.tif", data))
    land = str(half_polygon(path, tmp_path / "land.gpkg", "right"))
    masked = embed_raster(path, tmp_path / "masked.tif", tiny_tile_model, device="cpu", mask_path=land)
    whole = embed_raster(path, tmp_path / "whole.tif", tiny_tile_model, device="cpu")
    assert gdal.Open(masked.path).GetMetadataItem(NORMALISATION_KEY) == "model"
    assert gdal.Open(whole.path).GetMetadataItem(NORMALISATION_KEY) == "raster"


def test_a_mask_smaller_than_a_coarse_cell_is_still_found(tmp_path):
    """A 14 x 29 px polygon in a 10,000 px raster lies between the centres of 256 coarse cells: the
    statistics fell back to the whole raster's windows, found no pixel inside and failed."""

    path = tmp_path / "wide.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 10000, 10000, 1, gdal.GDT_Byte,
                                              ["TILED=YES", "SPARSE_OK=TRUE"])
    ds.SetGeoTransform(GT)
    ds.SetProjection(utm_wkt())
    ds.GetRasterBand(1).WriteArray(np.full((29, 14), 7, np.uint8), 5005, 5005)
    ds = None
    tiny = pixel_box_mask(tmp_path / "tiny.gpkg", 5005, 5005, 14, 29)
    stats = engine_statistics(open_source(str(path), 1), mask_path=tiny, allow_constant=True)
    assert stats.mean == (7.0,) and stats.pixels == 14 * 29
