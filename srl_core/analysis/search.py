"""Nearest neighbours by cosine similarity: exact (blocked matrix products) or approximate (faiss).

Exact search is the default: it is simple and fast enough up to about a million vectors.
It runs on faiss's brute-force ``knn`` when faiss is installed (its BLAS blocking and
per-query heaps), else on NumPy in blocks of database rows sized so that one block's
scores fit :data:`SEARCH_BYTES`.
Beyond that an inverted-file index (faiss ``IndexIVFFlat``, inner product on unit vectors)
scans only the nearest cells. How many cells to scan (``nprobe``) is not guessed: it is
calibrated when the index is built: the smallest value whose recall@k against exact search
on sample queries reaches the target (0.98 by default, a margin above the 0.95 promised), and the
measured recall is kept on the index. A search for another k is calibrated again for that k (more
results need more cells); a k that is a large share of the vectors scans every cell, which is
exact search; and a query whose scanned cells hold fewer than k vectors is searched again with
more, so every search returns k results.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ..errors import InputError
from ._common import l2_normalize

APPROXIMATE_ABOVE = 1_000_000  # 'auto' switches to the approximate index beyond this many vectors
SEARCH_BYTES = 64 * 1024 * 1024  # budget for one block of scores, or of normalised vectors
# k at least this share of the vectors: every cell is scanned (exact), calibrating would cost more
EXHAUSTIVE_SHARE = 0.1
# true neighbours (queries x k) checked when calibrating for a large k: fewer queries as k grows
CALIBRATION_NEIGHBOURS = 100_000
MIN_CALIBRATION_QUERIES = 20


def _check_k(k: int, n: int) -> int:
    if k < 1:
        raise InputError(f"The number of results k must be at least 1, got {k}.")
    if k > n:
        raise InputError(f"Asked for the {k} most similar of only {n} embeddings; choose a smaller k.")
    return int(k)


def merge_top_k(
    scores: np.ndarray, index: np.ndarray, new_scores: np.ndarray, new_index: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Keep, per query row, the ``k`` highest of two (q, *) score/index sets, best first."""
    s = np.concatenate([scores, new_scores], axis=1)
    i = np.concatenate([index, new_index], axis=1)
    if s.shape[1] > k:
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        s = np.take_along_axis(s, part, axis=1)
        i = np.take_along_axis(i, part, axis=1)
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(s, order, axis=1), np.take_along_axis(i, order, axis=1)


def empty_top_k(n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n_queries, 0), np.float32), np.empty((n_queries, 0), np.int64)


def _block_top_k(unit_block: np.ndarray, unit_queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` (scores, row indices within the block) of one block, in no particular order for NumPy."""
    faiss = _faiss_if_installed()
    if faiss is not None:
        return faiss.knn(unit_queries, unit_block, k, metric=faiss.METRIC_INNER_PRODUCT)
    sims = unit_queries @ unit_block.T
    part = np.argpartition(sims, sims.shape[1] - k, axis=1)[:, -k:]
    return np.take_along_axis(sims, part, axis=1), part


def exact_top_k(
    db: np.ndarray, unit_queries: np.ndarray, k: int, normalise: bool = False, budget: int = SEARCH_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, indices), each (q, k), best first; ``unit_queries`` unit length, ``db`` too unless
    ``normalise`` (then each block of ``db`` is normalised as it is searched: no full copy).

    Blocks of database rows are sized so that their scores (NumPy) and their normalised copy
    fit ``budget``; faiss's knn blocks by itself.
    """
    k = _check_k(k, len(db))
    queries = np.ascontiguousarray(unit_queries, dtype=np.float32)
    per_row = 4 * ((0 if faiss_available() else len(queries)) + (db.shape[1] if normalise else 0))
    rows = max(k, budget // per_row) if per_row else len(db)
    best = empty_top_k(len(queries))
    for start in range(0, len(db), rows):
        block = db[start : start + rows]
        block = l2_normalize(block) if normalise else np.ascontiguousarray(block, dtype=np.float32)
        scores, index = _block_top_k(block, queries, min(k, len(block)))
        best = merge_top_k(*best, scores, index + start, k)
    return best


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true k nearest found, over queries."""
    hits = [len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth)]
    return float(np.mean(hits))


def _faiss():
    try:
        import faiss
    except ImportError as exc:
        raise InputError(
            "Approximate search needs the 'faiss-cpu' package (pip install faiss-cpu); "
            "use exact search instead."
        ) from exc
    return faiss


@functools.lru_cache(maxsize=1)
def _faiss_if_installed():
    try:
        return _faiss()
    except InputError:
        return None


def faiss_available() -> bool:
    return _faiss_if_installed() is not None


class ApproximateIndex:
    """faiss IVF-Flat index on unit vectors with ``nprobe`` calibrated to a target recall@k.

    The vectors are normalised block by block as they are added (faiss keeps its own copy;
    no second full copy is made), and the exact answers for calibration are searched the same way.
    The index keeps a reference to ``embeddings`` (not a copy) to calibrate searches for other k.
    ``nprobe`` and ``calibrated_recall`` are those of the ``k`` it was built for.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        target_recall: float = 0.98,
        k: int = 10,
        n_calibration: int = 200,
        seed: int = 0,
    ) -> None:
        faiss = _faiss()
        self._embeddings = np.asarray(embeddings)  # no copy of an array, whatever its dtype
        embeddings = self._embeddings.astype(np.float32, copy=False)
        n, d = embeddings.shape
        rng = np.random.default_rng(seed)
        self.nlist = int(np.clip(np.sqrt(n), 1, 65_536))
        self._quantizer = faiss.IndexFlatIP(d)  # kept: the IVF index borrows it
        self._index = faiss.IndexIVFFlat(self._quantizer, d, self.nlist, faiss.METRIC_INNER_PRODUCT)
        train = l2_normalize(embeddings[np.sort(rng.choice(n, min(n, 40 * self.nlist), replace=False))])
        self._index.cp.seed = seed
        self._index.train(train)
        del train
        rows = max(1, SEARCH_BYTES // (4 * d))
        for start in range(0, n, rows):
            self._index.add(l2_normalize(embeddings[start : start + rows]))
        self._target, self._n_calibration, self._seed = target_recall, n_calibration, seed
        self.nprobe, self.calibrated_recall = self._calibrate(k, n_calibration, rng)
        self._index.nprobe = self.nprobe
        self._probes = {k: (self.nprobe, self.calibrated_recall)}

    def _calibrate(self, k: int, n_queries: int, rng: np.random.Generator) -> tuple[int, float]:
        """Smallest nprobe whose recall@k reaches the target on sample queries, and that recall.

        IVF-Flat scans the lists it probes exhaustively, so a true neighbour is found exactly
        when its list is among the query's first ``nprobe`` lists (in the quantizer's order):
        the recall at every nprobe follows from the lists' order for each query and the list
        of each true neighbour, without searching the index once. The queries are database
        vectors with themselves left out of the truth, so the recall is that of a new query,
        not inflated by each query finding itself.
        """
        embeddings = self._embeddings
        k = min(k, len(embeddings) - 1)
        picked = rng.choice(len(embeddings), min(n_queries, len(embeddings)), replace=False)
        queries = l2_normalize(embeddings[picked])
        found = exact_top_k(embeddings, queries, k + 1, normalise=True)[1]
        truth = np.stack([row[row != self_id][:k] for row, self_id in zip(found, picked)])
        order = self._quantizer.search(queries, self.nlist)[1]  # lists in probe order, per query
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(self.nlist), order.shape), axis=1)
        lists = self._quantizer.search(l2_normalize(embeddings[truth.ravel()]), 1)[1].reshape(truth.shape)
        needed = np.take_along_axis(rank, lists, axis=1)  # nprobe - 1 at which each true neighbour is found
        recall = np.cumsum(np.bincount(needed.ravel(), minlength=self.nlist)) / needed.size
        nprobe = min(self.nlist, int(np.searchsorted(recall, self._target)) + 1)
        return nprobe, float(recall[nprobe - 1])

    def probes_for(self, k: int) -> tuple[int, float]:
        """(nprobe, recall@k) for searches of ``k`` results, calibrated once per k.

        More results need more lists scanned: the nprobe calibrated for 10 results finds a
        fraction of 1000. When ``k`` is a large share of the vectors every list is scanned,
        which is exact search, and cheaper than calibrating (fewer queries calibrate a large k:
        each brings k true neighbours).
        """
        if k not in self._probes:
            if k >= EXHAUSTIVE_SHARE * self._index.ntotal:
                self._probes[k] = (self.nlist, 1.0)
            else:
                queries = min(self._n_calibration, max(MIN_CALIBRATION_QUERIES, CALIBRATION_NEIGHBOURS // k))
                self._probes[k] = self._calibrate(k, queries, np.random.default_rng([self._seed, k]))
        return self._probes[k]

    def _search(self, queries: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss's search at ``nprobe`` for this call only (the index's own setting is left as built)."""
        params = _faiss().SearchParametersIVF(nprobe=nprobe)
        return self._index.search(queries, k, params=params)

    def search(self, unit_queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, indices), each (q, k), best first: always ``k`` results.

        faiss marks results missing with -1 when the lists a query scans hold fewer than ``k``
        vectors; such queries are searched again, doubling nprobe, up to every list (all vectors).
        """
        k = _check_k(k, self._index.ntotal)
        queries = np.ascontiguousarray(unit_queries, dtype=np.float32)
        nprobe = self.probes_for(k)[0]
        scores, index = self._search(queries, k, nprobe)
        short = np.flatnonzero((index < 0).any(axis=1))
        while short.size and nprobe < self.nlist:
            nprobe = min(self.nlist, 2 * nprobe)
            scores[short], index[short] = self._search(queries[short], k, nprobe)
            short = short[(index[short] < 0).any(axis=1)]
        return scores.astype(np.float32), index.astype(np.int64)


class SimilarityIndex:
    """Top-k cosine search over a fixed set of embeddings.

    ``method``: "exact", "approximate" (faiss), or "auto" (approximate beyond
    :data:`APPROXIMATE_ABOVE` vectors when faiss is installed, exact otherwise).
    """

    def __init__(self, embeddings: np.ndarray, method: str = "auto", target_recall: float = 0.98) -> None:
        if method not in ("auto", "exact", "approximate"):
            raise InputError(f"Unknown search method {method!r}; use auto, exact or approximate.")
        if method == "auto":
            method = "approximate" if len(embeddings) > APPROXIMATE_ABOVE and faiss_available() else "exact"
        self.method = method
        # Only exact search keeps the vectors here; faiss holds its own copy.
        self._unit = np.ascontiguousarray(l2_normalize(embeddings)) if method == "exact" else None
        self._approx: Optional[ApproximateIndex] = (
            ApproximateIndex(embeddings, target_recall) if method == "approximate" else None
        )

    @property
    def approximate(self) -> Optional[ApproximateIndex]:
        """The faiss index behind approximate search (None for exact search)."""
        return self._approx

    @property
    def calibrated_recall(self) -> float:
        """Recall@10 measured at build time (1.0 for exact search)."""
        return self._approx.calibrated_recall if self._approx is not None else 1.0

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, indices), each (q, k), most similar first."""
        unit_q = l2_normalize(np.atleast_2d(queries))
        if self._approx is not None:
            return self._approx.search(unit_q, k)
        return exact_top_k(self._unit, unit_q, k)
