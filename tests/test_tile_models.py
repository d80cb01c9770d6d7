"""Tile encoders: shapes for any band count and tile size, config round trip, bundles."""

from __future__ import annotations

import pytest
import torch

from srl_core.bundle import ModelCard, load_bundle, save_bundle
from srl_core.errors import ModelError
from srl_core.models.inference import prepare_for_inference
from srl_core.models.tile import (
    VARIANTS,
    build_from_config,
    count_parameters,
    embedding_size,
    fuse_for_inference,
    macs_per_tile,
)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("bands,tile", [(1, 16), (3, 50), (7, 33)])
def test_any_band_count_and_tile_size(variant: str, bands: int, tile: int) -> None:
    net = build_from_config({"in_channels": bands, "variant": variant, "z_dim": 24}).eval()
    with torch.no_grad():
        z = net(torch.randn(2, bands, tile, tile))
    assert z.shape == (2, 24)
    assert torch.isfinite(z).all()


def test_tilenet_is_the_paper_resnet18_shape() -> None:
    net = build_from_config({"in_channels": 4})
    assert net.stem[0].kernel_size == (3, 3) and net.stem[0].stride == (1, 1)
    assert len(net.stages) == 5
    assert [len(stage) for stage in net.stages] == [2, 2, 2, 2, 2]
    assert [stage[-1].conv2.out_channels for stage in net.stages] == [64, 128, 256, 512, 512]
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 4, 50, 50)).shape == (1, 512)


def test_compact_is_an_order_of_magnitude_cheaper() -> None:
    big = build_from_config({"in_channels": 4, "variant": "tilenet"})
    small = build_from_config({"in_channels": 4, "variant": "compact"})
    assert macs_per_tile(big, 4, 50) > 10 * macs_per_tile(small, 4, 50)
    assert count_parameters(big) > 10 * count_parameters(small)
    assert small.training  # macs_per_tile restores the mode it found


def test_overrides_and_bad_configs() -> None:
    net = build_from_config({"in_channels": 2, "variant": "compact", "widths": [8, 16], "blocks": [1, 2, 1],
                             "z_dim": 8})
    assert net(torch.zeros(3, 2, 20, 20)).shape == (3, 8)
    with pytest.raises(ValueError, match="variant"):
        build_from_config({"in_channels": 2, "variant": "vit"})
    with pytest.raises(ValueError, match="blocks"):
        build_from_config({"in_channels": 2, "widths": [8], "blocks": [1, 1, 1]})
    with pytest.raises(KeyError):
        build_from_config({"variant": "compact"})


def test_bundle_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    config = {"in_channels": 3, "variant": "compact", "z_dim": 16}
    net = build_from_config(config).eval()
    card = ModelCard(id="tiny-tile", kind="tile", architecture="tilenet", config=config, embedding_size=16,
                     inputs={"tile_size": 16, "normalisation": {"mean": [0, 0, 0], "std": [1, 1, 1]}})
    save_bundle(net, card, tmp_path / "tiny")
    loaded = load_bundle(tmp_path / "tiny")
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), net(x))
    bad = ModelCard(id="bad", kind="tile", architecture="tilenet",
                    config={"in_channels": 3, "variant": "nope"}, embedding_size=16)
    save_bundle(net, bad, tmp_path / "bad")
    with pytest.raises(ModelError, match="invalid architecture config"):
        load_bundle(tmp_path / "bad")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fused_copy_computes_the_same_function(variant: str) -> None:
    torch.manual_seed(1)
    net = build_from_config({"in_channels": 3, "variant": variant, "z_dim": 16})
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for bn in (m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    net.eval()
    fused = fuse_for_inference(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())  # original untouched
    x = torch.randn(3, 3, 24, 24)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), net(x), rtol=1e-4, atol=1e-5)


def test_preparing_for_inference_leaves_the_loaded_module_as_it_was() -> None:
    """The engine's copy owns its tensors: folding, channels-last and a hook on it change nothing of
    the module an API caller loaded (and may train or run again)."""
    net = build_from_config({"in_channels": 3, "variant": "compact", "z_dim": 16}).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    prepared = prepare_for_inference(net, torch.device("cpu")).module
    prepared.register_forward_hook(lambda *args: None)
    with torch.no_grad():
        for p in prepared.parameters():
            p.add_(1.0)
    after = net.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, rtol=0, atol=0)
        assert after[key].is_contiguous()  # not turned channels-last under the caller
    ours = {p.data_ptr() for p in prepared.parameters()}
    assert not ours & {t.data_ptr() for t in net.state_dict().values()}
    assert not net._forward_hooks


def test_spectral_stats_append_each_bands_mean_and_std_of_the_tile() -> None:
    config = {"in_channels": 3, "variant": "compact", "z_dim": 16, "spectral_stats": True}
    net = build_from_config(config).eval()
    plain = build_from_config({**config, "spectral_stats": False}).eval()
    plain.load_state_dict(net.state_dict())
    # band b is constant 2b except one pixel: known mean and population std
    x = torch.stack([torch.full((9, 9), 2.0 * b) for b in range(3)])[None].repeat(2, 1, 1, 1)
    x[1, :, 0, 0] += 81.0
    with torch.no_grad():
        z = net(x)
        fused = fuse_for_inference(net)(x.contiguous(memory_format=torch.channels_last))
    assert z.shape == (2, embedding_size(config)) == (2, 22)
    torch.testing.assert_close(z[:, :16], plain(x))
    torch.testing.assert_close(z[0, 16:19], torch.tensor([0.0, 2.0, 4.0]))
    torch.testing.assert_close(z[0, 19:], torch.zeros(3))
    torch.testing.assert_close(z[1, 16:19], torch.tensor([1.0, 3.0, 5.0]))  # + 81 / 81 px
    torch.testing.assert_close(z[1, 19:], torch.full((3,), (81.0 * 80.0) ** 0.5 / 9.0))
    torch.testing.assert_close(fused, z, rtol=1e-5, atol=1e-5)
    assert embedding_size({"in_channels": 3, "variant": "compact"}) == VARIANTS["compact"]["z_dim"]


def test_spectral_scales_append_the_statistics_of_the_centred_crops_too() -> None:
    config = {"in_channels": 2, "variant": "compact", "z_dim": 4, "spectral_stats": True,
              "spectral_scales": [1.0, 1 / 3]}
    net = build_from_config(config).eval()
    # a 9 px tile: 5 outside the centre 3 x 3, whose values are 1 (band 0) and -1 .. 1 (band 1)
    x = torch.full((1, 2, 9, 9), 5.0)
    x[0, 0, 3:6, 3:6] = 1.0
    x[0, 1, 3:6, 3:6] = torch.linspace(-1.0, 1.0, 9).reshape(3, 3)
    with torch.no_grad():
        z = net(x)
        fused = fuse_for_inference(net)(x.contiguous(memory_format=torch.channels_last))
    assert z.shape == (1, embedding_size(config)) == (1, 4 + 2 * 2 * 2)
    torch.testing.assert_close(z[0, 4:6], torch.tensor([(72 * 5 + 9) / 81, 72 * 5 / 81]))  # whole tile
    torch.testing.assert_close(z[0, 8:10], torch.tensor([1.0, 0.0]))  # centre means
    centre_std = float(torch.linspace(-1, 1, 9).std(unbiased=False))
    torch.testing.assert_close(z[0, 10:], torch.tensor([0.0, centre_std]))
    torch.testing.assert_close(fused, z, rtol=1e-5, atol=1e-5)
