"""The engine's model stage (srl_core.tile_encoder): precision choices, and mixed precision on CUDA.

GDAL-free on purpose: this file also runs on a GPU host that has torch but no GDAL
(``python -m pytest --noconftest tests/test_tile_encoder.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srl_core.bundle import load_model
from srl_core.errors import InputError, ModelError
from srl_core.tile_encoder import TileEncoder

MODEL = "tile2vec-l8-rgb-pixels64"
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _tiles(n: int = 256) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, 17, 17), dtype=np.float32)


def test_mixed_precision_on_the_cpu_is_refused_naming_the_parameter():
    with pytest.raises(InputError, match="(?i)precision 'mixed' needs a CUDA device.*fp32"):
        TileEncoder(load_model(MODEL), "cpu", "mixed")


def test_an_unknown_precision_is_refused():
    with pytest.raises(InputError, match="Precision must be one of fp32, mixed"):
        TileEncoder(load_model(MODEL), "cpu", "half")


def test_fp32_on_the_cpu_gives_float32_embeddings_of_the_cards_size():
    out = TileEncoder(load_model(MODEL), "cpu")(_tiles(8))
    assert out.dtype == np.float32 and out.shape == (8, 86)


@needs_cuda
def test_mixed_precision_embeddings_point_where_fp32_ones_do():
    model = load_model(MODEL)
    tiles = _tiles()
    exact = TileEncoder(model, "cuda")(tiles)
    mixed = TileEncoder(model, "cuda", "mixed")(tiles)
    assert mixed.dtype == np.float32 and mixed.shape == exact.shape
    cos = (exact * mixed).sum(1) / np.linalg.norm(exact, axis=1) / np.linalg.norm(mixed, axis=1)
    assert np.median(cos) > 0.999 and cos.min() > 0.99
    assert not np.array_equal(exact, mixed)  # it did run in lower precision


@needs_cuda
def test_fp32_on_cuda_stays_within_tf32_of_the_cpu():
    """cuDNN's TF32 convolutions (torch's default) were within 0.06 % of the largest value on an H100."""
    model = load_model(MODEL)
    tiles = _tiles()
    cpu = TileEncoder(model, "cpu")(tiles)
    np.testing.assert_allclose(TileEncoder(model, "cuda")(tiles), cpu, rtol=0, atol=2e-3 * np.abs(cpu).max())


def test_a_submitted_batch_gives_what_a_waiting_call_gives():
    encoder = TileEncoder(load_model(MODEL), "cpu")
    tiles = _tiles(16)
    np.testing.assert_array_equal(encoder.submit(tiles).result(), encoder(tiles))


def test_non_finite_embeddings_are_refused_when_taken_naming_the_model():
    model = load_model(MODEL)
    model.module.register_forward_hook(lambda module, args, out: out * float("nan"))
    pending = TileEncoder(model, "cpu").submit(_tiles(4))
    with pytest.raises(ModelError, match=MODEL):
        pending.result()


@needs_cuda
def test_batches_in_flight_on_cuda_keep_their_own_embeddings():
    """Three batches submitted before any is taken: each result is its own batch's, in its own memory."""
    model = load_model(MODEL)
    cpu, cuda = TileEncoder(model, "cpu"), TileEncoder(model, "cuda")
    batches = [np.random.default_rng(seed).standard_normal((512, 3, 17, 17), dtype=np.float32)
               for seed in range(3)]
    pending = [cuda.submit(tiles) for tiles in batches]
    taken = [p.result() for p in pending]
    for tiles, got in zip(batches, taken):
        expected = cpu(tiles)
        np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3 * np.abs(expected).max())
    assert not np.shares_memory(taken[0], taken[1])
