"""Exact search gives the same answer on faiss and on NumPy, in one block or many, normalising as it goes."""

from __future__ import annotations

import numpy as np
import pytest

from srl_core.analysis import _common, search
from srl_core.analysis._common import as_embeddings, l2_normalize
from srl_core.analysis.search import exact_top_k, faiss_available
from srl_core.errors import InputError


def _data(n: int = 3000, d: int = 16, q: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    return rng.normal(size=(n, d)).astype(np.float32) * 3, rng.normal(size=(q, d)).astype(np.float32)


def _brute(db: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    sims = l2_normalize(queries).astype(np.float64) @ l2_normalize(db).astype(np.float64).T
    return np.argsort(-sims, axis=1)[:, :k]


@pytest.mark.parametrize("use_faiss", [True, False])
@pytest.mark.parametrize("budget", [search.SEARCH_BYTES, 4096])
def test_exact_search_matches_brute_force(monkeypatch, use_faiss, budget) -> None:
    if use_faiss and not faiss_available():
        pytest.skip("faiss is not installed")
    if not use_faiss:
        monkeypatch.setattr(search, "_faiss_if_installed", lambda: None)
    db, queries = _data()
    truth = _brute(db, queries, 10)
    unit_q = l2_normalize(queries)
    for scores, index in (exact_top_k(l2_normalize(db), unit_q, 10, budget=budget),
                          exact_top_k(db, unit_q, 10, normalise=True, budget=budget)):
        np.testing.assert_array_equal(index, truth)
        assert (np.diff(scores, axis=1) <= 1e-6).all() and index.dtype == np.int64
        expected = np.take_along_axis(l2_normalize(queries) @ l2_normalize(db).T, truth, axis=1)
        np.testing.assert_allclose(scores, expected, atol=1e-5)


def test_l2_normalize_rows_and_vectors() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(x[0]), [0.6, 0.8])


def test_nan_rows_are_counted_across_check_blocks(monkeypatch) -> None:
    monkeypatch.setattr(_common, "CHECK_ROWS", 4)
    x = np.ones((10, 3), np.float32)
    x[[1, 6, 9], 2] = np.nan
    with pytest.raises(InputError, match="^3 of the embeddings"):
        as_embeddings(x)


def test_kmeans_predict_in_blocks_gives_the_nearest_centre(monkeypatch) -> None:
    from srl_core.analysis import clustering

    model = clustering.EmbeddingKMeans(3)
    model.cluster_centers_ = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)
    x = np.random.default_rng(0).uniform(-5, 15, size=(1000, 2)).astype(np.float32)
    truth = np.argmin(((x[:, None, :] - model.cluster_centers_[None]) ** 2).sum(axis=2), axis=1)
    monkeypatch.setattr(clustering, "PREDICT_BYTES", 4 * 3 * 7)  # blocks of 7 rows
    labels = model.predict(x)
    assert labels.dtype == np.int32 and (labels == truth).mean() > 0.999  # ties at float rounding only


def test_calibrated_recall_is_what_the_index_finds() -> None:
    """The recall computed from list ranks equals the recall of searching the index at that nprobe."""
    if not faiss_available():
        pytest.skip("faiss is not installed")
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(6000, 8)) @ rng.normal(size=(8, 32))).astype(np.float32)
    x += 0.3 * rng.normal(size=x.shape).astype(np.float32)
    index = search.ApproximateIndex(x, target_recall=0.9, k=10, n_calibration=50, seed=0)
    assert 1 < index.nprobe < index.nlist and index.calibrated_recall >= 0.9
    replay = np.random.default_rng(0)  # the index's own draws: training rows, then calibration queries
    replay.choice(len(x), min(len(x), 40 * index.nlist), replace=False)
    picked = replay.choice(len(x), 50, replace=False)
    queries = l2_normalize(x[picked])
    truth = exact_top_k(x, queries, 11, normalise=True)[1]
    for nprobe in (index.nprobe - 1, index.nprobe):
        index._index.nprobe = nprobe
        found = index._index.search(queries, 11)[1]
        hits = [len(np.intersect1d(f[f != p][:10], t[t != p][:10])) for f, t, p in zip(found, truth, picked)]
        recall = np.mean(hits) / 10
        if nprobe == index.nprobe:
            assert recall == pytest.approx(index.calibrated_recall)
        else:
            assert recall < 0.9
