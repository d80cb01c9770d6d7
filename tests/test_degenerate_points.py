"""Results from points that look fine and mean nothing are said to be so: in the result, the log and the
output's metadata (SRL_QUALITY_WARNING).

- an interpolated map of pure noise (cross-validated R² <= 0), or one that does not extrapolate;
- a constant field (its flat map scored R² 1.000) is refused;
- tile embeddings sampled at points of a raster unlike the model's training data;
- location embeddings of points far closer together than the model resolves;
- local location features over the whole globe (their flat frame tears at the antipode).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT, UTM17N, _crs_wkt
from osgeo import gdal, ogr

from srl_core.analysis.interpolation import interpolate_points, skill_warning
from srl_core.analysis.validation import CVScore
from srl_core.errors import InputError
from srl_core.location import embed_points_file
from srl_core.names import QUALITY_WARNING_KEY
from srl_core.tile_points import embed_tile_points_file
from srl_core.tiles import embed_tiles_at_points
from srl_core.vector.points import read_points, write_points

MEUSE = str(REPO_ROOT / "resources" / "sample_data" / "meuse.gpkg")
LANDSAT = REPO_ROOT / "resources" / "sample_data" / "nc_landsat7_2000.tif"
TILE_MODEL = "tile2vec-l8-rgb-compact"


def _raster_warning(path: Path) -> str | None:
    return gdal.Open(str(path)).GetMetadataItem(QUALITY_WARNING_KEY)


def _layer(path: Path) -> tuple[str, str | None]:
    """(name, SRL_QUALITY_WARNING) of a GeoPackage's layer (the dataset held while its layer is read)."""
    ds = ogr.Open(str(path))
    layer = ds.GetLayer(0)
    return layer.GetName(), layer.GetMetadataItem(QUALITY_WARNING_KEY)


def _layer_warning(path: Path) -> str | None:
    return _layer(path)[1]


@pytest.fixture
def meuse_fields(tmp_path) -> Path:
    """The Meuse sample points with a field of pure noise and a constant field."""
    table = read_points(MEUSE)
    noise = np.random.default_rng(3).normal(size=len(table.xy))
    path = tmp_path / "meuse_deg.gpkg"
    write_points(str(path), table.xy, table.crs_wkt, {"noise": noise, "const": np.full(len(noise), 5.0)})
    return path


# -- 1. interpolation: no better than the mean -------------------------------------------------------
def test_a_map_of_noise_is_said_to_be_no_better_than_the_mean(meuse_fields, tmp_path):
    pred, unc = tmp_path / "i.tif", tmp_path / "u.tif"
    result = interpolate_points(str(meuse_fields), "noise", str(pred), str(unc))
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.startswith("The map is no better than the mean of the samples")
    assert result.report().startswith(warning)
    assert _raster_warning(pred) == warning and _raster_warning(unc) == warning


def test_meuse_zinc_with_defaults_is_not_called_meaningless(tmp_path):
    result = interpolate_points(MEUSE, "zinc", str(tmp_path / "z.tif"), str(tmp_path / "zu.tif"))
    assert result.warnings == [] and _raster_warning(tmp_path / "z.tif") is None


def _score(scheme: str, **metrics: float) -> CVScore:
    return CVScore(scheme, 5, metrics)


def test_a_map_that_only_fills_gaps_is_said_not_to_extrapolate():
    cv = [_score("random", R2=0.4, RMSE=1.0), _score("spatial", R2=-0.05, RMSE=1.2)]
    warning = skill_warning(cv, np.arange(10.0), False, None)
    assert warning.startswith("The map does not extrapolate beyond the samples")
    assert "maximum distance" in warning
    assert "(250)" in skill_warning(cv, np.arange(10.0), False, 250.0)
    assert skill_warning([_score("random", R2=0.4), _score("spatial", R2=0.1)], np.arange(10.0),
                         False, None) is None  # 0.01 is within the margin of chance now (SKILL_MARGIN)


def test_classes_no_better_than_the_commonest_class_are_said_so():
    y = np.array(["a"] * 7 + ["b"] * 3)
    cv = [_score("random", accuracy=0.7), _score("spatial", accuracy=0.6)]
    warning = skill_warning(cv, y, True, None)
    assert warning.startswith("The map is no better than the commonest class of the samples ('a', 70%")
    assert skill_warning([_score("random", accuracy=0.9), _score("spatial", accuracy=0.8)], y, True,
                         None) is None


def test_the_plugin_logs_a_meaningless_map_as_a_warning(srl_provider, meuse_fields, tmp_path):
    import processing
    from qgis.core import QgsProcessingFeedback

    class Collect(QgsProcessingFeedback):
        warnings: list[str] = []

        def pushWarning(self, text):  # noqa: N802
            self.warnings.append(text)

    feedback = Collect()
    result = processing.run(
        "srl:interpolate",
        {"INPUT": str(meuse_fields), "FIELD": "noise", "OUTPUT": str(tmp_path / "p.tif"),
         "OUTPUT_UNCERTAINTY": str(tmp_path / "u.tif")},
        feedback=feedback,
    )
    assert any(w.startswith("The map is no better than the mean") for w in feedback.warnings)
    assert result["REPORT"].startswith("The map is no better than the mean")


# -- 2. a constant field -----------------------------------------------------------------------------
def test_a_constant_field_is_refused_before_any_work(meuse_fields, tmp_path):
    pred = tmp_path / "c.tif"
    with pytest.raises(InputError, match="Field 'const' has the single value 5 at every point"):
        interpolate_points(str(meuse_fields), "const", str(pred), str(tmp_path / "cu.tif"))
    assert not pred.exists()


# -- 3. tile embeddings at points of a raster in other units -----------------------------------------
@pytest.fixture
def reflectance(tmp_path) -> tuple[Path, Path]:
    """The Landsat sample's three visible bands scaled to 0-1 (not the model's digital numbers), and a CSV
    of 40 points well inside it (in its CRS)."""
    src = gdal.Open(str(LANDSAT))
    data = src.ReadAsArray()[:3].astype(np.float32) / 255.0
    path = tmp_path / "refl.tif"
    width, height = src.RasterXSize, src.RasterYSize
    out = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 3, gdal.GDT_Float32)
    out.SetGeoTransform(src.GetGeoTransform())
    out.SetProjection(src.GetProjection())
    for band in range(3):
        out.GetRasterBand(band + 1).WriteArray(data[band])
    out = None
    gt = src.GetGeoTransform()
    rng = np.random.default_rng(0)
    cols, rows = rng.uniform(40, width - 40, 40), rng.uniform(40, height - 40, 40)
    csv = tmp_path / "pts.csv"
    lines = [f"{gt[0] + c * gt[1]},{gt[3] + r * gt[5]}\n" for c, r in zip(cols, rows)]
    csv.write_text("x,y\n" + "".join(lines))
    return path, csv


def test_sampled_tiles_of_a_raster_in_other_units_carry_the_warnings(reflectance, tmp_path):
    raster, csv = reflectance
    out = tmp_path / "st.gpkg"
    result = embed_tile_points_file(raster, csv, out, TILE_MODEL, x_field="x", y_field="y",
                                    crs=gdal.Open(str(raster)).GetProjection(), normalisation="model",
                                    device="cpu")
    assert any("standard deviations from the model's training data" in w for w in result.warnings)
    assert any(w.startswith("These embeddings look degenerate") for w in result.warnings)
    stored = _layer_warning(out)
    assert stored and all(w in stored for w in result.warnings)
    assert _layer(out)[0] == "st"  # the layer is named after the file, as ever


def test_the_command_line_prints_the_sampled_tiles_warnings(reflectance, tmp_path, capsys):
    from srl_core.cli import main

    raster, csv = reflectance
    crs = gdal.Open(str(raster)).GetProjection()
    assert main(["sample-tiles", str(raster), str(csv), str(tmp_path / "st.gpkg"), "--model", TILE_MODEL,
                 "--x-field", "x", "--y-field", "y", "--crs", crs, "--normalise", "model"]) == 0
    assert "warning: These embeddings look degenerate" in capsys.readouterr().err


def test_tiles_at_points_warn_by_default(reflectance):
    raster, _ = reflectance
    gt = gdal.Open(str(raster)).GetGeoTransform()
    xy = np.array([[gt[0] + 200 * gt[1], gt[3] + 200 * gt[5]]])
    with pytest.warns(UserWarning, match="standard deviations"):
        embed_tiles_at_points(raster, xy, TILE_MODEL, normalisation="model", device="cpu")


def test_sampled_tiles_of_the_right_raster_carry_no_warning(tmp_path, reflectance):
    _, csv = reflectance
    out = tmp_path / "ok.gpkg"
    result = embed_tile_points_file(LANDSAT, csv, out, TILE_MODEL, x_field="x", y_field="y",
                                    crs=gdal.Open(str(LANDSAT)).GetProjection(), bands=[1, 2, 3],
                                    device="cpu")
    assert result.warnings == () and _layer_warning(out) is None


# -- 4. location embeddings of points closer than the model resolves ---------------------------------
def _lonlat_csv(path: Path, lonlat: np.ndarray) -> Path:
    path.write_text("lon,lat\n" + "".join(f"{lon:.9f},{lat:.9f}\n" for lon, lat in lonlat))
    return path


def test_points_a_few_metres_apart_keep_the_scale_warning(tiny_location_model, tmp_path):
    rng = np.random.default_rng(1)
    lonlat = np.column_stack([4.9 + rng.uniform(0, 3e-5, 30), 52.37 + rng.uniform(0, 3e-5, 30)])
    out = tmp_path / "tiny.gpkg"
    said: list[str] = []
    embed_points_file(_lonlat_csv(tmp_path / "tiny.csv", lonlat), out, tiny_location_model, x_field="lon",
                      y_field="lat", device="cpu", on_message=said.append)
    assert len(said) == 1 and "resolves about" in said[0]
    assert _layer_warning(out) == said[0]


def test_degenerate_location_embeddings_are_caught_without_a_resolution():
    from srl_core.bundle import ModelCard
    from srl_core.location import _spread_warning

    card = ModelCard("no-resolution", "location", "location_encoder", {}, 4)
    same = np.tile([1.0, 2.0, 3.0, 4.0], (3, 1))
    assert _spread_warning(card, same).startswith("These embeddings look degenerate")
    assert _spread_warning(card, np.eye(3, 4)) is None
    zeros = _spread_warning(card, np.zeros((5, 4)))  # a zero-weight checkpoint: cosines of 0, unseen
    assert zeros and "0 in every dimension" in zeros


# -- 5. local features over the globe ----------------------------------------------------------------
def test_local_features_over_the_globe_warn_and_name_the_global_model(tmp_path):
    rng = np.random.default_rng(1)
    lonlat = np.column_stack([rng.uniform(-180, 180, 100), np.degrees(np.arcsin(rng.uniform(-1, 1, 100)))])
    out = tmp_path / "globe.gpkg"
    said: list[str] = []
    embed_points_file(_lonlat_csv(tmp_path / "globe.csv", lonlat), out, "local", x_field="lon",
                      y_field="lat", on_message=said.append)
    assert len(said) == 1 and "tears apart" in said[0] and "global location model" in said[0]
    assert _layer_warning(out) == said[0]


def test_local_features_of_a_region_do_not_warn(tmp_path):
    out = tmp_path / "meuse.gpkg"
    said: list[str] = []
    embed_points_file(MEUSE, out, "local", on_message=said.append)
    assert said == [] and _layer_warning(out) is None


def test_a_projected_layer_keeps_its_crs_with_a_warning(tiny_location_model, tmp_path):
    """The staged write keeps what write_points writes: CRS, attributes, fids."""
    xy = np.column_stack([500000 + np.arange(5.0), 4000000 + np.arange(5.0)])
    src = tmp_path / "utm.gpkg"
    write_points(str(src), xy, _crs_wkt(UTM17N), {"v": np.arange(5.0)})
    out = tmp_path / "out.gpkg"
    embed_points_file(src, out, tiny_location_model, device="cpu", on_message=lambda _: None)
    table = read_points(str(out))
    assert _layer_warning(out) and list(table.attributes["v"]) == list(range(5))
    np.testing.assert_allclose(table.xy, xy)


def test_a_chance_r2_just_above_0_is_no_skill():
    """A field of pure noise scored R² 0.005 with random folds by chance: its map was said to fill gaps
    between the samples, with advice to set a maximum distance (found by an audit)."""
    from srl_core.analysis.validation import CVScore

    y = np.random.default_rng(3).normal(size=150)
    chance = [CVScore("random", 5, {"R2": 0.005}), CVScore("spatial", 5, {"R2": -0.029})]
    assert "The map is no better than the mean of the samples" in skill_warning(chance, y, False, None)
    real = [CVScore("random", 5, {"R2": 0.6}), CVScore("spatial", 5, {"R2": 0.25})]
    assert skill_warning(real, y, False, None) is None


def test_a_perfect_map_of_a_dominant_class_beats_predicting_that_class():
    """The margin over knowing nothing is a share of the room left: with a class on 96 % of the samples an
    absolute 0.05 could not be beaten even by a perfect map (a review)."""
    from srl_core.analysis.validation import CVScore

    y = np.array(["forest"] * 96 + ["lake"] * 4)
    perfect = [CVScore("random", 5, {"accuracy": 1.0}), CVScore("spatial", 5, {"accuracy": 1.0})]
    assert skill_warning(perfect, y, True, None) is None
    chance = [CVScore("random", 5, {"accuracy": 0.961}), CVScore("spatial", 5, {"accuracy": 0.96})]
    assert "no better than the commonest class" in skill_warning(chance, y, True, None)
