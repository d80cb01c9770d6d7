"""The progress/cancel protocol and atomic outputs that every engine relies on."""

import io

import pytest

from srl_core.atomic import atomic_output, check_writable
from srl_core.errors import CancelledError, OutputError
from srl_core.progress import Progress, ensure_progress


def test_sub_progress_maps_onto_parent_range():
    seen = []
    parent = Progress(lambda f, m: seen.append((round(f, 6), m)))
    child = parent.sub(0.5, 1.0).sub(0.0, 0.5)
    child.report(0.0, "a")
    child.report(1.0, "b")
    child.report(2.0, "clamped")
    assert seen == [(0.5, "a"), (0.75, "b"), (0.75, "clamped")]


def test_check_raises_once_cancelled_and_null_progress_never_does():
    flag = {"stop": False}
    progress = Progress(is_cancelled=lambda: flag["stop"])
    progress.check()
    flag["stop"] = True
    with pytest.raises(CancelledError):
        progress.sub(0.2, 0.4).check()
    ensure_progress(None).check()


def test_atomic_output_renames_on_success(tmp_path):
    target = tmp_path / "out.tif"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".tif" and tmp != target
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    assert [p.name for p in tmp_path.iterdir()] == ["out.tif"]


def test_atomic_output_keeps_old_file_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.gpkg"
    target.write_bytes(b"old")
    with pytest.raises(CancelledError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        (tmp.parent / (tmp.name + "-journal")).write_bytes(b"j")
        raise CancelledError("stop")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.gpkg"]


def test_unwritable_destinations_are_clear_errors(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        check_writable(tmp_path / "missing" / "x.tif")
    with pytest.raises(OutputError, match="is a folder"):
        check_writable(tmp_path)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_command_line_progress_redraws_on_a_terminal_and_writes_tenths_into_a_log():
    """A log (a CI run, make models's runs side by side) gets a line per tenth of the work, not the
    hundreds of carriage-return redraws a terminal gets."""
    from srl_core.cli._progress_bar import text_progress

    log, terminal = io.StringIO(), _Terminal()
    for stream in (log, terminal):
        progress = text_progress(stream)
        for step in range(1001):
            progress.report(step / 1000, f"step {step}")
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 11
    assert lines[3].startswith(" 30% step 300 ETA") and lines[-1].startswith("100% step 1000")
    assert terminal.getvalue().count("\r") > 100 and terminal.getvalue().endswith("\n")


def test_a_time_estimate_and_warnings_are_shown_whole_once_and_a_message_keeps_its_own_eta():
    """Training's 'Estimated training time' fell between two tenths into a log and was cut to 40 characters
    on a terminal; every line showed two ETAs that disagreed."""
    from srl_core.cli._progress_bar import text_progress

    estimate = "Estimated training time: 2m20s for 997 more steps on cpu"
    log, terminal = io.StringIO(), _Terminal()
    for stream in (log, terminal):
        progress = text_progress(stream)
        progress.report(0.001, "step 1/1000")
        progress.report(0.003, estimate)
        progress.report(0.5, "step 500/1000 loss 0.6 ETA 1m10s")
    assert estimate + "\n" in log.getvalue() and estimate + "\n" in terminal.getvalue()
    assert log.getvalue().count("ETA") == 1


@pytest.mark.parametrize("stem", ["a" * 240, "中" * 83])  # 244 and 253 bytes with the suffix
def test_an_output_name_near_the_file_name_limit_is_written(tmp_path, stem):
    """A valid name of 226-255 bytes made a temporary name past the 255-byte limit: "a bug in SRL"."""
    import os

    from srl_core.atomic import partial_path, remove_stale_partials

    target = tmp_path / f"{stem}.tif"
    with atomic_output(target) as tmp:
        assert len(os.fsencode(tmp.name)) + len(".aux.xml") <= 255
        tmp.write_bytes(b"data")
        (tmp.parent / (tmp.name + ".aux.xml")).write_text("<x/>")
    kept = [f"{stem}.tif", f"{stem}.tif.aux.xml"][: 1 + (len(os.fsencode(stem)) + 12 <= 255)]
    assert target.read_bytes() == b"data" and sorted(p.name for p in tmp_path.iterdir()) == kept
    stale = partial_path(target).with_name(partial_path(target).name.replace(f"-{os.getpid()}-", "-4194303-"))
    stale.write_bytes(b"left by a dead run")
    assert remove_stale_partials(target) == [stale]  # found by the same shortened prefix


def test_an_output_of_a_long_name_embeds_with_its_hidden_parts_folder_within_the_limit(tmp_path):
    """The partial name fitted, but the '.<output>.parts' folder every raster embedding looks for did not:
    names of 249-255 bytes still failed as "a bug in SRL"."""
    import os

    from conftest import LANDSAT_CROP

    from srl_core.raster.parts import parts_folder
    from srl_core.tiles import embed_raster

    target = tmp_path / f"{'长' * 83}.tif"  # 253 bytes
    assert len(os.fsencode(parts_folder(str(target)).name)) <= 255
    embed_raster(LANDSAT_CROP, target, "bandstats", tile_size=16)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
