"""Which three embedding dimensions to show as red, green, blue, and over what range.

Tile embeddings are often sparse (ReLU): bands 1-3 of the bundled model are 0 on 56-73 % of
the sample's tiles, so showing them as RGB gives a mostly black picture. The dimensions that
vary most over the tiles while rarely being 0 show the structure the model sees; each is
stretched over its 2-98 % range, like QGIS's default cumulative cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError

CUT = (2.0, 98.0)


@dataclass(frozen=True)
class DisplayBands:
    """1-based bands for red, green and blue, and the (low, high) stretch of each."""

    bands: tuple[int, int, int]
    ranges: tuple[tuple[float, float], ...]


def display_bands(vectors: np.ndarray) -> DisplayBands:
    """The three most informative dimensions of (N, D) embeddings (rows with NaN ignored)."""
    vectors = np.asarray(vectors, np.float64)
    vectors = vectors[np.isfinite(vectors).all(axis=1)]
    if len(vectors) == 0:
        raise InputError("These embeddings have no valid pixel to show.")
    score = vectors.std(axis=0) * (vectors != 0).mean(axis=0)
    order = np.argsort(-score, kind="stable")
    picks = [int(i) for i in (list(order[:3]) + [0, 0, 0])[:3]]
    ranges = []
    for i in picks:
        low, high = np.percentile(vectors[:, i], CUT)
        ranges.append((float(low), float(high if high > low else low + 1.0)))
    return DisplayBands(bands=tuple(i + 1 for i in picks), ranges=tuple(ranges))
