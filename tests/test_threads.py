"""Thread control: the default never exceeds the free cores, every entry point applies and restores it,
and a command imports only its own module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import LANDSAT_CROP
from osgeo import gdal
from threadpoolctl import threadpool_info

from srl_core.cli import COMMANDS, build_parser
from srl_core.errors import InputError
from srl_core.progress import Progress
from srl_core.threads import default_threads, limit_threads, resolve_threads, threaded
from srl_core.tiles import embed_raster

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (3, 2), (4, 3), (5, 4), (16, 4)])
def test_default_leaves_a_core_and_stays_small(cores, expected):
    assert default_threads(cores) == expected


def test_resolve_threads():
    assert resolve_threads(None) == resolve_threads(0) == default_threads()
    assert resolve_threads(3) == 3
    with pytest.raises(InputError, match="from 1 to 256"):
        resolve_threads(-2)
    with pytest.raises(InputError, match="from 1 to 256"):  # it overflowed in torch (a fuzz run)
        resolve_threads(99_999_999_999)


def _limits() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] in ("blas", "openmp")}


def test_limit_threads_sets_torch_and_blas_then_restores():
    before = torch.get_num_threads()
    want = before + 1
    with limit_threads(want) as count:
        assert count == want and torch.get_num_threads() == want and _limits() == {want}
    assert torch.get_num_threads() == before


def test_threaded_decorator_applies_the_keyword():
    @threaded
    def seen(*, threads=None) -> int:
        return torch.get_num_threads()

    assert seen(threads=3) == 3 and seen() == default_threads()


def test_embed_raster_runs_the_model_on_the_threads_asked(tiny_tile_model, tmp_path):
    during: list[int] = []
    progress = Progress(lambda fraction, message: during.append(torch.get_num_threads()))
    outputs = {}
    for threads in (1, 3):
        during.clear()
        out = tmp_path / f"emb{threads}.tif"
        embed_raster(LANDSAT_CROP, out, tiny_tile_model, tile_size=16, device="cpu", threads=threads,
                     progress=progress)
        assert threads in during  # reports from inside the model loop
        outputs[threads] = gdal.Open(str(out)).ReadAsArray()
    # Same embeddings whatever the thread count (up to float summation order).
    np.testing.assert_allclose(outputs[1], outputs[3], rtol=1e-4, atol=1e-5)


def test_command_registry_matches_the_modules():
    """Every command's module registers exactly the commands the registry names, with the same help."""
    parser = build_parser()
    lazy = next(a for a in parser._actions if a.dest == "command")
    listed = {a.dest: a.help for a in lazy._choices_actions}
    assert listed == {name: help_text for name, (_, help_text) in COMMANDS.items()}
    for module in sorted({m for m, _ in COMMANDS.values()}):
        lazy.load(module)
    registered = {a.dest: a.help for a in lazy._choices_actions}
    assert registered == listed


def test_a_command_imports_only_its_own_module():
    code = (
        "import sys\n"
        "from srl_core.cli import build_parser\n"
        "args = build_parser().parse_args(['embed-raster', 'in.tif', 'out.tif', '--model', 'm'])\n"
        "print(args.func.__module__, args.threads)\n"
        "print(sorted(m for m in ('sklearn', 'faiss', 'srl_core.cli.analysis', 'srl_core.location')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["srl_core.cli.embed_raster 0", "[]"]


def test_analysis_entry_points_run_on_the_threads_asked(tmp_path):
    """api.cluster / apply_clusters / similarity (what the CLI and the plugin call) pass ``threads`` on."""
    from analysis_synthetic import clustered_embeddings, write_embedding_raster

    from srl_core.analysis import api
    from srl_core.analysis.similarity import Query

    data, _ = clustered_embeddings(3, 8, 24, 24)
    raster = write_embedding_raster(tmp_path / "emb.tif", data)
    during: list[int] = []
    progress = Progress(lambda fraction, message: during.append(torch.get_num_threads()))
    for threads in (1, 3):
        during.clear()
        result = api.cluster(raster, str(tmp_path / f"k{threads}.tif"), n_clusters=3, progress=progress,
                             threads=threads)
        assert threads in during
        during.clear()
        api.apply_clusters(result.model, raster, str(tmp_path / f"a{threads}.tif"), progress=progress,
                           threads=threads)
        assert threads in during
        during.clear()
        query = Query()
        query.add_pixels(raster, [[500000.0 + 55.0, 4000000.0 - 55.0]])
        api.similarity(raster, query, str(tmp_path / f"s{threads}.tif"), top_k=3,
                       top_k_output=str(tmp_path / f"t{threads}.gpkg"), progress=progress, threads=threads)
        assert threads in during and set(during) == {threads}
        during.clear()
        api.rgb_view(raster, str(tmp_path / f"v{threads}.tif"), progress=progress, threads=threads)
        assert threads in during and set(during) == {threads}


def test_interpolation_runs_on_the_threads_asked(tmp_path):
    """Interpolation's fits (BLAS) run within the limit; torch's count is the witness, as above."""
    from srl_core.analysis.interpolation import interpolate_points

    meuse = str(REPO / "tests" / "data" / "meuse" / "meuse.shp")
    before = torch.get_num_threads()
    during: list[int] = []
    progress = Progress(lambda fraction, message: during.append(torch.get_num_threads()))
    for threads in (1, 3):
        during.clear()
        interpolate_points(meuse, "zinc", str(tmp_path / f"p{threads}.tif"),
                           str(tmp_path / f"u{threads}.tif"), 200.0, n_members=2, n_folds=2,
                           progress=progress, threads=threads)
        assert during and set(during) == {threads}
    assert torch.get_num_threads() == before


def test_threads_beside_the_dask_options_on_every_command():
    """``--threads`` and ``--workers``/``--scheduler`` coexist; sample-tiles takes ``--threads`` too."""
    parser = build_parser()
    args = parser.parse_args(["embed-raster", "in.tif", "out.tif", "--model", "m", "--threads", "2",
                              "--workers", "3", "--window-tiles", "8"])
    assert (args.threads, args.workers, args.window_tiles) == (2, 3, 8)
    for command in (["cluster", "in.tif", "out.tif"],
                    ["apply-clusters", "k.safetensors", "in.tif", "out.tif"],
                    ["embed-points", "in.gpkg", "out.gpkg", "--model", "m"]):
        args = build_parser().parse_args([*command, "--threads", "3", "--scheduler", "tcp://h:8786"])
        assert (args.threads, args.scheduler) == (3, "tcp://h:8786")
    args = build_parser().parse_args(["sample-tiles", "r.tif", "p.gpkg", "o.gpkg", "--model", "m",
                                      "--threads", "2"])
    assert args.threads == 2
    for command in (["interpolate", "p.gpkg", "zinc", "pred.tif", "unc.tif"], ["rgb-view", "e.tif", "v.tif"]):
        assert build_parser().parse_args([*command, "--threads", "2"]).threads == 2
