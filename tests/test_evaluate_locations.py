"""The Köppen–Geiger evaluation harness, on small synthetic grids with known answers."""

import numpy as np
import pytest
import torch

from srl_core.bundle import ModelCard, save_bundle
from srl_core.errors import InputError
from training.evaluate.locations import (
    EvalPoints,
    KoppenMap,
    cell_groups,
    evaluate_features,
    format_table,
    run_location_evaluation,
    sample_eval_points,
)
from training.location.sampling import LandMask


def banded_koppen() -> KoppenMap:
    """18 x 36 grid (10-degree cells): zone = 1 + latitude band (row 0 at 90N), ocean west of 0E."""
    zones = np.repeat((1 + np.arange(18, dtype=np.uint8))[:, None], 36, axis=1)
    zones[:, :18] = 32
    return KoppenMap(zones, {i: f"Z{i}" for i in range(1, 33)})


def east_land() -> LandMask:
    mask = np.zeros((90, 180), dtype=bool)
    mask[:, 90:] = True
    return LandMask(mask)


def test_koppen_lookup_has_row_zero_at_north_pole():
    kg = banded_koppen()
    assert kg.zone_at(np.array([45.0]), np.array([85.0]))[0] == 1
    assert kg.zone_at(np.array([45.0]), np.array([-85.0]))[0] == 18
    assert kg.zone_at(np.array([-45.0]), np.array([0.5]))[0] == 32


def test_eval_points_are_labelled_land_north_of_limit():
    pts = sample_eval_points(500, 3, east_land(), banded_koppen(), lat_min=-60.0)
    assert pts.label.size == 500 and pts.lon.size == 500
    assert np.all(pts.lon >= 0) and np.all(pts.lat > -60)
    assert set(np.unique(pts.label)) <= set(range(1, 16))
    expected = 1 + np.floor((90.0 - pts.lat) / 10.0).astype(int)
    assert np.array_equal(pts.label, expected)
    again = sample_eval_points(500, 3, east_land(), banded_koppen(), lat_min=-60.0)
    assert np.array_equal(pts.lon, again.lon)


def test_cell_groups_are_ten_degree_blocks():
    g = cell_groups(np.array([1.0, 9.0, 11.0, 1.0]), np.array([1.0, 9.0, 1.0, -1.0]))
    assert g[0] == g[1] and g[0] != g[2] and g[0] != g[3]


def small_points(n=400, seed=0) -> EvalPoints:
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-180, 180, n), rng.uniform(-60, 80, n)
    return EvalPoints(lon, lat, (lat > 10).astype(np.int64) + 2 * (lon > 0))


def test_informative_features_score_high_and_noise_scores_at_chance():
    pts = small_points()
    good = evaluate_features("good", np.stack([pts.lat, pts.lon], axis=1), pts)
    noise = evaluate_features("noise", np.random.default_rng(1).normal(size=(400, 3)), pts)
    assert np.mean(good.random) > 0.95 and np.mean(good.spatial) > 0.9
    assert np.mean(noise.random) < 0.4
    assert len(good.random) == 5 and len(good.spatial) == 5
    table = format_table([good, noise], pts, 5)
    assert "good" in table and "noise" in table and "±" in table


def test_bad_feature_matrix_is_refused():
    pts = small_points(50)
    with pytest.raises(InputError):
        evaluate_features("short", np.zeros((49, 2)), pts)
    with pytest.raises(InputError):
        evaluate_features("nan", np.full((50, 2), np.nan), pts)


def test_baselines_build_with_expected_sizes():
    from srl_core.models.location import build_encoding
    from training.evaluate.locations import BASELINES

    sizes = {name: build_encoding(cfg).embedding_dim for name, cfg in BASELINES.items()}
    assert sizes["raw lon/lat"] == 2 and sizes["wrap"] == 4 and sizes["RFF 512 (sigma 8)"] == 512
    assert sizes["Space2Vec theory"] == 96 and sizes["Sphere2Vec sphereM+"] == 128
    assert sizes["spherical harmonics L=10"] == 100


def test_run_evaluation_scores_baselines_and_a_bundle(tmp_path):
    from srl_core.models.location import build_from_config

    pts = small_points(300)
    config = {"encoding": {"name": "wrap"}, "network": {"name": "linear", "dim_out": 4}}
    torch.manual_seed(0)
    card = ModelCard(id="wrap-linear", kind="location", architecture="location_encoder", config=config,
                     embedding_size=4)
    folder = save_bundle(build_from_config(config), card, tmp_path / "wrap-linear")
    seen = []
    scores = run_location_evaluation([str(folder)], pts, baselines=["raw lon/lat", "wrap"], folds=3,
                                     on_score=seen.append)
    assert [s.name for s in scores] == ["raw lon/lat", "wrap", str(folder)]
    assert len(seen) == 3 and scores[2].dim == 4
    # an invertible linear map of the wrap features scores like wrap itself
    assert np.mean(scores[2].random) == pytest.approx(np.mean(scores[1].random), abs=0.02)
    with pytest.raises(InputError):
        run_location_evaluation([], pts, baselines=["nope"])


def test_command_line_prints_table_and_writes_json(tmp_path, monkeypatch, capsys):
    import argparse
    import json

    from location_fake_packages import write_fake_packages

    from training.commands import evaluate_locations

    monkeypatch.setenv("SRL_DATA_CACHE", str(write_fake_packages(tmp_path / "cache")))
    parser = argparse.ArgumentParser()
    evaluate_locations.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate-locations", "--points", "300", "--folds", "3", "--no-geoclip",
                              "--baseline", "raw lon/lat", "--baseline", "wrap", "--json",
                              str(tmp_path / "scores.json")])
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert "300 area-uniform land points" in out and "wrap" in out
    assert "100%" in err  # a progress bar: a model's seeds and draws ran over 10 minutes without a word
    report = json.loads((tmp_path / "scores.json").read_text())
    assert [r["name"] for r in report["scores"]] == ["raw lon/lat", "wrap"]
    # zones are 30-degree latitude bands on this synthetic globe: latitude alone separates them
    assert np.mean(report["scores"][0]["random"]) > 0.75  # chance is about 1/3


def test_water_distance_is_great_circle_distance_to_the_shore():
    from training.evaluate.location_targets import WaterDistance

    water = WaterDistance(east_land())  # land east of 0E up to 180E; shore cells 1/24 degree off
    km = water.km(np.array([90.0, 1.0, 1.0]), np.array([0.0, 0.0, 60.0]))
    deg = 111.195  # km per degree of great circle
    assert km[0] == pytest.approx(90 * deg, abs=6)  # a quarter of the way round either way
    assert km[1] == pytest.approx(1 * deg, abs=6)
    assert km[2] == pytest.approx(np.degrees(np.arcsin(0.5 * np.sin(np.radians(1.0)))) * deg, abs=6)
    assert water.target(np.array([90.0]), np.array([0.0]))[0] == pytest.approx(np.log10(1 + km[0]))


def test_protocol_scores_every_seed_on_every_draw_with_all_cell_sizes(tmp_path):
    import json

    from training.evaluate.location_protocol import (
        baseline_rows,
        card_metrics,
        format_protocol_table,
        model_row,
        record_location_metrics,
        run_protocol,
        to_json,
    )

    rows = baseline_rows(["raw lon/lat", "RFF 512 (sigma 8)"], seeds=3)
    assert [len(r.sources) for r in rows] == [1, 3]
    assert not torch.equal(rows[1].sources[0].b, rows[1].sources[1].b)  # a new random matrix per seed
    draws = [small_points(300, seed) for seed in (0, 1)]
    for d in draws:
        d.target = d.lat / 90.0 + 0.01 * np.random.default_rng(0).normal(size=d.lat.size)
    results = run_protocol(rows, draws, folds=3, cells=(5.0, 10.0, 20.0))
    raw, rff = results
    assert len(raw.runs) == 2 and len(rff.runs) == 6 and rff.seeds == 3 and rff.draws == 2
    assert set(raw.runs[0].spatial_cells) == {5.0, 10.0, 20.0}
    mean, sd = raw.summary("spatial 20")
    assert 0.5 < mean <= 1.0 and sd >= 0.0
    assert raw.summary("random", "r2")[0] > 0.95  # the target is latitude: raw coordinates fit it
    table = format_protocol_table(results, draws, 3, (5.0, 10.0, 20.0))
    assert "spatial 20°" in table and "R² random" in table and "3x2" in table
    markdown = format_protocol_table(results, draws, 3, (5.0, 10.0, 20.0), markdown=True)
    assert markdown.splitlines()[1].startswith("| features |")
    report = json.loads(json.dumps(to_json(results, draws, [0, 1], 3)))
    assert len(report["scores"][1]["runs"]) == 6

    assert model_row("mine=a,b").name == "mine" and model_row("mine=a,b").sources == ["a", "b"]
    assert model_row("x").name == "x"
    with pytest.raises(InputError):
        model_row("mine=")

    card = ModelCard(id="wrap-linear", kind="location", architecture="location_encoder",
                     config={"encoding": {"name": "wrap"}, "network": {"name": "linear", "dim_out": 4}},
                     embedding_size=4)
    from srl_core.models.location import build_from_config

    folder = save_bundle(build_from_config(card.config), card, tmp_path / "wl")
    path = record_location_metrics(folder, card_metrics(rff, [raw], "pytest", draws, 3, (5.0, 10.0, 20.0)))
    stored = json.loads(path.read_text())["metrics"]["location_protocol"]
    spatial = rff.summary("spatial 10")[0]
    assert stored["model"]["accuracy spatial 10"]["mean"] == pytest.approx(spatial, abs=1e-4)
    assert "raw lon/lat" in stored["baselines"] and stored["command"] == "pytest"


@pytest.mark.parametrize("option, said", [(["--points", "0"], "--points must be at least"),
                                          (["--cells", "0"], "--cells are cell sizes"),
                                          (["--folds", "1"], "--folds must be at least 2")])
def test_settings_the_protocol_cannot_score_are_refused_naming_the_option(option, said):
    """They were tracebacks after the points were drawn."""
    import subprocess
    import sys
    from pathlib import Path

    run = subprocess.run([sys.executable, "-m", "training", "evaluate-locations", *option],
                         cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    assert run.returncode == 2 and said in run.stderr and "Traceback" not in run.stderr


@pytest.mark.parametrize("options, message", [
    (["--model", "no-such-model"], "no-such-model"),
    (["--model", "bandstats"], "is a tile model, not a location encoder"),
    (["--cells", "180"], r"--cells 180: the points fall in only \d cells of 180 degrees, fewer than --folds"),
])
def test_models_and_cells_the_protocol_cannot_score_are_refused_before_any_row(tmp_path, monkeypatch, capsys,
                                                                              options, message):
    """A misspelt --model was refused only after every baseline was scored (minutes with the defaults), and
    --cells 180 (the land in 2 cells) ended in scikit-learn's error reported as a bug in SRL."""
    import argparse

    from location_fake_packages import write_fake_packages

    from training.commands import evaluate_locations
    from training.evaluate import location_protocol

    monkeypatch.setenv("SRL_DATA_CACHE", str(write_fake_packages(tmp_path / "cache")))
    monkeypatch.setattr(location_protocol, "run_protocol", lambda *a, **k: pytest.fail("rows were scored"))
    parser = argparse.ArgumentParser()
    evaluate_locations.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate-locations", "--points", "300", "--folds", "3", "--no-geoclip",
                              "--baseline", "wrap", *options])
    from srl_core.errors import SRLError

    with pytest.raises(SRLError, match=message):
        args.func(args)
