"""The training command line's defects found by an audit (session 29): cancels that kept more than they
said, folders and files it wrote into or read without refusing, settings refused late or not at all."""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from srl_core.bundle import BUNDLED_MODELS_DIR
from srl_core.errors import InputError, ModelError
from srl_core.signals import Interrupted, cancelled_exit
from training.commands import compare_metrics, evaluate_tiles, resuming
from training.commands import tile2vec as tile2vec_command
from training.location.trainer import LocationTrainingConfig
from training.tile2vec import Tile2VecConfig, train_tile2vec
from training.tile2vec import trainer as trainer_module

CROP = Path(__file__).resolve().parent / "data" / "nc_landsat_crop.tif"  # 128 x 128 px, 5 bands
TINY = ["--steps", "2", "--batch-size", "4", "--tile-size", "9", "--z-dim", "4", "--radius", "4",
        "--no-spectral-stats", "--threads", "1"]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def parse(register, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(argv)


def tiny(**changes) -> Tile2VecConfig:
    base = dict(tile_size=9, z_dim=4, neighbour_radius=4, batch_size=4, steps=2, spectral_stats=False)
    return Tile2VecConfig(**{**base, **changes})


# -- 1. a cancelled --train-own-scene keeps its finished bundles, says so, and the same command goes on ------
def test_a_cancelled_own_scene_run_names_its_finished_bundles_and_the_same_command_reuses_them(
        tmp_path, monkeypatch, capsys, user_models_dir):
    """Ctrl-C after seed 0 said "no partial output was kept" beside m-s0, and the same command then refused
    m-s0 ("already holds a bundle") for good (found by an audit)."""
    trained, evaluated = [], []

    def on_the_crop(specs, config, **kwargs):  # the test crop for the scene's package files: seconds
        trained.append(config.seed)
        if trained == [0, 1]:
            raise Interrupted(signal.SIGINT)  # Ctrl-C during the second seed of the first run
        return train_tile2vec([str(CROP)], config, **kwargs)

    monkeypatch.setattr(evaluate_tiles, "train_tile2vec", on_the_crop)
    monkeypatch.setattr(evaluate_tiles, "evaluate_tiles", lambda models, **k: evaluated.append(models))
    monkeypatch.setattr(evaluate_tiles, "format_table", lambda evaluation: "")
    base = tmp_path / "m"
    args = parse(evaluate_tiles.register, ["evaluate-tiles", "--train-own-scene", str(base), "--seeds", "2",
                                           "--bands", "10,20,30,40,50", *TINY])
    with pytest.raises(Interrupted) as cancelled:
        args.func(args)
    capsys.readouterr()
    assert cancelled_exit(cancelled.value, resuming("evaluate-tiles")) == 130
    said = capsys.readouterr().err
    assert f"the bundles of the seeds finished ({tmp_path / 'm-s0'}) are kept, and the same command reuses " \
           "them" in said
    assert not (tmp_path / "m-s1").exists()
    assert args.func(args) == 0  # the same command again: only seed 1 is trained
    assert trained == [0, 1, 1]
    assert evaluated[0][0][2] == [tmp_path / "m-s0", tmp_path / "m-s1"]
    assert "m-s0, trained by this command before, reused" in capsys.readouterr().err


# -- 2. --write-scene never writes into a models folder or a model ------------------------------------------
@pytest.mark.parametrize("where", ["bundled models folder", "user models folder", "a model elsewhere"])
def test_a_scene_is_never_written_into_a_models_folder_or_a_model(tmp_path, monkeypatch, user_models_dir,
                                                                   where):
    """A 67 MB scene written into resources/models or SRL_MODELS_DIR made every model listing warn of a
    folder without card.json (found by an audit). Refused before the task is loaded."""
    import training.evaluate.koppen_tiles as koppen_tiles

    monkeypatch.setattr(koppen_tiles, "load_koppen_bluemarble", lambda: pytest.fail("loaded the task"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "card.json").write_text("{}")
    scene = {"bundled models folder": BUNDLED_MODELS_DIR / "scene",
             "user models folder": user_models_dir / "scene", "a model elsewhere": elsewhere / "scene"}[where]
    args = parse(evaluate_tiles.register, ["evaluate-tiles", "--task", "koppen-bluemarble",
                                           "--write-scene", str(scene)])
    with pytest.raises(InputError, match=r"--write-scene .* is inside the model"):
        args.func(args)
    assert not scene.exists()


# -- 3. a checkpoint another tool wrote is refused as one, not an internal error -----------------------------
@pytest.mark.parametrize("metadata", [None, {"state": '{"a": 1}'}, {"state": "[1]"}])
def test_a_foreign_checkpoint_is_refused_as_not_a_tile2vec_checkpoint(tmp_path, metadata):
    """No safetensors metadata gave "internal error: TypeError", metadata without SRL's keys a KeyError
    (found by an audit)."""
    (tmp_path / "ck").mkdir()
    save_file({"x": torch.zeros(2)}, str(tmp_path / "ck" / "checkpoint.safetensors"), metadata=metadata)
    with pytest.raises(ModelError, match="is corrupt or not a Tile2Vec checkpoint"):
        train_tile2vec([str(CROP)], tiny(), device="cpu", checkpoint_dir=tmp_path / "ck")


# -- 4. a cancelled tile2vec says that its checkpoint is kept, and that the same command resumes from it -----
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_cancelled_training_names_the_checkpoint_it_keeps(tmp_path, monkeypatch, capsys, user_models_dir,
                                                           signum):
    """Ctrl-C said "no partial output was kept" beside a resumable checkpoint; SIGTERM said that and then
    that the checkpoint was kept (found by an audit)."""
    def stopped_after_a_checkpoint(*args, **kwargs):
        train_tile2vec(*args, **kwargs, stop_after=1)  # writes the checkpoint of step 1
        raise Interrupted(signum)

    monkeypatch.setattr(tile2vec_command, "train_tile2vec", stopped_after_a_checkpoint)
    checkpoint = tmp_path / "ck" / "checkpoint.safetensors"
    args = parse(tile2vec_command.register, ["tile2vec", str(CROP), "--out", str(tmp_path / "m"), "--quiet",
                                             "--checkpoint-dir", str(checkpoint.parent), *TINY])
    with pytest.raises(Interrupted) as cancelled:
        args.func(args)
    assert cancelled_exit(cancelled.value, resuming("tile2vec")) == 128 + signum
    said = capsys.readouterr().err.strip()
    assert said.endswith(f"the checkpoint {checkpoint} is kept, and the same command resumes from it; no "
                         f"partial output was kept in {tmp_path / 'm'}.")
    assert checkpoint.is_file() and not (tmp_path / "m").exists()


# -- 5. a batch that cannot fit in memory is refused before the rasters are read -----------------------------
def test_a_batch_larger_than_the_memory_is_refused_before_the_rasters_are_read(monkeypatch):
    """--batch-size 100000000 read the rasters, then failed as "internal error: MemoryError" (an audit)."""
    monkeypatch.setattr(trainer_module, "band_statistics", lambda *a, **k: pytest.fail("read the rasters"))
    with pytest.raises(InputError, match=r"--batch-size\) of 1000000000 triplets needs .* GiB .* more than"):
        train_tile2vec([str(CROP)], tiny(batch_size=10**9), device="cpu")


def test_processing_training_refuses_a_batch_larger_than_the_memory(srl_provider, user_models_dir):
    """The Processing algorithm goes through the same check."""
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="--batch-size"):
        processing.run("srl:train_tile_encoder", {"INPUT": [str(CROP)], "MODEL_ID": "huge", "TILE_SIZE": 16,
                                                  "STEPS": 1, "BATCH_SIZE": 10**9, "DEVICE": "cpu"})
    assert not (user_models_dir / "huge").exists()


# -- 6. a share of ocean points outside [0, 1) is refused before any imagery is read -------------------------
@pytest.mark.parametrize("fraction", [1.5, float("nan"), -1.0])
def test_an_ocean_fraction_outside_0_to_1_is_refused_by_validate(fraction):
    """It was refused by the first batch only, after some 30 s of loading imagery (found by an audit)."""
    with pytest.raises(InputError, match=r"ocean_fraction must be in \[0, 1\)"):
        LocationTrainingConfig(ocean_fraction=fraction).validate()


# -- 7. compare-metrics reads model cards only; evaluate-tiles refuses a negative seed count -----------------
def test_compare_metrics_refuses_a_json_that_is_not_a_model_card(tmp_path):
    """Any JSON passed: "All 0 checked metrics within their spread.", exit 0 (found by an audit)."""
    other = tmp_path / "settings.json"
    other.write_text(json.dumps({"mine": True}))
    shipped = BUNDLED_MODELS_DIR / "bandstats" / "card.json"
    for pair in ([str(other), str(shipped)], [str(shipped), str(other)]):
        args = parse(compare_metrics.register, ["compare-metrics", *pair])
        with pytest.raises(InputError, match=f"{other} is not an SRL model card"):
            args.func(args)


def test_a_negative_count_of_random_weight_seeds_is_refused(monkeypatch):
    """-1 dropped the random-weights baseline row without a word (found by an audit)."""
    monkeypatch.setattr(evaluate_tiles, "evaluate_tiles", lambda *a, **k: pytest.fail("evaluated"))
    args = parse(evaluate_tiles.register, ["evaluate-tiles", "--random-weight-seeds", "-1"])
    with pytest.raises(InputError, match="--random-weight-seeds must be 0"):
        args.func(args)


@pytest.mark.parametrize("seeds", ["0", "-2"])
def test_a_count_of_training_seeds_below_one_is_refused(monkeypatch, seeds):
    """--seeds 0 trained one seed, unsaid."""
    monkeypatch.setattr(evaluate_tiles, "evaluate_tiles", lambda *a, **k: pytest.fail("evaluated"))
    args = parse(evaluate_tiles.register, ["evaluate-tiles", "--train-own-scene", "own", "--seeds", seeds])
    with pytest.raises(InputError, match="--seeds must be 1 or more"):
        args.func(args)
