"""Right by default (tiles): bands chosen from the raster's band names, normalisation 'auto', the
choices recorded in the output, and degenerate embeddings reported -- on the bundled sample and model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from test_band_choice_fixes import named_raster

from srl_core.band_choice import choose_bands, match_band_names
from srl_core.bundle import load_model
from srl_core.cli import main as cli_main
from srl_core.embedding_quality import raster_sample, spread, spread_warning
from srl_core.tiles import embed_raster

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = str(ROOT / "resources" / "sample_data" / "nc_landsat7_2000.tif")
TILE_MODEL = "tile2vec-l8-rgb-compact"


def _raster(path: Path, bands: int, descriptions=(), interpretations=(), dtype=gdal.GDT_Float32) -> str:
    return named_raster(path, np.zeros((bands, 8, 8), np.float32), descriptions, interpretations, dtype=dtype)


def test_bands_are_matched_by_description_colour_or_else_the_first(tmp_path):
    sample = choose_bands(SAMPLE, 3, ["blue", "green", "red"])
    assert sample.bands == (1, 2, 3) and "blue = band 1" in sample.reason
    rgb = _raster(tmp_path / "rgb.tif", 4, interpretations=(gdal.GCI_RedBand, gdal.GCI_GreenBand,
                                                            gdal.GCI_BlueBand, gdal.GCI_AlphaBand))
    assert choose_bands(rgb, 3, ["blue", "green", "red"]).bands == (3, 2, 1)
    unnamed = choose_bands(_raster(tmp_path / "six.tif", 6), 3, ["blue", "green", "red"])
    assert unnamed.bands == (1, 2, 3) and "first 3 of its 6 bands" in unnamed.reason
    assert choose_bands(_raster(tmp_path / "three.tif", 3), 3, ["blue", "green", "red"]).bands is None
    # a 3-band 8-bit GeoTIFF is RGB by default: its colour interpretation orders it for the model
    rgb8 = _raster(tmp_path / "rgb8.tif", 3, dtype=gdal.GDT_Byte)
    assert choose_bands(rgb8, 3, ["blue", "green", "red"]).bands == (3, 2, 1)
    # a word inside another word is no match ("bluegreen"), nor is a name found twice alike; a band named
    # wholly by the name beats one the name is only part of
    assert match_band_names(["blue"], [["bluegreen"]]) is None
    assert match_band_names(["red"], [["red edge"], ["red edge 2"]]) is None
    assert match_band_names(["red"], [["red edge"], ["red"]]) == (2,)


def test_degenerate_embeddings_are_recognised():
    rng = np.random.default_rng(0)
    card = load_model(TILE_MODEL).card
    alike = np.ones((300, 16)) + rng.normal(0, 1e-3, (300, 16))
    assert "median pairwise cosine similarity is 1.000" in spread_warning(spread(alike), card, "Do X.")
    varied = rng.normal(0, 1, (300, 16))
    assert spread_warning(spread(varied), card, "Do X.") is None
    assert spread(np.full((5, 4), np.nan)) is None


def test_one_land_cover_filling_most_of_the_scene_is_not_degenerate():
    """Three quarters water and a quarter land: the water pairs alone give a median cosine of 0.99, but the
    land points elsewhere and separates cleanly. The median alone called such a scene degenerate, and
    every analysis of it repeated the warning (found by an audit); so did MOSAIKS's zero vectors of the
    flat water."""
    rng = np.random.default_rng(1)
    card = load_model(TILE_MODEL).card
    water = np.ones((300, 16)) + rng.normal(0, 0.02, (300, 16))
    land = -np.ones((100, 16)) + rng.normal(0, 0.5, (100, 16))
    scene = np.concatenate([water, land])
    assert spread(scene).median_cosine >= 0.98
    assert spread_warning(spread(scene), card, "Do X.") is None
    mosaiks = load_model("mosaiks-rcf").card  # ReLU features: 0 on flat ground
    flat_water = np.concatenate([np.zeros((300, 16)), np.abs(land)])
    assert spread_warning(spread(flat_water), mosaiks, "Do X.") is None
    all_zero = np.zeros((300, 16))
    assert "100% of them are 0 in every dimension" in spread_warning(spread(all_zero), mosaiks, "Do X.")


def test_bundled_model_on_the_bundled_sample_is_useful_with_its_defaults(tmp_path):
    """The issue's case: 6 bands, 8-bit Landsat 7 against a Landsat 8 DN model."""
    out = tmp_path / "emb.tif"
    result = embed_raster(SAMPLE, out, TILE_MODEL)
    assert result.warnings == ()
    assert "blue = band 1, green = band 2, red = band 3" in result.choices[0]
    assert "raster's own statistics" in result.choices[1]
    meta = gdal.Open(str(out)).GetMetadata()
    assert meta["SRL_BANDS"] == "1,2,3" and meta["SRL_NORMALISATION"] == "raster"
    assert "blue = band 1" in meta["SRL_CHOICES"]
    found = spread(raster_sample(str(out)))
    assert found.median_cosine < 0.9

    # the model's own statistics, asked for explicitly: the result is degenerate and says what to change
    forced = embed_raster(SAMPLE, tmp_path / "forced.tif", TILE_MODEL, normalisation="model")
    degenerate = [w for w in forced.warnings if "look degenerate" in w]
    assert degenerate and "raster's own statistics" in degenerate[0]
    assert gdal.Open(str(tmp_path / "forced.tif")).GetMetadataItem("SRL_QUALITY_WARNING") == degenerate[0]
    assert gdal.Open(str(out)).GetMetadataItem("SRL_QUALITY_WARNING") is None


def test_command_line_reports_the_choices(tmp_path, capsys):
    assert cli_main(["embed-raster", SAMPLE, str(tmp_path / "e.tif"), "--model", TILE_MODEL,
                     "--stride", "34"]) == 0
    err = capsys.readouterr().err
    assert "Bands chosen by their names" in err and "warning" not in err


@pytest.mark.parametrize("bands", ["1,2,3", "3,2,1"])
def test_processing_accepts_bands_as_one_string(srl_provider, tmp_path, bands):
    """qgis_process passes BANDS=1,2,3 as the string '1,2,3'."""
    import processing

    out = tmp_path / "e.tif"
    processing.run("srl:embed_raster", {"INPUT": SAMPLE, "BANDS": bands, "STRIDE": 34, "OUTPUT": str(out)})
    assert gdal.Open(str(out)).GetMetadataItem("SRL_BANDS") == bands


def test_degenerate_embeddings_are_said_in_the_message_bar(
    srl_provider, qgis_iface, qgis_new_project, tmp_path
):
    import processing

    bar = qgis_iface.messageBar()
    bar.clear_messages()
    processing.runAndLoadResults("srl:embed_raster", {"INPUT": SAMPLE, "NORMALISATION": 0, "STRIDE": 34,
                                                      "OUTPUT": str(tmp_path / "forced.tif")})
    warnings = bar.get_messages(1)  # Qgis.Warning
    assert len(warnings) == 1 and "look degenerate" in warnings[0]


def test_a_flagged_point_output_is_said_in_the_message_bar(
    srl_provider, qgis_iface, qgis_new_project, tmp_path
):
    """Point outputs carry SRL_QUALITY_WARNING as rasters do; only rasters' were shown when loaded."""
    import processing
    from analysis_synthetic import utm31_wkt

    from srl_core.vector.points import write_points

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(40, 8)).astype(np.float32)
    xy = np.column_stack([rng.uniform(500000, 510000, 40), rng.uniform(4000000, 4010000, 40)])
    points = str(tmp_path / "flagged.gpkg")
    write_points(points, xy, utm31_wkt(), {}, embeddings=emb, model_id="synthetic-loc",
                 warnings=["These embeddings look degenerate."])
    bar = qgis_iface.messageBar()
    bar.clear_messages()
    processing.runAndLoadResults("srl:rgb_view", {"INPUT": points, "OUTPUT_POINTS": str(tmp_path / "v.gpkg")})
    warnings = bar.get_messages(1)  # Qgis.Warning
    assert len(warnings) == 1 and "These embeddings look degenerate." in warnings[0]
