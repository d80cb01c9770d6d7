"""Per-band mean and standard deviation of a raster's valid pixels, read in bounded memory.

A tile model standardises its inputs with the statistics of its training imagery (its
card's ``inputs.normalisation``). A raster from another sensor, processing level or
scaling (8-bit DN against 16-bit DN, reflectance against DN) lands far outside that
range, and the embeddings are meaningless. Standardising each band by the raster's own
statistics instead matches the first two moments, which is what cross-sensor transfer
needs; the same statistics also tell when a raster looks unlike the model's training data.

Small rasters are read whole; larger ones through squares of ``SAMPLE_WINDOW`` pixels on a
fixed grid, spread evenly over the raster, about ``max_pixels`` pixels in all, so the cost
stays small whatever the raster's size. The squares do not depend on how the file is stored:
the same pixels give the same statistics, and the same normalisation choice, whether the
raster is tiled or in strips (sampling whole stored blocks once made a strip file of a scene
standardise differently from the tiled file of the same scene). On 256-px tiles each square
is one block; on strips the squares of one grid row share their strips, decoded once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..errors import InputError
from ..progress import Progress, ensure_progress
from .grid import window_geotransform
from .mask import inside_region, outside_mask
from .reader import read_window
from .source import RasterSource, open_dataset

DEFAULT_MAX_PIXELS = 4_000_000
SAMPLE_WINDOW = 256  # px side of the sampled squares: the most common tile size of GeoTIFFs
MIN_WINDOWS = 8  # a raster too large to read whole is sampled in at least this many squares
UNDECLARED_FILL_SHARE = 0.02  # warn when this share of the sample is 0 in every band and no nodata is set
EDGE_FILL_SHARE = 0.5  # ... or when this share of the outermost pixels of one of its edges is
EDGE_RUNS, EDGE_RUN = 3, 16  # runs of pixels read along each edge for that check, and their length


@dataclass(frozen=True)
class BandStatistics:
    """Mean and standard deviation of each mapped band over the valid pixels read."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixels: int  # valid pixels they were computed from
    whole: bool = False  # read from every pixel of the raster (or of its part a mask holds), not a sample
    zero_fill: float = 0.0  # share of the valid pixels read that are 0 in every band (undeclared fill?)

    def without_zeros(self) -> BandStatistics:
        """The same statistics over the pixels read that are not 0 in every band (an undeclared fill left
        out), from the sums these hold: a 17 % fill border moved a Landsat scene's band means by 2-4
        standard deviations of its ground, and it was taken for another sensor's."""
        kept = self.pixels * (1.0 - self.zero_fill)
        if not self.zero_fill or kept < 1:
            return self
        scale = self.pixels / kept  # zeros add nothing to the sums: only the count changes
        mean = np.asarray(self.mean) * scale
        squares = (np.asarray(self.std) ** 2 + np.asarray(self.mean) ** 2) * scale
        std = np.sqrt(np.maximum(squares - mean * mean, 0.0))
        return BandStatistics(tuple(float(v) for v in mean), tuple(float(v) for v in std), int(round(kept)),
                              self.whole, 0.0)

    def constant_bands(self) -> list[int]:
        """Indices of the bands that do not vary over the pixels read: they cannot be standardised."""
        return [i for i, (m, s) in enumerate(zip(self.mean, self.std)) if not s > 1e-6 * max(1.0, abs(m))]


def sampled_windows(width: int, height: int, max_pixels: int, min_windows: int = MIN_WINDOWS,
                    side: int = SAMPLE_WINDOW) -> list[tuple[int, int, int, int]]:
    """Windows ``(x, y, w, h)`` to read, row by row: the whole raster when it fits ``max_pixels``,
    else a lattice of ``side``-px squares of a grid anchored at the origin (clipped at the
    edges): the raster cut into equal strata, rows of columns, and the grid cell at each
    stratum's centre, at least ``min_windows`` of them.

    A lattice rather than a diagonal scatter: on a strip file every sampled grid row costs
    the decoding of its strips across the whole width, so the squares share as few rows as the
    raster's shape allows.
    """
    if width * height <= max_pixels:
        return [(0, 0, width, height)]
    cols, rows = -(-width // side), -(-height // side)
    count = min(cols * rows, max(min_windows, max_pixels // (side * side)))
    down = min(rows, max(1, round(math.sqrt(count * rows / cols))))
    across = min(cols, -(-count // down))
    picked_rows = np.unique(((np.arange(down) + 0.5) * rows / down).astype(np.int64))  # centred strata
    picked_cols = np.unique(((np.arange(across) + 0.5) * cols / across).astype(np.int64))
    corners = [(int(c) * side, int(r) * side) for r in picked_rows for c in picked_cols]
    return [(x, y, min(side, width - x), min(side, height - y)) for x, y in corners]


def band_statistics(source: RasterSource, max_pixels: int = DEFAULT_MAX_PIXELS,
                    progress: Optional[Progress] = None, side: int = SAMPLE_WINDOW,
                    allow_constant: bool = False, mask_path: Optional[str] = None) -> BandStatistics:
    """Statistics of the mapped bands of ``source`` over valid pixels (nodata, NaN and masked excluded),
    from squares of ``side`` px when the raster is too large to read whole (:func:`sampled_windows`).

    ``mask_path`` (a raster, non-zero = inside, or a polygon layer): only pixels inside count, and the
    squares are drawn over the part of the raster that holds the mask's inside. Training draws its
    statistics from inside its mask (land only, say); the engine compares and standardises the same
    way, or a model trained on the land of a coastal scene finds the scene unlike its training data.

    ``progress``'s cancel flag is honoured between the windows read (a large raster takes seconds).

    Raises :class:`InputError` when no pixel read is valid or, unless ``allow_constant`` (the
    statistics only compared, not used to standardise), when a band is constant.
    """
    ds = open_dataset(source.path)
    n = 0
    total = np.zeros(len(source.bands), dtype=np.float64)
    squares = np.zeros(len(source.bands), dtype=np.float64)
    zeros = 0
    progress = ensure_progress(progress)
    row = None
    region = (0, 0, source.width, source.height)
    if mask_path:
        region = inside_region(mask_path, source.geotransform, source.crs_wkt, *region[2:]) or region
    rx, ry, rw, rh = region
    windows = [(rx + x, ry + y, w, h) for x, y, w, h in sampled_windows(rw, rh, max_pixels, side=side)]
    for x, y, w, h in windows:
        progress.check()
        if y != row:  # a new grid row reads other blocks: keep GDAL's cache from holding the last ones
            ds.FlushCache()
            row = y
        pixels, invalid = read_window(ds, source, x, y, w, h)
        if mask_path:
            invalid = invalid | outside_mask(mask_path, window_geotransform(source.geotransform, x, y),
                                             source.crs_wkt, w, h)
        valid = pixels[:, ~invalid] if invalid.any() else pixels.reshape(len(source.bands), -1)
        valid = valid.astype(np.float64)
        n += valid.shape[1]
        total += valid.sum(axis=1)
        squares += np.einsum("ij,ij->i", valid, valid)  # no (C, N) temporary: a fixed cost of every run
        zeros += int(np.count_nonzero(~valid.any(axis=0)))
    if n == 0 and mask_path:
        raise InputError(f"{source.path} has no valid pixel inside the mask {mask_path} where it was "
                         "sampled, so it cannot be standardised by its own statistics there: check that the "
                         "mask covers valid pixels of the raster.")
    if n == 0:
        raise InputError(f"{source.path} has no valid pixel in the bands {list(source.bands)}: every pixel "
                         "is nodata or masked, so it cannot be standardised by its own statistics.")
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    stats = BandStatistics(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), pixels=n,
                           whole=windows == [region], zero_fill=zeros / n)
    flat = [int(source.bands[i]) for i in stats.constant_bands()]
    if flat and not allow_constant:
        raise InputError(f"Band(s) {flat} of {source.path} are constant over their valid pixels; they cannot "
                         "be standardised by the raster's statistics. Use the model's normalisation or other "
                         "bands.")
    return stats


def declares_nodata(source: RasterSource) -> bool:
    """Whether the raster says which pixels are no data (a no-data value or a mask band)."""
    return source.uses_mask_band or any(v is not None for v in source.nodata)


def undeclared_fill_warning(source: RasterSource, stats: BandStatistics) -> Optional[str]:
    """A warning when many pixels are 0 in every band and the raster declares no nodata or mask:
    most likely a scene's fill border, which would be embedded as ground and pull the statistics.

    A thin border (a few pixels round a clipped or padded raster) is too small a share of any
    sample to show, yet every tile along the edge holds it: the raster's outermost pixels are
    checked too (:func:`edge_zero_share`)."""
    if declares_nodata(source):
        return None
    if stats.zero_fill >= UNDECLARED_FILL_SHARE:
        return (f"{stats.zero_fill:.0%} of the pixels sampled from {source.path} are 0 in every band, and it "
                "declares no nodata value: if 0 is fill (a scene's border), declare it (gdal_edit.py "
                "-a_nodata 0) and run again, or those tiles are embedded as ground and pull the "
                "standardisation.")
    edge = edge_zero_share(source)
    if edge < EDGE_FILL_SHARE:
        return None
    return (f"{edge:.0%} of the outermost pixels read along an edge of {source.path} are 0 in every band, "
            "and it declares no nodata value: if that is a fill border, declare it (gdal_edit.py "
            "-a_nodata 0) and run again, or the tiles along the raster's edge are embedded with it as "
            "ground.")


def edge_zero_share(source: RasterSource) -> float:
    """The largest share, over the raster's four edges, of the outermost pixels read that are 0 in
    every mapped band and not otherwise invalid (a border may pad only some edges).

    Each edge is read in :data:`EDGE_RUNS` runs of :data:`EDGE_RUN` pixels spread along it: each
    run decodes one stored block or strip, so the check costs a few blocks whatever the raster's
    size (reading a whole side column of a strip file would decode all of it)."""
    ds = open_dataset(source.path)
    w, h = source.width, source.height
    shares = []
    for horizontal, fixed in ((True, 0), (True, h - 1), (False, 0), (False, w - 1)):
        length = w if horizontal else h
        run = min(EDGE_RUN, length)
        starts = np.unique(((np.arange(EDGE_RUNS) + 0.5) * length / EDGE_RUNS - run / 2).clip(0, length - run)
                           .astype(np.int64))
        zero = total = 0
        for start in starts:
            x, y, width, height = (int(start), fixed, run, 1) if horizontal else (fixed, int(start), 1, run)
            pixels, invalid = read_window(ds, source, x, y, width, height)
            zero += int(np.count_nonzero(~pixels.any(axis=0) & ~invalid))
            total += run
        shares.append(zero / total)
    return max(shares)


def pooled_statistics(parts: Sequence[BandStatistics]) -> BandStatistics:
    """The statistics of several rasters' valid pixels together, as if read as one (each weighted by
    its pixel count): a model trained on many rasters is standardised by all of them."""
    if not parts:
        raise InputError("No band statistics to pool.")
    weights = np.asarray([p.pixels for p in parts], dtype=np.float64)[:, None]
    means = np.asarray([p.mean for p in parts], dtype=np.float64)
    squares = np.asarray([p.std for p in parts], dtype=np.float64) ** 2 + means**2
    total = weights.sum()
    mean = (weights * means).sum(axis=0) / total
    std = np.sqrt(np.maximum((weights * squares).sum(axis=0) / total - mean**2, 0.0))
    return BandStatistics(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
                          pixels=int(total), whole=all(p.whole for p in parts))
