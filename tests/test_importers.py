"""Importing published checkpoints: GeoCLIP parity with its own code, SatCLIP from its Lightning layout."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from location_reference import published_sh, siren_reference

from srl_core.bundle import load_model
from srl_core.cli import main as cli_main
from srl_core.errors import InputError, ModelError
from srl_core.importers import import_checkpoint, import_geoclip, import_satclip, install

GEOCLIP = "geoclip==1.3.0"
REF_FILES = (
    "geoclip/model/location_encoder.py",
    "geoclip/model/rff/__init__.py",
    "geoclip/model/rff/functional.py",
    "geoclip/model/rff/layers.py",
    "geoclip/model/weights/location_encoder_weights.pth",
)


def lonlat_points() -> np.ndarray:
    rng = np.random.default_rng(0)
    special = [[0, 90], [0, -90], [180, 0], [-180, 0], [179.99, -89.99], [2.35, 48.85], [-74.0, 40.7]]
    pts = np.column_stack([rng.uniform(-180, 180, 200), rng.uniform(-90, 90, 200)])
    return np.concatenate([special, pts]).astype(np.float32)


@pytest.fixture(scope="session")
def geoclip_wheel(request, tmp_path_factory) -> Path:
    """The geoclip 1.3.0 wheel (MIT), fetched once with ``pip download --no-deps``."""
    cache = getattr(request.config, "cache", None)
    folder = cache.mkdir("srl-geoclip-wheel") if cache is not None else tmp_path_factory.mktemp("geoclip")
    found = sorted(Path(folder).glob("geoclip-1.3.0-*.whl"))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", GEOCLIP, "-d", str(folder)]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip(f"PyPI unreachable: 'pip download {GEOCLIP}' timed out")
        found = sorted(Path(folder).glob("geoclip-1.3.0-*.whl"))
        if result.returncode != 0 or not found:
            pytest.skip(f"PyPI unreachable, cannot fetch {GEOCLIP}: {result.stderr.strip()[-300:]}")
    return found[0]


@pytest.fixture(scope="session")
def geoclip_reference(geoclip_wheel, tmp_path_factory):
    """(GeoCLIP's own LocationEncoder class, path of its weights), loaded without pandas & co.

    Only location_encoder.py and its rff package are executed; ``misc`` (which imports pandas just
    to read a CSV) is replaced by a stub that gives the weights folder.
    """
    dest = tmp_path_factory.mktemp("geoclip_src")
    with zipfile.ZipFile(geoclip_wheel) as zf:
        for name in REF_FILES:
            zf.extract(name, dest)
    model_dir = dest / "geoclip" / "model"
    pkg = "geoclip_reference"
    added = [pkg, f"{pkg}.model", f"{pkg}.model.misc", f"{pkg}.model.rff", f"{pkg}.model.location_encoder"]
    for name, path in ((pkg, dest / "geoclip"), (f"{pkg}.model", model_dir)):
        stub = types.ModuleType(name)
        stub.__path__ = [str(path)]
        sys.modules[name] = stub
    misc = types.ModuleType(f"{pkg}.model.misc")
    misc.file_dir = str(model_dir)
    sys.modules[misc.__name__] = misc

    def load(name: str, path: Path, package_dir: Path | None = None):
        spec = importlib.util.spec_from_file_location(
            name, path, submodule_search_locations=[str(package_dir)] if package_dir else None
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    try:
        load(f"{pkg}.model.rff", model_dir / "rff" / "__init__.py", model_dir / "rff")
        reference = load(f"{pkg}.model.location_encoder", model_dir / "location_encoder.py")
        yield reference.LocationEncoder, model_dir / "weights" / "location_encoder_weights.pth"
    finally:
        for name in added:
            sys.modules.pop(name, None)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_geoclip_parity_with_its_own_code(geoclip_reference, user_models_dir):
    reference_cls, weights = geoclip_reference
    reference = reference_cls().eval()  # loads the published weights itself
    imported = import_geoclip(weights)
    lonlat = lonlat_points()
    with torch.no_grad():
        theirs = reference(torch.from_numpy(lonlat[:, ::-1].copy())).numpy()  # GeoCLIP takes (lat, lon)
        ours = imported.module(torch.from_numpy(lonlat)).numpy()
        swapped = imported.module(torch.from_numpy(lonlat[:, ::-1].copy())).numpy()
    assert ours.shape == (len(lonlat), 512)
    assert np.abs(ours - theirs).max() <= 1e-4
    assert np.abs(swapped - theirs).max() > 1e-2  # the axis order matters and is handled
    assert imported.card.licence == "MIT" and imported.card.embedding_size == 512
    installed = install(imported)
    assert installed.path == user_models_dir / "geoclip"
    again = load_model("geoclip")
    with torch.no_grad():
        assert torch.equal(again.module(torch.from_numpy(lonlat)), torch.from_numpy(ours))


def test_a_geoclip_checkpoint_with_tensors_no_layer_takes_is_refused(geoclip_reference, tmp_path):
    """A branch one layer deeper than LocEnc0 (and a stray tensor) imported without those tensors: the
    model installed was not the checkpoint's function, unsaid."""
    state = torch.load(geoclip_reference[1], weights_only=True)
    state["LocEnc1.capsule.7.weight"] = torch.zeros(512, 1024)
    state["LocEnc1.capsule.7.bias"] = torch.zeros(512)
    torch.save(state, tmp_path / "deeper.pth")
    with pytest.raises(ModelError, match=r"2 of its tensors fit no layer .*LocEnc1\.capsule\.7\.bias"):
        import_geoclip(tmp_path / "deeper.pth")


def satclip_checkpoint(path: Path, drop: str = "", extra: str = "", **hp_changes) -> dict:
    """A checkpoint in SatCLIP's Lightning layout (model.location.nnet.*, float64, image encoder too)."""
    gen = torch.Generator().manual_seed(0)
    hp = {
        "embed_dim": 16,
        "image_resolution": 256,
        "vision_layers": "moco_resnet18",
        "vision_width": 768,
        "vision_patch_size": 32,
        "in_channels": 13,
        "le_type": "sphericalharmonics",
        "pe_type": "siren",
        "frequency_num": 16,
        "max_radius": 260,
        "min_radius": 1,
        "legendre_polys": 10,
        "harmonics_calculation": "analytic",
        "sh_embedding_dims": 32,
        "learning_rate": 1e-4,
        "weight_decay": 0.01,
        "num_hidden_layers": 2,
        "capacity": 32,
        **hp_changes,
    }
    dims = [hp["legendre_polys"] ** 2, hp["capacity"], hp["capacity"], hp["embed_dim"]]
    names = ["layers.0", "layers.1", "last_layer"]
    nnet = {}
    for name, fan_in, fan_out in zip(names, dims[:-1], dims[1:]):
        bound = 1 / fan_in if name == "layers.0" else (6 / fan_in) ** 0.5
        weight = torch.rand(fan_out, fan_in, generator=gen, dtype=torch.float64)
        nnet[f"{name}.weight"] = (weight * 2 - 1) * bound
        nnet[f"{name}.bias"] = (torch.rand(fan_out, generator=gen, dtype=torch.float64) * 2 - 1) * bound
    state = {"model.logit_scale": torch.tensor(2.659), "model.visual.fc.weight": torch.randn(16, 512)}
    for key, value in nnet.items():
        state[f"model.location.nnet.{key}"] = value
        state[f"model.nnet.{key}"] = value  # SatCLIP registers the same network twice
    state.pop(f"model.location.nnet.{drop}", None)
    if extra:
        state[f"model.location.nnet.{extra}"] = torch.zeros(3)
    ckpt = {
        "epoch": 12,
        "global_step": 3000,
        "pytorch-lightning_version": "2.1.0",
        "state_dict": state,
        "hyper_parameters": hp,
        "optimizer_states": [],
        "lr_schedulers": [],
    }
    torch.save(ckpt, path)
    return {"hp": hp, "layers": [(nnet[f"{n}.weight"].numpy(), nnet[f"{n}.bias"].numpy()) for n in names]}


def test_satclip_import_matches_published_formula(tmp_path, user_models_dir):
    path = tmp_path / "satclip-resnet18-l10.ckpt"
    made = satclip_checkpoint(path)
    imported = import_satclip(path)
    assert imported.card.id == "satclip-resnet18-l10" and imported.card.licence == "MIT"
    assert imported.card.config["encoding"] == {
        "name": "sphericalharmonics",
        "legendre_polys": 10,
        "normalisation": "satclip",
    }
    lonlat = lonlat_points()
    reference = siren_reference(published_sh(lonlat.astype(np.float64), 10), made["layers"])
    with torch.no_grad():
        ours = imported.module(torch.from_numpy(lonlat)).numpy()
    assert ours.shape == (len(lonlat), 16)
    assert np.abs(ours - reference).max() <= 1e-4
    install(imported)
    with torch.no_grad():
        again = load_model("satclip-resnet18-l10").module(torch.from_numpy(lonlat)).numpy()
    assert np.array_equal(again, ours)


def test_satclip_closed_form_harmonics(tmp_path):
    path = tmp_path / "closed.ckpt"
    made = satclip_checkpoint(path, harmonics_calculation="closed-form", legendre_polys=5)
    imported = import_checkpoint("satclip", path, model_id="closed")
    lonlat = lonlat_points()
    sh = published_sh(lonlat.astype(np.float64), 5, normalisation="orthonormal")
    m = np.concatenate([np.arange(-d, d + 1) for d in range(5)])
    sh = sh * np.where(m % 2 == 1, -1.0, 1.0)  # closed form keeps the Condon-Shortley phase
    with torch.no_grad():
        ours = imported.module(torch.from_numpy(lonlat)).numpy()
    assert np.abs(ours - siren_reference(sh, made["layers"])).max() <= 1e-4


def test_cli_import_model(tmp_path, user_models_dir, capsys):
    path = tmp_path / "SatCLIP ViT16-L40.ckpt"
    satclip_checkpoint(path, legendre_polys=4)
    assert cli_main(["import-model", "satclip", str(path)]) == 0
    assert "satclip-vit16-l40" in capsys.readouterr().out
    assert load_model("satclip-vit16-l40").card.embedding_size == 16
    assert cli_main(["import-model", "geoclip", str(path), "--id", "g"]) == 2
    assert "not a GeoCLIP state dict" in capsys.readouterr().err
    # an empty id was taken as none, and the model installed under the file's name (found by an audit)
    assert cli_main(["import-model", "satclip", str(path), "--id", " ", "--overwrite"]) == 2
    assert "--id is empty" in capsys.readouterr().err


def test_checkpoint_errors_name_what_is_wrong(tmp_path):
    path = tmp_path / "c.ckpt"
    satclip_checkpoint(path, drop="last_layer.bias")
    with pytest.raises(ModelError, match=r"missing: nnet\.last_layer\.bias"):
        import_satclip(path)
    satclip_checkpoint(path, extra="layers.2.weight")
    with pytest.raises(ModelError, match=r"unexpected: nnet\.layers\.2\.weight"):
        import_satclip(path)
    satclip_checkpoint(path, capacity=32, legendre_polys=10)
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["capacity"] = 64
    torch.save(ckpt, path)
    with pytest.raises(ModelError, match="wrong shape"):
        import_satclip(path)
    satclip_checkpoint(path, le_type="theory")
    with pytest.raises(ModelError, match="'theory' is not supported"):
        import_satclip(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable SatCLIP checkpoint"):
        import_satclip(path)
    torch.save({"state_dict": {}, "hyper_parameters": argparse.Namespace(le_type="x")}, path)
    with pytest.raises(ModelError, match=r"\(argparse\.Namespace\), which are not loaded for safety"):
        import_satclip(path)
    torch.save({"LocEnc0.capsule.0.b": torch.zeros(4, 2), "other.weight": torch.zeros(1)}, path)
    with pytest.raises(ModelError, match=r"unexpected keys other\.weight"):
        import_geoclip(path)
    torch.save({"LocEnc0.capsule.0.b": torch.zeros(4, 2)}, path)
    with pytest.raises(ModelError, match=r"missing LocEnc0\.head\.0\.weight"):
        import_geoclip(path)
    with pytest.raises(ModelError, match="not found"):
        import_geoclip(tmp_path / "absent.pth")
    with pytest.raises(ModelError, match="is a folder: choose the GeoCLIP checkpoint file in it"):
        import_geoclip(tmp_path)  # it said "not found" of a folder that is there
    with pytest.raises(InputError, match="Unknown checkpoint kind"):
        import_checkpoint("clip", path)


def test_a_given_id_is_kept_as_typed_and_loads_by_it(tmp_path, user_models_dir):
    """'MyModel' was installed as 'mymodel', and load_model('MyModel') then found nothing."""
    path = tmp_path / "ckpt.ckpt"
    satclip_checkpoint(path, legendre_polys=3)
    install(import_checkpoint("satclip", path, model_id="MySatCLIP"))
    assert load_model("MySatCLIP").card.id == "MySatCLIP"
    with pytest.raises(ModelError, match="not a usable model id"):
        import_checkpoint("satclip", path, model_id="../escape")
    assert import_checkpoint("satclip", path).card.id == "ckpt"  # from the file name, made safe


def test_a_checkpoint_cut_short_or_not_one_is_corrupt_not_code_nor_a_bug(tmp_path):
    """An honest old-format (pre-zip) GeoCLIP state dict cut at any length, and a text file, were "a bug in
    SRL" (IndexError, KeyError, struct.error from torch's unpickler) or "holds code ... (torch..)", a name
    cut off by the file's end (found by an audit). Each is now the corrupt-or-truncated message."""
    import random

    honest = tmp_path / "honest.pth"
    state = {f"LocEnc{i}.capsule.0.b": torch.zeros(4, 2) for i in range(3)}
    torch.save(state, honest, _use_new_zipfile_serialization=False)
    data = honest.read_bytes()
    cut = tmp_path / "cut.pth"
    lengths = sorted({1, 111, 177, 300, *random.Random(0).sample(range(1, len(data)), 60)})
    for n in lengths:
        cut.write_bytes(data[:n])
        with pytest.raises(ModelError, match="not a readable GeoCLIP checkpoint"):
            import_geoclip(cut)
    cut.write_text("hello world")
    with pytest.raises(ModelError, match="not a readable GeoCLIP checkpoint"):
        import_geoclip(cut)
