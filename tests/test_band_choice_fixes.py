"""Band choice by name prefers a band named wholly by the model's band name ("B4 red") to one the
name is only part of ("B5 red edge 1"), on real sensors' band naming; and alpha bands are no data:
left out of the default bands of training-free models and of the positional fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr

from srl_core.band_choice import choose_bands, match_band_names
from srl_core.tiles import embed_raster, embed_tiles_at_points
from srl_core.training_free import bind_to_raster, resolve_model

RGB = ["blue", "green", "red"]
SENTINEL2 = ["B1 coastal aerosol", "B2 blue", "B3 green", "B4 red", "B5 red edge 1", "B6 red edge 2",
             "B7 red edge 3", "B8 nir", "B8A nir narrow", "B11 swir 1", "B12 swir 2"]
LANDSAT8 = ["Coastal Aerosol", "Blue", "Green", "Red", "Near Infrared (NIR)", "SWIR 1", "SWIR 2"]
SIZE = 64


def named_raster(path: Path, values: np.ndarray, descriptions=(), interpretations=(), options=(),
            dtype=gdal.GDT_Float32) -> str:
    """A GeoTIFF in UTM metres with ``values`` (bands, rows, cols), its band descriptions and colours."""
    ds = gdal.GetDriverByName("GTiff").Create(str(path), values.shape[2], values.shape[1], values.shape[0],
                                              dtype, list(options))
    ds.SetGeoTransform((500000, 30, 0, 4000000, 0, -30))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32617)
    ds.SetProjection(srs.ExportToWkt())
    for i, plane in enumerate(values):
        ds.GetRasterBand(i + 1).WriteArray(plane)
    for i, text in enumerate(descriptions):
        ds.GetRasterBand(i + 1).SetDescription(text)
    for i, interp in enumerate(interpretations):
        ds.GetRasterBand(i + 1).SetColorInterpretation(interp)
    ds = None
    return str(path)


def _noise(bands: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(20, 230, (bands, SIZE, SIZE)).astype(np.float32)


def _named(tmp_path: Path, descriptions: list[str]) -> str:
    return named_raster(tmp_path / "named.tif", _noise(len(descriptions)), descriptions=descriptions)


def _rgba(tmp_path: Path, alpha: np.ndarray, name: str = "rgba.tif") -> str:
    """An 8-bit RGBA GeoTIFF (colour interpretations red, green, blue, alpha) with the given alpha."""
    values = np.concatenate([_noise(3).astype(np.uint8), alpha[None].astype(np.uint8)])
    return named_raster(tmp_path / name, values, options=("ALPHA=YES", "PHOTOMETRIC=RGB"),
                        dtype=gdal.GDT_Byte)


def _alpha_half_transparent() -> np.ndarray:
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    alpha[:, : SIZE // 2] = 0
    return alpha


def test_a_band_named_wholly_beats_one_the_name_is_part_of(tmp_path):
    """The auditor's Sentinel-2 raster: "red" is in "B4 red" and "B5 red edge 1", and B4 is red."""
    s2 = choose_bands(_named(tmp_path, SENTINEL2[:5] + ["B8 nir"]), 3, RGB)
    assert s2.bands == (2, 3, 4)
    assert s2.reason.endswith(": blue = band 2, green = band 3, red = band 4.")
    assert match_band_names(RGB, [["blue-green"], ["blue"], ["green"], ["red"], ["nir"]]) == (2, 3, 4)
    assert match_band_names(["red"], [["red edge"], ["red"]]) == (2,)


def test_sentinel2_and_landsat8_band_names(tmp_path):
    """Codes ("B8A", "SR_B4"), wavelengths, parentheses and spellings ("SWIR 1", "Near Infrared (NIR)")."""
    labels = [[text.lower()] for text in SENTINEL2]
    assert match_band_names(["blue", "green", "red", "nir", "swir1", "swir2"], labels) == (2, 3, 4, 8, 10, 11)
    assert match_band_names(["red edge 1", "RedEdge2", "nir narrow"], labels) == (5, 6, 9)
    landsat = choose_bands(_named(tmp_path, LANDSAT8), 6, ["blue", "green", "red", "NIR", "SWIR 1", "swir2"])
    assert landsat.bands == (2, 3, 4, 5, 6, 7)
    usgs = [["sr_b2 blue"], ["sr_b3 green"], ["sr_b4 red"], ["sr_b5 near-infrared"]]
    assert match_band_names(["blue", "green", "red", "nir"], usgs) == (1, 2, 3, 4)
    wavelengths = [["red edge (0.70-0.71 um)"], ["red (0.63-0.69 um)"], ["green 560 nm"]]
    assert match_band_names(["red", "green"], wavelengths) == (2, 3)


def test_colour_interpretation_names_bands_and_nir_in_any_spelling(tmp_path):
    rgbn = named_raster(tmp_path / "rgbn.tif", _noise(4), descriptions=("", "", "", "near infrared"),
                   interpretations=(gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand))
    assert choose_bands(rgbn, 4, ["nir", "red", "green", "blue"]).bands == (4, 1, 2, 3)
    assert match_band_names(["nir"], [["nir"], ["nir narrow"]]) == (1,)


def test_a_name_still_ambiguous_falls_back_and_says_why(tmp_path):
    """Two bands named alike stay ambiguous: the first bands, and the reason names the clash."""
    assert match_band_names(["red"], [["b5 red edge 1"], ["b6 red edge 2"]]) is None
    assert match_band_names(["blue"], [["bluegreen"]]) is None  # a word inside another word is no match
    raster = _named(tmp_path, ["B1 coastal", "B2 blue", "B3 green", "B5 red edge 1", "B6 red edge 2"])
    choice = choose_bands(raster, 3, RGB)
    assert choice.bands == (1, 2, 3)
    assert "(red: bands 4, 5 alike)" in choice.reason and "first 3 of its 5 bands" in choice.reason


def test_the_positional_fallback_leaves_alpha_bands_out(tmp_path):
    unnamed = (gdal.GCI_Undefined,) * 3 + (gdal.GCI_AlphaBand,)
    four = named_raster(tmp_path / "four.tif", _noise(4), interpretations=unnamed)
    choice = choose_bands(four, 3, ["a", "b", "c"])
    assert choice.bands == (1, 2, 3) and "but its alpha band 4" in choice.reason
    six = named_raster(tmp_path / "six.tif", _noise(6), interpretations=(gdal.GCI_AlphaBand,))
    first = choose_bands(six, 3, ["a", "b", "c"])
    assert first.bands == (2, 3, 4) and "first 3 of its 5 bands other than its alpha band 1" in first.reason
    # too few bands besides the alpha: all of them, and the reason says the alpha is among them
    all_four = choose_bands(four, 4, [])
    assert all_four.bands is None and "alpha band 4" in all_four.reason
    # "auto": an unnamed 3-band raster with an alpha band fits a 3-band learned model
    assert resolve_model("auto", four).id == "tile2vec-l8-rgb-pixels64"


@pytest.mark.parametrize("model, size", [("bandstats", 6), ("mosaiks-rcf", 256)])
def test_training_free_models_leave_the_alpha_band_out(tmp_path, model, size):
    """The auditor's RGBA raster, alpha 0 or 255: once the alpha's constant 255 failed the run."""
    rgba = _rgba(tmp_path, _alpha_half_transparent())
    out = tmp_path / f"{model}.tif"
    result = embed_raster(rgba, out, model, tile_size=16, device="cpu")
    ds = gdal.Open(str(out))
    assert ds.GetMetadataItem("SRL_BANDS") == "1,2,3" and result.embedding_size == size
    assert "but its alpha band 4 (the valid pixels' mask, not data)" in result.choices[0]
    embeddings = ds.ReadAsArray()
    assert np.isnan(embeddings[:, :, :2]).all() and np.isfinite(embeddings[:, :, 2:]).all()
    assert bind_to_raster(resolve_model(model, rgba), rgba).card.config["in_channels"] == 3


def test_an_alpha_band_chosen_by_the_analyst_is_kept(tmp_path):
    alpha = _alpha_half_transparent()
    alpha[::2, SIZE // 2:] = 128  # varies over the valid pixels: it can be standardised
    rgba = _rgba(tmp_path, alpha)
    out = tmp_path / "bandstats.tif"
    result = embed_raster(rgba, out, "bandstats", bands=[1, 2, 3, 4], tile_size=16, device="cpu")
    assert gdal.Open(str(out)).GetMetadataItem("SRL_BANDS") == "1,2,3,4" and result.embedding_size == 8
    gt = gdal.Open(rgba).GetGeoTransform()
    xy = np.array([[gt[0] + 48 * gt[1], gt[3] + 32 * gt[5]]])
    emb, valid = embed_tiles_at_points(rgba, xy, "bandstats", tile_size=16, device="cpu")
    assert valid.all() and emb.shape == (1, 6)


def test_three_bands_named_otherwise_than_the_models_three_are_said_not_fed_silently(tmp_path):
    """A colour-infrared raster (nir, red, green) given to an RGB model had NIR fed as blue, under 'All 3
    bands of the raster, in their order'; unnamed bands ('Band 1') keep that note."""
    infrared = choose_bands(_named(tmp_path, ["nir", "red", "green"]), 3, RGB)
    assert infrared.bands is None
    said = "The raster's band names (1: nir; 2: red; 3: green) are not the model's (blue, green, red)"
    assert infrared.reason.startswith(said)
    unnamed = named_raster(tmp_path / "plain.tif", _noise(3), ["Band 1", "Band 2", "Band 3"])
    plain = choose_bands(unnamed, 3, RGB)
    assert plain.reason == "All 3 bands of the raster, in their order."
    generic = choose_bands(_named(tmp_path, ["nir", "red", "green"]), 3, ["band 1", "band 2", "band 3"])
    assert generic.reason == "All 3 bands of the raster, in their order."
