"""Training on rasters of several sensors or scalings: each standardised by its own statistics.

Pooled statistics over an 8-bit raster and a 16-bit one make the 8-bit raster's tiles nearly
constant once standardised, and the network learns to tell the sensors apart. Training therefore
standardises each raster by its own statistics when they differ widely, records that in the card,
and the engines then standardise the raster they embed by its own statistics too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from srl_core.bundle import load_bundle
from srl_core.errors import InputError
from srl_core.raster.source import open_source
from srl_core.tiles import TileModelInputs, choose_normalisation, embed_raster
from training.tile2vec import (
    Tile2VecConfig,
    band_statistics,
    export_bundle,
    open_training_rasters,
    train_tile2vec,
)

ROOT = Path(__file__).resolve().parents[1]
CROP = ROOT / "tests" / "data" / "nc_landsat_crop.tif"  # real Landsat 7 digital numbers, 5 bands
CROP_NODATA = -99999.0


def rescaled_crop(path: Path, gain: float, offset: float, pixel_size: float = 28.5,
                  names: tuple[str, ...] = ()) -> str:
    """The real crop's pixels times ``gain`` plus ``offset`` (another sensor's scaling), nodata kept."""
    src = gdal.Open(str(CROP))
    data = src.ReadAsArray().astype(np.float64)
    valid = data != CROP_NODATA
    out = np.where(valid, data * gain + offset, CROP_NODATA).astype(np.float32)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), src.RasterXSize, src.RasterYSize, src.RasterCount,
                                              gdal.GDT_Float32)
    g = src.GetGeoTransform()
    ds.SetGeoTransform((g[0], pixel_size, 0.0, g[3], 0.0, -pixel_size))
    ds.SetProjection(src.GetProjection())
    for i in range(src.RasterCount):
        band = ds.GetRasterBand(i + 1)
        band.SetNoDataValue(CROP_NODATA)
        band.WriteArray(out[i])
        if names:
            band.SetDescription(names[i])
    ds = None
    return str(path)


def tiny(**changes) -> Tile2VecConfig:
    base = dict(tile_size=9, variant="compact", z_dim=8, neighbour_radius=4, batch_size=8, steps=4, lr=3e-3,
                seed=3, spectral_stats=True, spectral_scales=(1.0,))
    base.update(changes)
    return Tile2VecConfig(**base)


def test_rasters_of_another_scaling_are_each_standardised_by_their_own_statistics(tmp_path):
    sixteen_bit = rescaled_crop(tmp_path / "x40.tif", 40.0, 1000.0)
    rasters = open_training_rasters([str(CROP), sixteen_bit])
    auto = band_statistics(rasters)
    assert auto.per_raster and "nc_landsat_crop.tif averages" in auto.why
    assert "x40.tif's" in auto.why
    # each row is that raster's own: the rescaled raster's statistics are the crop's, rescaled
    np.testing.assert_allclose(auto.raster_mean[1], auto.raster_mean[0] * 40 + 1000, rtol=1e-4)
    np.testing.assert_allclose(auto.raster_std[1], auto.raster_std[0] * 40, rtol=1e-4)
    pooled = band_statistics(rasters, "pooled")
    assert not pooled.per_raster and pooled.why is None
    np.testing.assert_array_equal(pooled.raster_mean[0], pooled.raster_mean[1])
    np.testing.assert_array_equal(pooled.mean, auto.mean)  # the card's statistics either way


def test_two_rasters_of_each_of_two_scalings_are_each_standardised_by_their_own(tmp_path):
    """Compared with the pooled statistics of the others, each raster's twin of its own scale kept it
    within the pool's wide spread: the model was trained pooled, and embedding its own training
    rasters came out degenerate."""
    rasters = open_training_rasters([str(CROP), rescaled_crop(tmp_path / "a.tif", 0.97, 0.0),
                                     rescaled_crop(tmp_path / "b.tif", 40.0, 0.0),
                                     rescaled_crop(tmp_path / "c.tif", 41.0, 0.0)])
    assert band_statistics(rasters).per_raster


def test_rasters_alike_keep_pooled_statistics_unless_asked(tmp_path):
    brighter = rescaled_crop(tmp_path / "brighter.tif", 1.0, 2.0)  # two DN brighter: the same sensor
    rasters = open_training_rasters([str(CROP), brighter])
    assert not band_statistics(rasters).per_raster
    assert band_statistics(rasters, "per-raster").per_raster
    with pytest.raises(InputError, match="per-raster"):
        band_statistics(rasters, "each")


def test_model_trained_per_raster_embeds_a_rescaled_raster_as_the_original(tmp_path):
    sixteen_bit = rescaled_crop(tmp_path / "x40.tif", 40.0, 1000.0, pixel_size=240.0)
    result = train_tile2vec([str(CROP), sixteen_bit], tiny(), device="cpu")
    assert result.per_raster and result.pixel_size is None  # 28.5 m and 240 m: no single pixel size
    folder = export_bundle(result, tmp_path / "mixed", "mixed", band_names=["b1", "b2", "b3", "b4", "b5"])
    card = load_bundle(folder).card
    assert card.inputs["normalisation"]["per_raster"] is True and card.inputs["pixel_size_m"] is None
    assert card.training["config"]["normalisation"] == "auto"
    outputs = []
    for name, raster in (("a", str(CROP)), ("b", sixteen_bit)):
        run = embed_raster(raster, str(tmp_path / f"{name}.tif"), str(folder), stride=9, device="cpu")
        assert any("as the model was trained" in choice for choice in run.choices)
        assert not run.warnings
        outputs.append(gdal.Open(run.path).ReadAsArray())
    valid = np.isfinite(outputs[0]).all(axis=0)
    assert valid.sum() > 50
    # standardised by its own statistics, a linearly rescaled raster is the same raster to the model
    np.testing.assert_allclose(outputs[1][:, valid], outputs[0][:, valid], rtol=1e-3, atol=1e-3)


def test_model_normalisation_on_a_per_raster_model_warns():
    source = open_source(str(CROP), 5)
    inputs = TileModelInputs(bands=5, tile_size=9, mean=(0.0,) * 5, std=(1.0,) * 5, pixel_size_m=None,
                             per_raster=True)
    used, warnings, choices, _ = choose_normalisation(source, inputs, "model")
    assert used == "model" and "own statistics" in warnings[0] and not choices
    assert choose_normalisation(source, inputs, "auto")[0] == "raster"


def test_bands_named_alike_in_another_order_are_refused(tmp_path):
    rgb = rescaled_crop(tmp_path / "rgb.tif", 1.0, 0.0, names=("red", "green", "blue", "nir", "swir1"))
    bgr = rescaled_crop(tmp_path / "bgr.tif", 1.0, 0.0, names=("blue", "green", "red", "nir", "swir1"))
    with pytest.raises(InputError, match="Band 1 of .*bgr.tif is named 'blue', as band 3 of .*rgb.tif"):
        open_training_rasters([rgb, bgr])
    # bands shifted by one (blue, green, red beside green, red, nir) pooled two bands under one name
    shifted = rescaled_crop(tmp_path / "shifted.tif", 1.0, 0.0, names=("green", "blue", "nir", "swir1", "x"))
    with pytest.raises(InputError, match="named 'green', as band 2"):
        open_training_rasters([bgr, shifted])
    open_training_rasters([rgb, str(CROP)])  # unnamed bands cannot be compared: accepted
    other = rescaled_crop(tmp_path / "other.tif", 1.0, 0.0, names=("b4", "b3", "b2", "b5", "b6"))
    open_training_rasters([rgb, other])  # other names: accepted


def test_bundled_multisensor_model_standardises_each_raster_by_its_own_statistics(tmp_path):
    """The shipped multi-sensor model: an 8-bit-like copy of the real crop embeds as the crop itself."""
    scaled = rescaled_crop(tmp_path / "scaled.tif", 0.05, 3.0)
    outputs = []
    for name, raster in (("crop", str(CROP)), ("scaled", scaled)):
        run = embed_raster(raster, str(tmp_path / f"{name}-emb.tif"), "tile2vec-rgb-pixels64-multisensor",
                           bands=[1, 2, 3], stride=17, device="cpu")
        assert run.embedding_size == 86 and any("as the model was trained" in c for c in run.choices)
        outputs.append(gdal.Open(run.path).ReadAsArray())
    valid = np.isfinite(outputs[0]).all(axis=0)
    assert valid.sum() >= 20
    np.testing.assert_allclose(outputs[1][:, valid], outputs[0][:, valid], rtol=1e-3, atol=1e-3)


def test_a_per_raster_model_trained_in_a_mask_says_so_when_used_without_one(tmp_path):
    """Trained on land only, each raster standardised by its statistics inside the mask; a training raster
    half water embedded without a mask was standardised over land and water (cosine 0.45 on average to
    what training computed for the same tiles), and the run said only that it matched training (found by
    an audit). A note, not a warning: an all-land raster's statistics are the same either way."""
    from conftest import half_polygon

    sixteen_bit = rescaled_crop(tmp_path / "x40.tif", 40.0, 1000.0)
    mask = half_polygon(CROP, tmp_path / "land.gpkg")
    result = train_tile2vec([str(CROP), sixteen_bit], tiny(normalisation="per-raster"), device="cpu",
                            mask=str(mask))
    folder = export_bundle(result, tmp_path / "land_model", "land_model")
    bare = embed_raster(str(CROP), str(tmp_path / "a.tif"), str(folder), stride=9, device="cpu")
    assert any("were taken inside a mask (land.gpkg)" in c and "give a mask" in c for c in bare.choices)
    masked = embed_raster(str(CROP), str(tmp_path / "b.tif"), str(folder), stride=9, device="cpu",
                          mask_path=str(mask))
    assert not any("inside a mask" in c for c in masked.choices)


def test_a_given_nodata_leaves_a_declared_one_in_place(tmp_path):
    """--nodata 0 on a raster declaring -99999 trained its -99999 border as data (a band mean of -9381),
    while the engines keep the declared value; now training reads it as they do (found by an audit)."""
    (declared,) = open_training_rasters([str(CROP)], nodata=0.0)
    assert declared.source.nodata == (CROP_NODATA,) * 5
    stats = band_statistics([declared], "pooled")
    assert min(stats.mean) > 0 and max(stats.mean) < 255  # digital numbers, no -99999 among them


@pytest.mark.parametrize("setting, message", [
    (dict(nodata=float("nan")), "no-data value must be a finite number"),
    (dict(neighbour_radius=float("nan")), "neighbour radius must be a number of pixels"),
    (dict(distant_min_distance=float("inf")), "distance of distant tiles must be a number"),
])
def test_settings_that_are_not_numbers_are_refused_by_name(tmp_path, setting, message):
    """NaN no-data trained and wrote a card the engines refuse (not JSON's number); a NaN radius was
    reported as a raster too small (found by an audit)."""
    with pytest.raises(InputError, match=message):
        train_tile2vec([str(CROP)], tiny(**setting), device="cpu")


def _crop_with_an_undeclared_border(path: Path) -> str:
    """The real crop, its nodata replaced by 0 and a 0 border added on two sides (a scene's fill, as
    USGS scenes have it), with no nodata value declared."""
    src = gdal.Open(str(CROP))
    data = src.ReadAsArray().astype(np.float32)
    data[data == CROP_NODATA] = 0.0
    data[:, : data.shape[1] // 5] = 0.0
    data[:, :, : data.shape[2] // 5] = 0.0
    ds = gdal.GetDriverByName("GTiff").Create(str(path), src.RasterXSize, src.RasterYSize, src.RasterCount,
                                              gdal.GDT_Float32)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for i in range(src.RasterCount):
        ds.GetRasterBand(i + 1).WriteArray(data[i])
    ds = None
    return str(path)


def test_an_undeclared_fill_border_is_said_before_training_and_kept_on_the_card(tmp_path):
    """A scene's 0 border with no nodata declared was trained on as ground: the card's standard deviations
    were 4-10 times its ground's, without a word (the engines warn of it, but only when the model is used;
    found by an audit). It is said before the first step, naming --nodata 0, and kept on the card; not
    refused, and not repeated with every use of the model: zeros in every band may be data (water of
    class 0, black shadows)."""
    from srl_core.progress import Progress
    from srl_core.tiles import _training_warnings

    raster = _crop_with_an_undeclared_border(tmp_path / "bordered.tif")
    said = []
    result = train_tile2vec([raster], tiny(), progress=Progress(lambda f, m: said.append((f, m))))
    first_step = next(i for i, (_, m) in enumerate(said) if "step" in m.lower() and "Mapping" not in m)
    warned = [i for i, (_, m) in enumerate(said) if m.startswith("warning:") and "--nodata 0" in m]
    assert warned and warned[0] < first_step and said[warned[0]][0] == 0.0
    card = load_bundle(export_bundle(result, tmp_path / "m", "m")).card
    assert "are 0 in every band" in card.training["data_warnings"][0]
    assert "warnings" not in card.training and not _training_warnings(card)
    stats = band_statistics(open_training_rasters([raster], nodata=0.0), "pooled")
    assert not stats.fills
    valid = gdal.Open(raster).ReadAsArray()
    valid = valid[:, (valid != 0).all(axis=0)]
    assert np.allclose(stats.mean, valid.mean(axis=1), rtol=0.05)
