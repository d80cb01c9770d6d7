"""Issue 11, "Interrupted runs": Ctrl-C, SIGTERM and SIGKILL never leave a partial file for good.

A real ``python -m srl_core embed-raster`` is started on a raster big enough to still be
running when the signal comes; the test waits until its partial output exists, signals it,
and checks the exit status, the message and the output folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LANDSAT_CROP, REPO_ROOT, TINY_TILE_MODEL_ID
from osgeo import gdal

from srl_core.atomic import atomic_output, output_run, partial_path, remove_stale_partials
from srl_core.cli import main
from srl_core.signals import Interrupted, signals_cancel

OLD_OUTPUT = b"an earlier result the user keeps"


@pytest.fixture
def big_raster(tmp_path) -> Path:
    """The Landsat crop resampled to 1500 x 1500 px: with a 2 px stride, 560,000 tiles (minutes)."""
    path = tmp_path / "big.tif"
    gdal.Translate(str(path), str(LANDSAT_CROP), width=1500, height=1500, resampleAlg="nearest")
    return path


def _start(raster: Path, output: Path, models: Path) -> subprocess.Popen:
    env = {**os.environ, "SRL_MODELS_DIR": str(models), "OMP_NUM_THREADS": "1"}
    args = ["embed-raster", str(raster), str(output), "--model", TINY_TILE_MODEL_ID, "--stride", "2",
            "--device", "cpu"]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "srl_core", *args],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_partial(proc: subprocess.Popen, folder: Path, timeout: float = 120.0) -> list[Path]:
    """Poll until the run has a partial output (it is embedding), or fail if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partials = [p for p in folder.iterdir() if ".partial-" in p.name]
        if partials:
            return partials
        assert proc.poll() is None, f"the run ended before it started writing: {proc.communicate()}"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("no partial output appeared")


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_cleanly(tiny_tile_model, user_models_dir, big_raster, tmp_path, signum, status):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "emb.tif"
    output.write_bytes(OLD_OUTPUT)
    proc = _start(big_raster, output, user_models_dir)
    partials = _wait_for_partial(proc, out_dir)
    assert str(proc.pid) in partials[0].name  # the owner is recorded in the name
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert "cancelled" in err and "Traceback" not in err
    assert sorted(p.name for p in out_dir.iterdir()) == ["emb.tif"]
    assert output.read_bytes() == OLD_OUTPUT


def test_a_killed_runs_partial_is_removed_by_the_next_run(
    tiny_tile_model, user_models_dir, big_raster, tmp_path
):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    output = out_dir / "emb.tif"
    proc = _start(big_raster, output, user_models_dir)
    left = _wait_for_partial(proc, out_dir)
    proc.kill()  # SIGKILL: no handler runs, the partial stays
    proc.communicate(timeout=60)
    assert all(p.exists() for p in left)
    # a partial of a live run of the same output (this process) must survive the next run
    live = partial_path(output)
    live.write_bytes(b"still being written")
    assert main(["embed-raster", str(LANDSAT_CROP), str(output), "--model", TINY_TILE_MODEL_ID]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(["emb.tif", live.name])
    assert gdal.Open(str(output)).RasterCount == 8


def test_only_dead_owners_partials_on_this_machine_are_removed(tmp_path):
    target = tmp_path / "x.tif"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mine, theirs = partial_path(target), partial_path(target)
    gone = tmp_path / mine.name.replace(f"-{os.getpid()}-", f"-{dead.pid}-")
    other_host = tmp_path / f".x.partial-{dead.pid}-zzzzzz-0000abcd.tif"
    other_output = tmp_path / f".y.partial-{dead.pid}-{mine.name.split('-')[2]}-0000abcd.tif"
    for path in (mine, theirs, gone, Path(str(gone) + ".aux.xml"), other_host, other_output):
        path.write_bytes(b"x")
    assert remove_stale_partials(target) == [gone]
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {mine.name, theirs.name, other_host.name, other_output.name}


@pytest.mark.parametrize("replaced_by", [None, TypeError])
def test_the_signal_handler_raises_a_cancel_and_is_removed_afterwards(tmp_path, replaced_by):
    # replaced_by: CI once got "internal error: TypeError: _value_ not set in __new__" (exit 3, not 143):
    # SIGTERM landed while an import built an enum, and the enum machinery replaced Interrupted by a
    # TypeError; a cancel must stay a cancel whatever the interrupted code turns it into
    before = signal.getsignal(signal.SIGTERM)
    target = tmp_path / "out.tif"
    with (
        pytest.raises(Interrupted) as caught,
        signals_cancel(),
        output_run([target]),
        atomic_output(target) as tmp,
    ):
        tmp.write_bytes(b"half")
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this at once
        except Interrupted:
            if replaced_by is None:
                raise
            raise replaced_by("_value_ not set in __new__, unable to create it") from None
    assert caught.value.exit_status == 143
    assert not isinstance(caught.value, Exception)  # an `except Exception` guard cannot swallow it
    assert replaced_by is None or isinstance(caught.value.__cause__, replaced_by)
    assert signal.getsignal(signal.SIGTERM) is before
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError), signals_cancel():  # with no signal, errors pass through unchanged
        raise ValueError("a bug")


def test_stopping_a_thread_goes_on_through_a_signal_and_reports_the_first():
    """Joining a reader or the writer: a Ctrl-C in the wait must not leave the thread running."""
    from srl_core.signals import through_signals

    calls, signalled = [], []

    def join_once_interrupted() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise KeyboardInterrupt(f"signal {len(calls)}")

    found = through_signals(join_once_interrupted, on_signal=lambda: signalled.append(1))
    assert len(calls) == 3 and len(signalled) == 2
    assert isinstance(found, KeyboardInterrupt) and str(found) == "signal 1"
    earlier = KeyboardInterrupt("earlier")
    assert through_signals(lambda: None, earlier) is earlier
    assert through_signals(lambda: None) is None


def test_sigterm_says_what_the_same_command_resumes(capsys):
    """A training stopped by SIGTERM said that "a window-by-window run keeps the windows it finished":
    training keeps checkpoints, and only with --checkpoint-dir (found by two audits)."""
    from srl_core.signals import Interrupted, cancelled_exit
    from training.commands import resuming

    assert cancelled_exit(Interrupted(signal.SIGTERM), resuming("tile2vec")) == 143
    said = capsys.readouterr().err
    assert "no partial output was kept." in said and "--checkpoint-dir" in said and "window" not in said
    for command in ("location", "evaluate-tiles"):  # they keep no checkpoint (a review)
        cancelled_exit(Interrupted(signal.SIGTERM), resuming(command))
        said = capsys.readouterr().err.strip()
        assert said.endswith("no partial output was kept. The same command starts over.")
    assert cancelled_exit(Interrupted(signal.SIGTERM)) == 143
    assert "the windows it finished" in capsys.readouterr().err
