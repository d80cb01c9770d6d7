"""Right by default (interpolation): field, resolution and target scale chosen from the points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from srl_core.analysis.interpolation import interpolate_points
from srl_core.analysis.interpolation_defaults import (
    TargetScale,
    default_field,
    default_resolution,
    round_nicely,
)
from srl_core.errors import InputError
from srl_core.vector.crs import spatial_reference
from srl_core.vector.points import PointTable, read_points

MEUSE = str(Path(__file__).resolve().parent.parent / "resources" / "sample_data" / "meuse.gpkg")


def _table(attributes: dict) -> PointTable:
    n = len(next(iter(attributes.values())))
    xy = np.column_stack([np.arange(n, dtype=float), np.zeros(n)])
    return PointTable(xy=xy, crs_wkt=spatial_reference(4326).ExportToWkt(), fids=np.arange(n),
                      attributes=attributes)


def test_default_field_skips_identifiers_and_text():
    assert default_field(read_points(MEUSE)) == "cadmium"
    table = _table({"fid": np.arange(5), "name": list("abcde"), "station": np.arange(1, 6),
                    "plot_id": np.array([3, 9, 4, 1, 7]), "zinc": np.array([1.0, 5, 2, 8, 3])})
    assert default_field(table) == "zinc"
    with pytest.raises(InputError, match="no numeric field"):
        default_field(_table({"fid": np.arange(5), "name": list("abcde")}))


def test_default_resolution_is_half_the_spacing_rounded():
    assert [round_nicely(v) for v in (0.37, 37, 60, 100, 249)] == [0.2, 20, 50, 100, 200]
    grid = np.array([[x, y] for x in range(0, 1000, 100) for y in range(0, 1000, 100)], float)
    assert default_resolution(grid) == (50, False)
    assert default_resolution(read_points(MEUSE).xy) == (50, False)  # Meuse: median spacing about 107 m


def test_clustered_points_get_a_default_grid_of_bounded_size():
    """30 plots of 10 samples within 20 m, spread over 10 km: half the median spacing (about 1 m) made an
    84-million-cell grid that ran for hours with over 10 GB, without a word."""
    rng = np.random.default_rng(0)
    plots = rng.uniform(0, 10_000, (30, 2))
    xy = (plots[:, None, :] + rng.uniform(0, 20, (30, 10, 2))).reshape(-1, 2)
    resolution, coarsened = default_resolution(xy)
    span = xy.max(axis=0) - xy.min(axis=0)
    assert coarsened and np.prod(span / resolution) <= 1_000_000 and resolution in (10, 20)
    wide = (-100_000.0, -100_000.0, 110_000.0, 110_000.0)  # a given extent is what gets gridded
    resolution, coarsened = default_resolution(xy, wide)
    assert coarsened and (210_000 / resolution) ** 2 <= 1_000_000


def test_target_scale_counts_and_clips():
    scale = TargetScale(np.array([2.0, 5.5, 9.25]), "zinc")
    pred, _ = scale.inverse(np.array([-1.0, 1.0, 3.0]), count=True)
    assert pred.tolist() == [0.0, 1.0, 3.0]
    (line,) = scale.describe()
    assert "2 of 3 pixels" in line and "1 of them were below 0" in line and "log transform" in line
    with pytest.raises(InputError, match="cannot be log-transformed"):
        TargetScale(np.array([0.0, 1.0]), "v", log=True)
    high = TargetScale(np.array([2.0, 5.5, 9.25]), "zinc", log=True)  # exp() overshoots far from samples
    high.inverse(np.log(np.array([3.0, 12.0, 40.0])), count=True)
    assert "2 of 3 pixels (66.7%) are predicted above the largest observed value of zinc (9.25)" in \
        high.describe()[-1]


def test_meuse_with_defaults_and_log_stays_positive_and_says_what_it_chose(tmp_path):
    pred, unc = tmp_path / "p.tif", tmp_path / "u.tif"
    result = interpolate_points(MEUSE, None, str(pred), str(unc), log_transform=True, n_members=4)
    assert result.field_name == "cadmium"
    assert any("Resolution: 50" in n for n in result.notes) and any("log(cadmium)" in n for n in result.notes)
    values = gdal.Open(str(pred)).ReadAsArray()
    assert gdal.Open(str(pred)).GetGeoTransform()[1] == 50
    assert np.isfinite(values).all() and values.min() > 0  # never negative, as cadmium is
    zinc = interpolate_points(MEUSE, "zinc", str(pred), str(unc), n_members=4)
    low = gdal.Open(str(pred)).ReadAsArray().min()
    assert low >= 0  # the untransformed fit goes below zero; clipped, and said so
    assert any("below the smallest observed value of zinc" in n for n in zinc.notes) or low >= 113
