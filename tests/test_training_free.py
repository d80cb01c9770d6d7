"""Training-free tile encoders (band statistics, MOSAIKS) as first-class models, on the real Landsat crop."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import LANDSAT_CROP
from osgeo import gdal

from srl_core.bundle import LoadedModel, load_model
from srl_core.errors import ModelError
from srl_core.models.training_free import BandStatistics, RandomConvFeatures
from srl_core.names import MODEL_SETTINGS_KEY as SETTINGS_KEY
from srl_core.raster.source import open_source
from srl_core.raster.statistics import band_statistics
from srl_core.tiles import embed_raster, embed_tiles_at_points
from srl_core.training_free import bind_to_raster, resolve_model, sample_filters


def test_band_statistics_of_a_known_tile():
    tile = torch.zeros(1, 2, 8, 8)
    tile[0, 0, :, 4:] = 2.0  # band 1: left half 0, right half 2
    tile[0, 1] = 3.0  # band 2: constant
    out = BandStatistics(2, scales=(1.0, 0.25))(tile)[0]
    # whole tile: means (1, 3), stds (1, 0); centred 2 x 2 px: half 0, half 2 again
    np.testing.assert_allclose(out.numpy(), [1.0, 3.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0], atol=1e-6)


def test_mosaiks_is_relu_of_both_signs_of_the_response_averaged():
    module = RandomConvFeatures(1, filters=1, patch=1, bias=1.0)
    module.weight.fill_(1.0)
    tile = torch.tensor([[[[3.0, -2.0], [0.5, -4.0]]]])
    out = module(tile)[0].numpy()
    np.testing.assert_allclose(out, [(2.0 + 0 + 0 + 0) / 4, (0 + 1.0 + 0 + 3.0) / 4])


def test_band_statistics_and_mosaiks_leave_invalid_pixels_out():
    """The engine gives these models NaN for invalid pixels: statistics over the valid ones, MOSAIKS
    averaged over the patches without one (a crop with none valid gives 0, 0)."""
    tile = torch.full((1, 1, 8, 8), float("nan"))
    tile[0, 0, :, :4] = torch.tensor([1.0, 3.0, 1.0, 3.0])  # left half valid: columns 1, 3, 1, 3
    out = BandStatistics(1, scales=(1.0, 0.25))(tile)[0].numpy()
    np.testing.assert_allclose(out, [2.0, 1.0, 3.0, 0.0], atol=1e-6)  # the centred 2 x 2 px: one valid column
    tile[0, 0, :, 3] = float("nan")
    np.testing.assert_allclose(BandStatistics(1, scales=(0.25,))(tile)[0].numpy(), [0.0, 0.0])
    module = RandomConvFeatures(1, filters=1, patch=3, bias=1.0)
    module.weight.fill_(1.0)
    tile = torch.full((1, 1, 5, 5), float("nan"))
    tile[0, 0, :, :3] = 1.0  # one column of whole 3 x 3 patches (3 positions), response 9 each
    np.testing.assert_allclose(module(tile)[0].numpy(), [8.0, 0.0])


def test_training_free_models_describe_a_tiles_valid_ground(tmp_path):
    """A tile 7 of whose 17 columns are no data: its band statistics are those of its valid pixels
    (they were pulled to the raster's mean, the 0 given to invalid pixels)."""
    raster = tmp_path / "edge.tif"
    image = gdal.Open(str(LANDSAT_CROP)).ReadAsArray()[:3, :34, :34].astype(np.float32)
    image[:, :, :7] = -9999.0
    ds = gdal.GetDriverByName("GTiff").Create(str(raster), 34, 34, 3, gdal.GDT_Float32)
    ds.SetGeoTransform((0.0, 30.0, 0.0, 0.0, 0.0, -30.0))
    ds.SetProjection(gdal.Open(str(LANDSAT_CROP)).GetProjection())
    for band in range(3):
        ds.GetRasterBand(band + 1).WriteArray(image[band])
        ds.GetRasterBand(band + 1).SetNoDataValue(-9999.0)
    ds = None
    result = embed_raster(raster, tmp_path / "stats.tif", "bandstats", tile_size=17, device="cpu")
    first = gdal.Open(result.path).ReadAsArray()[:, 0, 0]
    stats = band_statistics(open_source(str(raster), 3))
    valid = image[:, :17, 7:17]
    standard = (valid - np.asarray(stats.mean)[:, None, None]) / np.asarray(stats.std)[:, None, None]
    np.testing.assert_allclose(first, np.concatenate([standard.mean(axis=(1, 2)), standard.std(axis=(1, 2))]),
                               rtol=1e-4, atol=1e-5)


def test_mosaiks_filters_are_scaled_patches_of_the_raster():
    source = open_source(str(LANDSAT_CROP), 5)
    stats = band_statistics(source)
    filters = sample_filters(source, stats.mean, stats.std, filters=6, patch=3, seed=4, whiten=False)
    image = gdal.Open(str(LANDSAT_CROP)).ReadAsArray().astype(np.float64)
    standard = (image - np.asarray(stats.mean)[:, None, None]) / np.asarray(stats.std)[:, None, None]
    windows = np.lib.stride_tricks.sliding_window_view(standard, (3, 3), axis=(1, 2))  # (5, H-2, W-2, 3, 3)
    patches = windows.transpose(1, 2, 0, 3, 4).reshape(-1, 5 * 9)
    for f in filters.reshape(6, -1).astype(np.float64):
        ratio = patches @ f / (np.linalg.norm(patches, axis=1) * np.linalg.norm(f) + 1e-12)
        assert ratio.max() > 0.99999  # some patch of the raster is this filter, up to its scale


def test_bound_models_take_the_rasters_bands_and_statistics():
    for model_id, size in (("mosaiks-rcf", 256), ("bandstats-multiscale", 6 * 5)):
        bound = bind_to_raster(load_model(model_id), LANDSAT_CROP)
        assert bound.card.config["in_channels"] == 5 and bound.card.embedding_size == size
        stats = band_statistics(open_source(str(LANDSAT_CROP), 5))
        assert bound.card.inputs["normalisation"]["mean"] == list(stats.mean)
    assert bind_to_raster(load_model("mosaiks-rcf"), LANDSAT_CROP, bands=[3]).card.config["in_channels"] == 1


def test_embed_raster_with_mosaiks_records_its_seed_and_is_reproducible(tmp_path):
    first = embed_raster(LANDSAT_CROP, tmp_path / "a.tif", "mosaiks-rcf", tile_size=16, device="cpu")
    again = embed_raster(LANDSAT_CROP, tmp_path / "b.tif", "mosaiks-rcf", tile_size=16, device="cpu")
    loaded = load_model("mosaiks-rcf")
    reseeded = replace(loaded.card, config={**loaded.card.config, "seed": 1})
    other = LoadedModel(loaded.module, reseeded, loaded.path)
    third = embed_raster(LANDSAT_CROP, tmp_path / "c.tif", other, tile_size=16, device="cpu")
    ds = gdal.Open(first.path)
    settings = json.loads(ds.GetMetadataItem(SETTINGS_KEY))
    assert settings["seed"] == 0 and settings["filters"] == 128 and settings["in_channels"] == 5
    assert json.loads(gdal.Open(third.path).GetMetadataItem(SETTINGS_KEY))["seed"] == 1
    a, b, c = (gdal.Open(r.path).ReadAsArray() for r in (first, again, third))
    assert first.embedding_size == 256 and first.tiles_embedded == 56  # the nodata border column is NaN
    np.testing.assert_array_equal(a, b)
    valid = np.isfinite(a)
    assert not np.allclose(a[valid], c[valid])


def test_band_statistics_model_through_the_point_engine():
    xy = np.array([[gdal.Open(str(LANDSAT_CROP)).GetGeoTransform()[0] + 64 * 28.5,
                    gdal.Open(str(LANDSAT_CROP)).GetGeoTransform()[3] - 64 * 28.5]])
    emb, valid = embed_tiles_at_points(LANDSAT_CROP, xy, "bandstats-multiscale", device="cpu")
    assert valid.all() and emb.shape == (1, 30) and np.isfinite(emb).all()
    assert (emb[0, 5:10] > 0).all()  # standard deviations over the whole tile


def test_auto_picks_a_learned_model_for_its_bands_else_mosaiks(tmp_path):
    assert resolve_model("auto", LANDSAT_CROP).id == "mosaiks-rcf"  # 5 bands: no learned model fits
    assert resolve_model("auto", LANDSAT_CROP, bands=[1, 2, 3]).id == "tile2vec-l8-rgb-pixels64"
    result = embed_raster(LANDSAT_CROP, tmp_path / "auto.tif", "auto", tile_size=16, device="cpu")
    assert result.model_id == "mosaiks-rcf"


def test_auto_takes_a_users_model_by_its_band_names_not_by_their_count(tmp_path, user_models_dir):
    """A scratch model trained on band 1 of a crop (its band unnamed) was used for any one-band raster;
    named like the raster's bands it is still picked."""
    from training.tile2vec import Tile2VecConfig, export_bundle, train_tile2vec

    one = str(tmp_path / "one.tif")
    gdal.Translate(one, str(LANDSAT_CROP), bandList=[1])
    result = train_tile2vec([one], Tile2VecConfig(tile_size=16, steps=2, batch_size=4, z_dim=4), device="cpu")
    export_bundle(result, user_models_dir / "scratch", "scratch")
    assert resolve_model("auto", one).id == "mosaiks-rcf"
    named = str(tmp_path / "named.tif")
    gdal.Translate(named, one)
    ds = gdal.Open(named, gdal.GA_Update)
    ds.GetRasterBand(1).SetDescription("swir")
    ds = None
    export_bundle(result, user_models_dir / "swir", "swir", band_names=["swir"])
    assert resolve_model("auto", named).id == "swir"


@pytest.mark.parametrize("names, expected", [
    (["B4 NIR", "B5 SWIR1", "B7 SWIR2"], "mosaiks-rcf"),  # named otherwise than blue, green, red
    (["elevation", "slope", "aspect"], "mosaiks-rcf"),
    (["B2", "B3", "B4"], "tile2vec-l8-rgb-pixels64"),  # numbers only: taken in their order, as before
])
def test_auto_feeds_no_rgb_model_bands_named_otherwise(tmp_path, names, expected):
    """Three bands named NIR, SWIR1, SWIR2 (or elevation, slope, aspect) went to the RGB model by their
    count, as blue, green and red, without a word."""
    path = str(tmp_path / "three.tif")
    gdal.Translate(path, str(LANDSAT_CROP), bandList=[1, 2, 3])
    ds = gdal.Open(path, gdal.GA_Update)
    for band, name in enumerate(names, start=1):
        ds.GetRasterBand(band).SetDescription(name)
        ds.GetRasterBand(band).SetColorInterpretation(gdal.GCI_Undefined)
    ds = None
    assert resolve_model("auto", path).id == expected


def test_a_card_whose_method_contradicts_its_architecture_is_refused():
    loaded = load_model("mosaiks-rcf")
    wrong = replace(loaded.card, config={**loaded.card.config, "method": "bandstats"})
    bad = LoadedModel(loaded.module, wrong)
    with pytest.raises(ModelError, match="method"):
        bind_to_raster(bad, LANDSAT_CROP)


def test_auto_then_band_choice_and_normalisation_auto_compose(tmp_path):
    """Model 'auto' first picks the model (by the raster's band names: the bundled sample's 6 named
    Landsat bands hold the RGB model's blue, green, red), then the band choice and 'auto'
    normalisation apply to the picked model."""
    from pathlib import Path

    sample = Path(__file__).resolve().parent.parent / "resources" / "sample_data" / "nc_landsat7_2000.tif"
    assert resolve_model("auto", sample).id == "tile2vec-l8-rgb-pixels64"
    out = tmp_path / "auto.tif"
    result = embed_raster(sample, out, "auto", device="cpu")
    ds = gdal.Open(str(out))
    assert result.model_id == "tile2vec-l8-rgb-pixels64"
    assert ds.GetMetadataItem("SRL_BANDS") == "1,2,3"
    assert ds.GetMetadataItem("SRL_NORMALISATION") == "raster"  # 8-bit DN, unlike the training data
    assert any("names" in c for c in result.choices)


def test_training_free_models_always_standardise_by_the_rasters_own_statistics(tmp_path):
    out = tmp_path / "bandstats.tif"
    result = embed_raster(LANDSAT_CROP, out, "bandstats", tile_size=16, normalisation="model", device="cpu")
    assert gdal.Open(str(out)).GetMetadataItem("SRL_NORMALISATION") == "raster"
    assert not result.warnings  # no "unlike its training data" warning: it has none


def test_cards_of_training_free_models_may_leave_the_embedding_size_to_the_raster():
    from srl_core.card_schema import check_card_fields

    check_card_fields({"architecture": "bandstats", "embedding_size": 0}, "card.json")
    with pytest.raises(ModelError, match="embedding_size"):
        check_card_fields({"architecture": "tilenet", "embedding_size": 0}, "card.json")


@pytest.mark.parametrize("change, said", [
    ({"seed": -1}, "seed must be a whole number"),
    ({"seed": "x"}, "seed must be a whole number"),
    ({"patch": 40}, "patch 1 to 15 px"),
    ({"filters": 500_000}, "filters must be 1 to 8,192"),  # ran minutes to ask for 13 TiB
])
def test_a_mosaiks_card_out_of_bounds_is_refused_by_name(change, said):
    loaded = load_model("mosaiks-rcf")
    bad = LoadedModel(loaded.module, replace(loaded.card, config={**loaded.card.config, **change}))
    with pytest.raises(ModelError, match=said):
        bind_to_raster(bad, LANDSAT_CROP)


def test_a_mosaiks_card_must_state_the_size_its_filters_make():
    """A card of 100 values was listed as such, and embedded 256 (its 128 filters), unsaid."""
    loaded = load_model("mosaiks-rcf")
    with pytest.raises(ModelError, match="embedding_size 100, but its 128 filters make 256 values"):
        bind_to_raster(LoadedModel(loaded.module, replace(loaded.card, embedding_size=100)), LANDSAT_CROP)


def test_tiles_smaller_than_the_mosaiks_patch_are_refused_by_name(tmp_path):
    """--tile-size 2 with mosaiks-rcf (also model auto's pick) was 'a bug in SRL' from the convolution."""
    from srl_core.errors import InputError

    with pytest.raises(InputError, match="tile size of at least 3 px, not 2"):
        embed_raster(LANDSAT_CROP, tmp_path / "e.tif", "mosaiks-rcf", tile_size=2)
    with pytest.raises(InputError, match="tile size of at least 3 px, not 1"):
        embed_tiles_at_points(LANDSAT_CROP, np.zeros((1, 2)), "mosaiks-rcf", tile_size=1)
    assert list(tmp_path.iterdir()) == []
