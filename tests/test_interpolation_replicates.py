"""Interpolation of real-world sample tables: replicates at one site, coordinates in columns, class
codes in a numeric field (each once gave a confident map that meant nothing)."""

from __future__ import annotations

import numpy as np
from osgeo import gdal

from srl_core.analysis.interpolation import interpolate_points, site_means
from srl_core.analysis.validation import fold_indices
from srl_core.cli import main


def _csv(path, rows, header="lon,lat,value") -> str:
    path.write_text(header + "\n" + "\n".join(",".join(f"{v:.6f}" for v in row) for row in rows) + "\n")
    return str(path)


def _noise_at_repeated_sites(copies: int, seed: int = 0) -> np.ndarray:
    """60 sites near Stein (NL), each sampled ``copies`` times, with values of pure noise (sd 1)."""
    rng = np.random.default_rng(seed)
    sites = np.column_stack([rng.uniform(5.70, 5.80, 60), rng.uniform(50.95, 51.00, 60)])
    xy = np.repeat(sites, copies, axis=0)
    return np.column_stack([xy, rng.normal(0.0, 1.0, len(xy))])


def test_random_folds_keep_the_samples_of_one_site_together():
    xy = np.repeat(np.arange(20.0)[:, None] * [1.0, 0.0], 3, axis=0)
    for train, test in fold_indices(xy, "random", 5):
        assert not set(map(tuple, xy[train])) & set(map(tuple, xy[test]))
    distinct = np.arange(20.0)[:, None] * [1.0, 0.0]
    assert [len(t) for _, t in fold_indices(distinct, "random", 5)] == [4] * 5  # plain k folds, as before


def test_site_means_merge_replicates_and_leave_distinct_points_alone():
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    merged_xy, y, extra, weights = site_means(xy, np.array([1.0, 5.0, 3.0]), np.array([[7.0], [8.0], [7.0]]))
    assert merged_xy.tolist() == [[0.0, 0.0], [1.0, 0.0]] and y.tolist() == [2.0, 5.0]
    assert extra.tolist() == [[7.0], [8.0]] and weights.tolist() == [2.0, 1.0]
    assert site_means(xy[:2], np.array([1.0, 2.0]), None)[3] is None


def test_replicates_a_centimetre_apart_are_one_site_everywhere():
    """Scales, folds and site means agree on what a site is: copies 1 cm apart (coordinates rounded or
    reprojected) were one site for the scales only, and sat on both sides of a random fold."""
    rng = np.random.default_rng(0)
    sites = rng.uniform(0, 4000, size=(30, 2))
    xy = np.vstack([sites, sites + rng.normal(scale=0.01, size=sites.shape)])
    for train, test in fold_indices(xy, "random", 5):
        assert not set(np.flatnonzero(np.isin(np.arange(60) % 30, np.arange(60)[train] % 30))) & set(test)
    merged_xy, y, _, weights = site_means(xy, np.r_[np.zeros(30), np.ones(30)], None)
    assert len(merged_xy) == 30 and np.allclose(y, 0.5) and weights.tolist() == [2.0] * 30


def test_noise_sampled_four_times_per_site_is_not_mapped_with_skill(tmp_path):
    """Copies on both sides of a random fold scored pure noise at R² 0.5, and the ridge's
    leave-one-out, always finding a copy, chose no regularisation: values ten times the noise."""
    points = _csv(tmp_path / "replicates.csv", _noise_at_repeated_sites(4))
    result = interpolate_points(points, "value", str(tmp_path / "p.tif"), str(tmp_path / "u.tif"),
                                n_members=4)
    random_cv = next(s for s in result.cv if s.scheme == "random")
    assert random_cv.metrics["R2"] < 0.2
    prediction = gdal.Open(str(tmp_path / "p.tif")).ReadAsArray()
    assert np.nanmax(np.abs(prediction[prediction > -1e30])) < 4.0
    assert any("240 points at 60 distinct locations" in note for note in result.notes)


def test_the_default_field_is_never_a_coordinate_column(tmp_path):
    rng = np.random.default_rng(1)
    lonlat = np.column_stack([rng.uniform(5.70, 5.80, 40), rng.uniform(50.95, 51.00, 40)])
    points = _csv(tmp_path / "zinc.csv", np.column_stack([lonlat, rng.uniform(100, 900, 40)]), "lon,lat,zinc")
    result = interpolate_points(points, None, str(tmp_path / "p.tif"), str(tmp_path / "u.tif"), n_members=2)
    assert result.field_name == "zinc"


def test_a_few_whole_numbers_are_reported_as_possible_class_codes(tmp_path):
    rng = np.random.default_rng(2)
    lonlat = np.column_stack([rng.uniform(5.70, 5.80, 40), rng.uniform(50.95, 51.00, 40)])
    codes = rng.choice([11.0, 41.0, 82.0], 40)
    points = _csv(tmp_path / "landcover.csv", np.column_stack([lonlat, codes]), "lon,lat,landcover")
    result = interpolate_points(points, "landcover", str(tmp_path / "p.tif"), str(tmp_path / "u.tif"),
                                n_members=2)
    report = result.report()
    assert "only 3 distinct whole numbers (11, 41, 82)" in report and "--task classification" in report
    assert "log transform" not in report.lower().split("fitted on log")[0]


def test_the_command_line_takes_the_points_crs(tmp_path, capsys):
    """A table of projected coordinates could not be interpolated from the command line at all."""
    rng = np.random.default_rng(3)
    rd = np.column_stack([rng.uniform(180000, 181000, 30), rng.uniform(330000, 331000, 30),
                          rng.uniform(1, 9, 30)])
    points = _csv(tmp_path / "rd.csv", rd, "x,y,zinc")
    assert main(["interpolate", points, "zinc", str(tmp_path / "p.tif"), str(tmp_path / "u.tif"),
                 "--crs", "EPSG:28992", "--members", "2"]) == 0
    assert "EPSG\",\"28992" in gdal.Open(str(tmp_path / "p.tif")).GetProjection()


def test_an_analysis_result_given_as_embeddings_is_named_for_what_it_is(tmp_path, embedding_raster):
    """A similarity map given to Cluster was refused as 'metadata SRL_KIND missing', though it has one."""
    import pytest

    from srl_core.analysis.api import open_input
    from srl_core.errors import InputError

    sim = tmp_path / "sim.tif"
    assert main(["similarity", str(embedding_raster), str(sim), "--pixel", "500650", "3999150"]) == 0
    with pytest.raises(InputError, match="is an SRL similarity raster, not an embedding raster"):
        open_input(str(sim))


def _lab_results(path, markers: dict[int, str]) -> str:
    """Zinc at 40 sites as a lab delivers it: text, with ``markers`` ('NA', '<0.5') at some rows."""
    rng = np.random.default_rng(4)
    lines = ["lon,lat,zinc"]
    for row in range(40):
        value = markers.get(row, f"{rng.uniform(100, 900):.1f}")
        lines.append(f"{rng.uniform(5.70, 5.80):.6f},{rng.uniform(50.95, 51.00):.6f},{value}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_lab_results_with_markers_are_refused_not_mapped_as_classes(tmp_path):
    """A text field of numbers with a few 'NA' and '<0.5' was mapped as dozens of classes, as a result
    ('nan' read as a float: a class under auto, 'infinite values' under regression)."""
    import pytest

    from srl_core.errors import InputError

    points = _lab_results(tmp_path / "lab.csv", {0: "NA", 3: "<0.5", 7: "nan"})
    for task in ("auto", "regression"):
        # CSV feature ids start at 1, as QGIS shows them: rows 0, 3 and 7
        with pytest.raises(InputError, match=r"3 of its 40 values do not read as numbers: 'NA' \(feature id "
                                             r"1\), '<0.5' \(feature id 4\), 'nan' \(feature id 8\)\. To map "
                                             r"it as numbers, correct those values or remove their points"):
            interpolate_points(points, "zinc", str(tmp_path / "p.tif"), str(tmp_path / "u.tif"), task=task)
    assert not (tmp_path / "p.tif").exists()


def test_numbers_stored_as_text_map_as_numbers_under_the_regression_task(tmp_path):
    """A text field of numbers only: classes under auto (codes kept as text), numbers under regression."""
    from srl_core.vector.crs import spatial_reference
    from srl_core.vector.points import read_points, write_points

    rng = np.random.default_rng(5)
    lonlat = np.column_stack([rng.uniform(5.70, 5.80, 40), rng.uniform(50.95, 51.00, 40)])
    points = str(tmp_path / "text.gpkg")
    write_points(points, lonlat, spatial_reference(4326).ExportToWkt(),
                 {"zinc": [f"{v:.1f}" for v in rng.uniform(100, 900, 40)]})
    assert isinstance(read_points(points).attributes["zinc"], list)  # text indeed
    result = interpolate_points(points, "zinc", str(tmp_path / "p.tif"), str(tmp_path / "u.tif"),
                                task="regression", n_members=2)
    assert result.task == "regression"


def test_the_command_line_names_the_coordinate_fields(tmp_path, capsys):
    """interpolate said 'name the x field explicitly' and had no option to do so."""
    rng = np.random.default_rng(6)
    rows = np.column_stack([rng.uniform(5.70, 5.80, 40), rng.uniform(50.95, 51.00, 40),
                            rng.uniform(1, 9, 40)])
    points = _csv(tmp_path / "eu.csv", rows, "Longitude (deg),Latitude (deg),zinc")
    code = main(["interpolate", points, "zinc", str(tmp_path / "p.tif"), str(tmp_path / "u.tif"),
                 "--x-field", "Longitude (deg)", "--y-field", "Latitude (deg)", "--crs", "EPSG:4326",
                 "--members", "2"])
    assert code == 0 and (tmp_path / "p.tif").exists()


def test_resampled_rows_are_not_copies_to_the_ridges_leave_one_out(tmp_path):
    """Each ensemble member fits a bootstrap resample, whose repeated rows the ridge's leave-one-out found
    as copies of the left-out row: a member chose almost no regularisation and extrapolated in a held-out
    block. Meuse zinc with every tenth site sampled twice scored a spatially blocked R² of -23.9."""
    from pathlib import Path

    from srl_core.vector.points import read_points, write_points

    meuse = read_points(str(Path(__file__).resolve().parent / "data" / "meuse" / "meuse.shp"))
    zinc = np.asarray(meuse.attributes["zinc"], float)
    again = np.arange(0, len(zinc), 10)
    rng = np.random.default_rng(1)
    xy = np.vstack([meuse.xy, meuse.xy[again]])
    values = np.concatenate([zinc, zinc[again] * (1 + 0.05 * rng.normal(size=len(again)))])
    points = str(tmp_path / "zinc.gpkg")
    write_points(points, xy, meuse.crs_wkt, {"zinc": values})
    result = interpolate_points(points, "zinc", str(tmp_path / "p.tif"), str(tmp_path / "u.tif"),
                                resolution=40, n_members=4, threads=1, log_transform=True)
    spatial = next(s for s in result.cv if s.scheme == "spatial")
    assert spatial.metrics["R2"] > 0.0


def test_thousands_of_jittered_replicates_make_one_site_each():
    """20 stations fixed 1,000 times each within 0.3 m: 20 sites (every pair within the tolerance was held,
    2.3 GB at 40,000 points, growing with the square; now each point joins its nearest few)."""
    from srl_core.analysis.validation import site_labels

    rng = np.random.default_rng(0)
    xy = np.repeat(rng.uniform(0, 100_000, (20, 2)), 1000, axis=0) + rng.uniform(-0.3, 0.3, (20_000, 2))
    labels = site_labels(xy)
    assert labels.max() + 1 == 20
    assert all(len(set(labels[i * 1000:(i + 1) * 1000])) == 1 for i in range(20))
