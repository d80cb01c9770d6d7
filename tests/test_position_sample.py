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


def _cube(rows: int, cols: int, dim: int, seed: int = 0) -> np.ndarray:
    """A (D, rows, cols) output grid, some tiles NaN (mostly nodata: never sampled)."""
    return _grid(rows, cols, dim, seed)[2].T.reshape(dim, rows, cols)


def _windows(cube: np.ndarray, height: int, width: int) -> list[tuple[int, int, np.ndarray]]:
    _, rows, cols = cube.shape
    return [(r, c, cube[:, r:r + height, c:c + width]) for r in range(0, rows, height)
            for c in range(0, cols, width)]


def test_same_sample_whatever_the_order_and_shape_of_the_windows():
    cube = _cube(40, 30, 5)
    strips = PositionSample(30, size=50)
    for row0, col0, window in _windows(cube, 16, 30):  # the engine's strips, top to bottom
        strips.add_window(row0, col0, window)
    shuffled = PositionSample(30, size=50)
    windows = _windows(cube, 7, 11)
    for i in np.random.default_rng(1).permutation(len(windows)):  # as Dask finishes them
        shuffled.add_window(*windows[i])
    assert strips.vectors().shape == (50, 5)
    assert _as_set(strips.vectors()) == _as_set(shuffled.vectors())
    assert np.isfinite(strips.vectors()).all()


def test_the_smallest_keys_are_kept_once_the_sample_is_full():
    """Once full, only positions whose key is below the largest kept are taken: the same sample as
    offering the whole grid at once."""
    cube = _cube(60, 50, 3, seed=4)
    whole = PositionSample(50, size=40)
    whole.add_window(0, 0, cube)
    rows = PositionSample(50, size=40)
    for row0, col0, window in _windows(cube, 1, 50):
        rows.add_window(row0, col0, window)
    assert _as_set(whole.vectors()) == _as_set(rows.vectors())


def test_spread_over_the_grid_not_its_first_rows():
    r, c, v = _grid(100, 100, 2)
    sample = PositionSample(100, size=200)
    sample.add_window(0, 0, v.T.reshape(2, 100, 100))
    rows_hit = {int(np.flatnonzero((v == s).all(axis=1))[0]) // 100 for s in sample.vectors()}
    assert min(rows_hit) < 10 and max(rows_hit) >= 90


def test_nothing_valid_gives_an_empty_sample():
    sample = PositionSample(4)
    sample.add_window(0, 0, np.full((2, 1, 3), np.nan, dtype=np.float32))
    assert len(sample.vectors()) == 0


def test_sample_is_a_copy_of_the_callers_vectors():
    cube = _cube(2, 3, 2)
    sample = PositionSample(3, size=100)
    sample.add_window(0, 0, cube)
    before = sample.vectors().copy()
    cube[:] = 0.0  # the writer reuses nothing, but a caller may
    assert np.array_equal(sample.vectors(), before)


def test_a_vector_nan_in_a_later_band_only_is_left_out():
    r, c, v = _grid(10, 10, 3)
    v[1::5, 2] = np.nan  # finite first value, NaN further on: not a usable vector
    sample = PositionSample(10, size=1000)
    sample.add_window(0, 0, v.T.reshape(3, 10, 10))
    assert np.isfinite(sample.vectors()).all()
    assert len(sample.vectors()) == int(np.isfinite(v).all(axis=1).sum())
