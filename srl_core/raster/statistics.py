"""Per-band mean and standard deviation of a raster's valid pixels, read in bounded memory.

A tile model standardises its inputs with the statistics of its training imagery (its
card's ``inputs.normalisation``). A raster from another sensor, processing level or
scaling (8-bit DN against 16-bit DN, reflectance against DN) lands far outside that
range, and the embeddings are meaningless. Standardising each band by the raster's own
statistics instead matches the first two moments, which is what cross-sensor transfer
needs; the same statistics also tell when a raster looks unlike the model's training data.

Small rasters are read whole; larger ones through evenly spaced full-width rows, up to
``max_pixels`` pixels in all, so the cost stays small whatever the raster's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .reader import read_window
from .source import RasterSource, open_dataset

DEFAULT_MAX_PIXELS = 4_000_000


@dataclass(frozen=True)
class BandStatistics:
    """Mean and standard deviation of each mapped band over the valid pixels read."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixels: int  # valid pixels they were computed from


def sampled_rows(height: int, width: int, max_pixels: int) -> np.ndarray:
    """Row indices to read: all rows when they fit ``max_pixels``, else evenly spaced ones."""
    count = max(1, min(height, max_pixels // max(width, 1)))
    return np.unique(np.linspace(0, height - 1, count).round().astype(np.int64))


def band_statistics(source: RasterSource, max_pixels: int = DEFAULT_MAX_PIXELS) -> BandStatistics:
    """Statistics of the mapped bands of ``source`` over valid pixels (nodata, NaN and masked excluded).

    Raises :class:`InputError` when no pixel read is valid or a band is constant (it cannot
    be standardised).
    """
    ds = open_dataset(source.path)
    n = 0
    total = np.zeros(len(source.bands), dtype=np.float64)
    squares = np.zeros(len(source.bands), dtype=np.float64)
    rows = sampled_rows(source.height, source.width, max_pixels)
    # consecutive rows are read together: the whole raster in one call when it is small
    runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1)
    for run in runs:
        pixels, invalid = read_window(ds, source, 0, int(run[0]), source.width, len(run))
        valid = pixels[:, ~invalid].astype(np.float64)
        n += valid.shape[1]
        total += valid.sum(axis=1)
        squares += (valid * valid).sum(axis=1)
    if n == 0:
        raise InputError(f"{source.path} has no valid pixel in the bands {list(source.bands)}: every pixel "
                         "is nodata or masked, so it cannot be standardised by its own statistics.")
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    flat = [int(b) for b, m, s in zip(source.bands, mean, std) if not s > 1e-6 * max(1.0, abs(m))]
    if flat:
        raise InputError(f"Band(s) {flat} of {source.path} are constant over their valid pixels; they cannot "
                         "be standardised by the raster's statistics. Use the model's normalisation or other "
                         "bands.")
    return BandStatistics(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), pixels=n)
