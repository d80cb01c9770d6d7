"""The quality check's sample is kept while the output is written (no read-back of the file):
it must be the same whatever order the tiles arrive in, bounded, and skip NaN tiles."""

import numpy as np

from srl_core.embedding_quality import PositionSample


def _grid(rows: int, cols: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r, c = np.divmod(np.arange(rows * cols), cols)
    vectors = np.random.default_rng(seed).normal(size=(rows * cols, dim)).astype(np.float32)
    vectors[::7] = np.nan  # tiles left NaN (mostly nodata): never sampled
    return r, c, vectors


def _as_set(vectors: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(v) for v in vectors.tolist()}


def test_same_sample_whatever_the_order_and_batching():
    r, c, v = _grid(40, 30, 5)
    in_order = PositionSample(30, size=50)
    for i in range(0, len(r), 64):
        in_order.add(r[i:i + 64], c[i:i + 64], v[i:i + 64])
    shuffled = PositionSample(30, size=50)
    perm = np.random.default_rng(1).permutation(len(r))
    for i in range(0, len(r), 17):
        part = perm[i:i + 17]
        shuffled.add(r[part], c[part], v[part])
    assert in_order.vectors().shape == (50, 5)
    assert _as_set(in_order.vectors()) == _as_set(shuffled.vectors())
    assert np.isfinite(in_order.vectors()).all()


def test_windows_give_the_same_sample_as_tiles():
    r, c, v = _grid(20, 24, 3)
    tiles = PositionSample(24, size=30)
    tiles.add(r, c, v)
    windows = PositionSample(24, size=30)
    cube = v.T.reshape(3, 20, 24)
    for row0, col0 in [(10, 12), (0, 0), (10, 0), (0, 12)]:  # any order, as Dask finishes them
        windows.add_window(row0, col0, cube[:, row0:row0 + 10, col0:col0 + 12])
    assert _as_set(tiles.vectors()) == _as_set(windows.vectors())


def test_spread_over_the_grid_not_its_first_rows():
    r, c, v = _grid(100, 100, 2)
    sample = PositionSample(100, size=200)
    sample.add(r, c, v)
    rows_hit = {int(np.flatnonzero((v == s).all(axis=1))[0]) // 100 for s in sample.vectors()}
    assert min(rows_hit) < 10 and max(rows_hit) >= 90


def test_nothing_valid_gives_an_empty_sample():
    sample = PositionSample(4)
    sample.add(np.zeros(3, int), np.arange(3), np.full((3, 2), np.nan, dtype=np.float32))
    assert len(sample.vectors()) == 0


def test_sample_is_a_copy_of_the_callers_vectors():
    r, c, v = _grid(2, 3, 2)
    sample = PositionSample(3, size=100)
    sample.add(r, c, v)
    before = sample.vectors().copy()
    v[:] = 0.0
    assert np.array_equal(sample.vectors(), before)


def test_a_vector_nan_in_a_later_band_only_is_left_out():
    r, c, v = _grid(10, 10, 3)
    v[1::5, 2] = np.nan  # finite first value, NaN further on: not a usable vector
    sample = PositionSample(10, size=1000)
    sample.add(r, c, v)
    assert np.isfinite(sample.vectors()).all()
    assert len(sample.vectors()) == int(np.isfinite(v).all(axis=1).sum())
