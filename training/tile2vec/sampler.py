"""Tile2Vec triplets: an anchor tile, a neighbour near it, and a distant tile far from it.

The premise of Tile2Vec (Jean et al., AAAI 2019) is Tobler's first law: tiles close on the
ground look alike, tiles far apart usually do not. So the neighbour's centre lies within
``neighbour_radius`` pixels of the anchor's centre, and the distant tile's centre lies at
least ``distant_min_distance`` pixels away on the same raster, or anywhere on another
raster (with probability ``other_raster_probability`` when there are several).
Tiles with more than ``max_nodata_fraction`` nodata are rejected and drawn again, so the
encoder does not learn scene edges and gaps.

Every draw uses the ``numpy.random.Generator`` passed in, so a batch is a pure function of
that generator's state: the trainer seeds one per step, which makes runs reproducible and
resumable without saving sampler state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from srl_core.errors import InputError
from srl_core.raster.reader import Normaliser

from .rasters import TrainingRaster

MAX_TRIES = 200  # draws per tile before concluding the raster has too little valid data


@dataclass(frozen=True)
class TripletBatch:
    """``tiles``: (N, 3, bands, size, size) float32 with NaN nodata (anchor, neighbour, distant).

    ``raster``, ``col`` and ``row``: (N, 3) int arrays; the raster index and top-left pixel of each tile.
    """

    tiles: np.ndarray
    raster: np.ndarray
    col: np.ndarray
    row: np.ndarray


class TripletSampler:
    """Draws Tile2Vec triplets from one or many rasters with the same bands."""

    def __init__(
        self,
        rasters: Sequence[TrainingRaster],
        tile_size: int,
        neighbour_radius: float,
        distant_min_distance: Optional[float] = None,
        max_nodata_fraction: float = 0.1,
        other_raster_probability: float = 0.5,
    ) -> None:
        if not rasters:
            raise InputError("The triplet sampler needs at least one raster.")
        if tile_size < 2:
            raise InputError(f"Tile size must be at least 2 px, got {tile_size}.")
        if neighbour_radius < 1:
            raise InputError(f"The neighbour radius must be at least 1 px, got {neighbour_radius}.")
        if not 0.0 <= max_nodata_fraction < 1.0:
            raise InputError(f"max_nodata_fraction must be in [0, 1), got {max_nodata_fraction}.")
        small = [r.spec for r in rasters if min(r.width, r.height) < tile_size]
        if small:
            raise InputError(f"Raster(s) smaller than one {tile_size} px tile: {', '.join(small)}.")
        self.rasters = list(rasters)
        self.tile_size = int(tile_size)
        self.neighbour_radius = float(neighbour_radius)
        self.distant_min_distance = float(
            distant_min_distance if distant_min_distance is not None else 4 * neighbour_radius
        )
        if self.distant_min_distance <= self.neighbour_radius:
            raise InputError("The distant tile's minimum distance must exceed the neighbour radius.")
        self.max_nodata_fraction = float(max_nodata_fraction)
        self.other_raster_probability = float(other_raster_probability) if len(rasters) > 1 else 0.0
        areas = np.array([(r.width - tile_size + 1) * (r.height - tile_size + 1) for r in rasters], float)
        self._weights = areas / areas.sum()

    # -- single tiles -------------------------------------------------------------------------
    def _accept(self, tile: np.ndarray) -> bool:
        invalid = np.isnan(tile).any(axis=0).mean()
        return invalid <= self.max_nodata_fraction

    def _draw(self, index: int, propose) -> tuple[int, int, np.ndarray]:
        raster = self.rasters[index]
        for _ in range(MAX_TRIES):
            position = propose(raster)
            if position is None:
                continue
            col, row = position
            tile = raster.read(col, row, self.tile_size)
            if self._accept(tile):
                return col, row, tile
        raise InputError(
            f"Could not find a {self.tile_size} px tile with at most {self.max_nodata_fraction:.0%} nodata "
            f"in {raster.spec} after {MAX_TRIES} tries: the raster is too small or mostly nodata for these "
            "settings (try a smaller tile size or neighbour radius, or check its nodata value)."
        )

    def _uniform(self, rng: np.random.Generator):
        def propose(raster: TrainingRaster) -> tuple[int, int]:
            return (int(rng.integers(0, raster.width - self.tile_size + 1)),
                    int(rng.integers(0, raster.height - self.tile_size + 1)))
        return propose

    def _near(self, rng: np.random.Generator, col: int, row: int):
        radius = self.neighbour_radius

        def propose(raster: TrainingRaster) -> Optional[tuple[int, int]]:
            # uniform in the disc of the radius (area-uniform: sqrt of a uniform radius)
            r = radius * math.sqrt(rng.random())
            angle = rng.random() * 2 * math.pi
            c, w = col + int(round(r * math.cos(angle))), row + int(round(r * math.sin(angle)))
            if (c - col) ** 2 + (w - row) ** 2 > radius**2:
                return None
            if not (0 <= c <= raster.width - self.tile_size and 0 <= w <= raster.height - self.tile_size):
                return None
            return c, w
        return propose

    def _far(self, rng: np.random.Generator, col: int, row: int):
        uniform = self._uniform(rng)
        minimum = self.distant_min_distance

        def propose(raster: TrainingRaster) -> Optional[tuple[int, int]]:
            c, w = uniform(raster)
            return (c, w) if (c - col) ** 2 + (w - row) ** 2 >= minimum**2 else None
        return propose

    # -- triplets -----------------------------------------------------------------------------
    def sample(self, count: int, rng: np.random.Generator) -> TripletBatch:
        """Draw ``count`` triplets (anchor, neighbour, distant)."""
        size, bands = self.tile_size, self.rasters[0].band_count
        tiles = np.empty((count, 3, bands, size, size), np.float32)
        raster_ids = np.empty((count, 3), np.int64)
        cols = np.empty((count, 3), np.int64)
        rows = np.empty((count, 3), np.int64)
        for i in range(count):
            a = int(rng.choice(len(self.rasters), p=self._weights))
            ca, ra, tiles[i, 0] = self._draw(a, self._uniform(rng))
            cn, rn, tiles[i, 1] = self._draw(a, self._near(rng, ca, ra))
            if rng.random() < self.other_raster_probability:
                others = [j for j in range(len(self.rasters)) if j != a]
                d = int(others[rng.integers(len(others))])
                cd, rd, tiles[i, 2] = self._draw(d, self._uniform(rng))
            else:
                d = a
                cd, rd, tiles[i, 2] = self._draw(a, self._far(rng, ca, ra))
            raster_ids[i] = (a, a, d)
            cols[i] = (ca, cn, cd)
            rows[i] = (ra, rn, rd)
        return TripletBatch(tiles=tiles, raster=raster_ids, col=cols, row=rows)


def augment(tiles: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply one of the 8 flips/rotations (the dihedral group) to each tile independently.

    ``tiles``: (..., bands, size, size). Ground has no up: a field is a field whichever way it
    is turned, so the encoder should not care, and it sees 8x more distinct tiles.
    """
    flat = tiles.reshape(-1, *tiles.shape[-3:])
    out = np.empty_like(flat)
    turns = rng.integers(0, 4, size=len(flat))
    flips = rng.random(len(flat)) < 0.5
    for i, tile in enumerate(flat):
        t = np.rot90(tile, int(turns[i]), axes=(1, 2))
        out[i] = t[:, :, ::-1] if flips[i] else t
    return out.reshape(tiles.shape)


def radiometric_jitter(tiles: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Each tile's each band times ``exp(N(0, strength))`` plus ``N(0, strength)``, on standardised tiles.

    The same ground seen by another sensor, in another season or light differs by about such a
    gain and offset per band; a network trained through them keeps what survives (texture,
    layout) and leaves the spectra to the band statistics appended with ``spectral_stats``.
    """
    shape = (*tiles.shape[:-2], 1, 1)
    gain = np.exp(rng.normal(0.0, strength, size=shape)).astype(np.float32)
    offset = rng.normal(0.0, strength, size=shape).astype(np.float32)
    return tiles * gain + offset


def normalise(tiles: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std per band; a pixel with nodata in any band becomes 0 (the band means) in all.

    srl_core's own :class:`~srl_core.raster.reader.Normaliser` does it, the one its tile
    engines apply, so training sees the input inference gives.
    """
    bands, size = tiles.shape[-3], tiles.shape[-1]
    planes = np.moveaxis(tiles.reshape(-1, bands, size, size), 1, 0).reshape(bands, -1, size)
    planes = planes.astype(np.float32, copy=True)
    invalid = np.isnan(planes).any(axis=0)
    Normaliser(mean, std)(planes, invalid)
    out = np.moveaxis(planes.reshape(bands, -1, size, size), 0, 1)
    return np.ascontiguousarray(out).reshape(tiles.shape)
