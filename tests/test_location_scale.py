"""Location models at the layer's scale: resolutions stated, a warning when points span far less,
and the 'local' model (features fitted to the layer's extent) through the API, CLI and Processing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import ogr
from sklearn.linear_model import RidgeCV

from srl_core.analysis.validation import fold_indices
from srl_core.bundle import load_model
from srl_core.cli import main as cli_main
from srl_core.embedding_format import embedding_fields_in
from srl_core.embedding_quality import spread
from srl_core.location import embed_points_file
from srl_core.location_scale import resolution_km, scale_warning
from srl_core.vector.points import read_points

MEUSE = str(Path(__file__).resolve().parent.parent / "resources" / "sample_data" / "meuse.gpkg")
GLOBAL = "satclip-style-bluemarble-sh20-basis10"


def _embeddings(path) -> tuple[np.ndarray, str]:
    table = read_points(str(path))
    emb = np.column_stack([table.attributes[f] for f in embedding_fields_in(list(table.attributes))])
    ds = ogr.Open(str(path))
    return emb, ds.GetLayer(0).GetMetadataItem("SRL_MODEL_ID") or ds.GetMetadataItem("SRL_MODEL_ID") or ""


def test_resolutions_stated_or_derived(tiny_location_model):
    assert resolution_km(load_model(GLOBAL).card) == pytest.approx(1000.8)
    assert round(resolution_km(load_model(tiny_location_model).card)) == 5004  # L = 4: 20,015 km / 4


def test_a_global_model_on_meuse_warns_and_local_features_tell_the_points_apart(tmp_path):
    table = read_points(MEUSE)
    assert "span 3.9 km" in scale_warning(load_model(GLOBAL).card, table.lonlat)
    assert scale_warning(load_model(GLOBAL).card, np.array([[-60.0, -30.0], [40.0, 50.0]])) is None
    said = []
    embed_points_file(MEUSE, tmp_path / "global.gpkg", GLOBAL, on_message=said.append)
    assert len(said) == 1 and "model 'local'" in said[0]
    flat, _ = _embeddings(tmp_path / "global.gpkg")
    assert spread(flat).median_cosine > 0.999

    embed_points_file(MEUSE, tmp_path / "local.gpkg", "local")
    local, model_id = _embeddings(tmp_path / "local.gpkg")
    assert local.shape == (155, 640) and model_id.startswith("local-rff@")
    assert spread(local).median_cosine < 0.5
    # they carry the spatial pattern: ridge on them predicts log(zinc) (5-fold, seed 0: R2 0.56)
    y = np.log(table.attributes["zinc"])
    pred = np.empty_like(y)
    for train, test in fold_indices(table.xy, "random", 5, 0):
        pred[test] = RidgeCV(alphas=np.logspace(-6, 4, 50)).fit(local[train], y[train]).predict(local[test])
    assert 1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum() > 0.4


def test_points_in_small_groups_far_apart_are_said_and_auto_takes_local_features():
    """Meuse and a copy 1,000 km away span 1,000 km, so neither the warning nor 'auto' saw that within
    each group the global model's embeddings were the same (median cosine 0.999995)."""
    from srl_core.location_scale import auto_location_model

    meuse = read_points(MEUSE).lonlat
    groups = np.vstack([meuse, meuse + [9.0, -4.0]])
    said = scale_warning(load_model(GLOBAL).card, groups)
    assert said and said.startswith("The points lie in groups")
    model, why = auto_location_model(groups)
    assert model == "local" and "nearest neighbours within" in why
    cities = np.column_stack([np.linspace(-170, 170, 60), np.tile([-40.0, 0.0, 40.0], 20)])
    assert scale_warning(load_model(GLOBAL).card, cities) is None and auto_location_model(cities)[0] == GLOBAL


@pytest.mark.parametrize("count", [1, 2])
def test_auto_embeds_one_or_two_places_with_the_global_model(count):
    """'auto' chose local features for them, which need three places, and failed with their message."""
    from srl_core.location_scale import auto_location_model

    model, why = auto_location_model(read_points(MEUSE).lonlat[:count])
    assert model == GLOBAL and "at least 3 places" in why


def test_local_model_from_the_command_line_and_processing(tmp_path, capsys, srl_provider):
    import processing

    assert cli_main(["embed-points", MEUSE, str(tmp_path / "cli.gpkg"), "--model", "local"]) == 0
    assert _embeddings(tmp_path / "cli.gpkg")[0].shape[1] == 640
    out = tmp_path / "alg.gpkg"
    processing.run("srl:embed_points", {"INPUT": MEUSE, "MODEL": "local", "OUTPUT": str(out)})
    assert spread(_embeddings(out)[0]).median_cosine < 0.5


def test_settings_of_a_local_run_are_checked_like_any_other(tmp_path):
    """With model 'local' (what 'auto' picks for Meuse) a device that does not exist and a batch of 0
    were accepted without a word; with any other model they were refused."""
    from srl_core.errors import InputError
    from srl_core.location import embed_points_file

    meuse = str(Path(__file__).resolve().parent / "data" / "meuse" / "meuse.shp")
    with pytest.raises(InputError, match="Unknown device 'bogus'"):
        embed_points_file(meuse, str(tmp_path / "a.gpkg"), "local", device="bogus")
    with pytest.raises(InputError, match="batch_size must be at least 1"):
        embed_points_file(meuse, str(tmp_path / "b.gpkg"), "local", batch_size=0)
    assert not list(tmp_path.iterdir())


def test_local_features_in_blocks_equal_all_at_once_and_workers_are_said_unused(monkeypatch, tmp_path):
    """Computed for all points at once they held 13 kB a point; workers given with model 'local' were
    ignored without a word."""
    import srl_core.location_scale as scale
    from srl_core.location import embed_points_file

    rng = np.random.default_rng(0)
    lonlat = np.column_stack([rng.uniform(5.7, 5.8, 300), rng.uniform(50.9, 51.0, 300)])
    lonlat[7] = np.nan
    whole = scale.LocalLocationFeatures(lonlat)(lonlat)
    monkeypatch.setattr(scale, "LOCAL_BLOCK", 64)
    np.testing.assert_array_equal(scale.LocalLocationFeatures(lonlat)(lonlat), whole)
    said: list[str] = []
    meuse = str(Path(__file__).resolve().parent / "data" / "meuse" / "meuse.shp")
    embed_points_file(meuse, str(tmp_path / "local.gpkg"), "local", workers=2, on_message=said.append)
    assert any("workers or scheduler given are not used" in line for line in said)
