"""Tile2Vec triplets: an anchor tile, a neighbour near it, and a distant tile far from it.

The premise of Tile2Vec (Jean et al., AAAI 2019) is Tobler's first law: tiles close on the
ground look alike, tiles far apart usually do not. So the neighbour's centre lies within
``neighbour_radius`` pixels of the anchor's centre, and the distant tile's centre lies at
least ``distant_min_distance`` pixels away on the same raster, or anywhere on another
raster (with probability ``other_raster_probability`` when there are several).
Tiles with more than ``max_nodata_fraction`` nodata are never used, so the encoder does not
learn scene edges and gaps.

Where tiles fit is mapped once, before training (:func:`map_positions`): a raster whose valid
area (its data, or the mask) is a small share of it would otherwise make tiles drawn anywhere
fail again and again, and end a long run at a random step. Anchors and distant tiles are drawn
from the positions that fit, so a raster with room for a tile never fails mid-run, and a raster
with none is refused before training. Rasters are drawn in proportion to their whole area, as
before positions were mapped: the shipped multi-raster recipes were measured with that mix (a
mosaic's ocean counts, its tiles come from land), and it is part of what their commands train.

Every draw uses the ``numpy.random.Generator`` passed in, so a batch is a pure function of
that generator's state: the trainer seeds one per step, which makes runs reproducible and
resumable without saving sampler state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import shapely

from srl_core.errors import InputError
from srl_core.raster.reader import Normaliser, invalid_fractions

from .rasters import TrainingRaster

MAX_TRIES = 50  # random proposals of a neighbour or a distant tile before the exact search among the map
MAX_POSITIONS = 1 << 18  # top-left positions mapped per raster (one bool each), whatever the raster's size
STRIP_PIXELS = 1 << 22  # pixels read at a time while mapping (16 MB a band as float32)
DISTANCE_CHECK_ANCHORS = 512  # tiles whose farthest tile is measured before training
MIN_FAR_SHARE = 0.9  # of them that must have a tile at least the distant minimum away


@dataclass(frozen=True)
class TripletBatch:
    """``tiles``: (N, 3, bands, size, size) float32 with NaN nodata (anchor, neighbour, distant).

    ``raster``, ``col`` and ``row``: (N, 3) int arrays; the raster index and top-left pixel of each tile.
    """

    tiles: np.ndarray
    raster: np.ndarray
    col: np.ndarray
    row: np.ndarray


@dataclass(frozen=True)
class TilePositions:
    """Where a tile fits in one raster: top-left positions every ``step`` px (every pixel unless the raster
    is very large), ``fits[i, j]`` True where the tile at (col j * step, row i * step) passes the nodata rule;
    ``valid``: the flat indices of those, so that drawing one costs no search.
    """

    step: int
    fits: np.ndarray  # (lattice rows, lattice cols) bool
    valid: np.ndarray  # flat indices into ``fits`` where it is True

    @classmethod
    def from_map(cls, step: int, fits: np.ndarray) -> TilePositions:
        return cls(step, fits, np.flatnonzero(fits.ravel()))

    @property
    def count(self) -> int:
        return len(self.valid)

    def fits_at(self, col: int, row: int) -> Optional[bool]:
        """Whether the tile at (col, row) fits, or None off the lattice (unknown until read)."""
        if col % self.step or row % self.step:
            return None
        return bool(self.fits[row // self.step, col // self.step])

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """A position that fits, uniformly among them."""
        row, col = divmod(int(self.valid[rng.integers(self.count)]), self.fits.shape[1])
        return col * self.step, row * self.step

    def near(self, col: int, row: int, radius: float) -> np.ndarray:
        """(K, 2) (col, row) of the positions that fit within ``radius`` px of (col, row)."""
        s = self.step
        top, left = max(0, math.ceil((row - radius) / s)), max(0, math.ceil((col - radius) / s))
        window = self.fits[top:int((row + radius) // s) + 1, left:int((col + radius) // s) + 1]
        rows, cols = np.nonzero(window)
        found = np.stack([(cols + left) * s, (rows + top) * s], axis=1)
        return found[(found[:, 0] - col) ** 2 + (found[:, 1] - row) ** 2 <= radius ** 2]

    def all(self) -> np.ndarray:
        """(K, 2) (col, row) of every position that fits."""
        rows, cols = np.divmod(self.valid, self.fits.shape[1])
        return np.stack([cols * self.step, rows * self.step], axis=1)


def map_positions(raster: TrainingRaster, tile_size: int, max_nodata_fraction: float) -> TilePositions:
    """Where a ``tile_size`` tile with at most ``max_nodata_fraction`` nodata fits in ``raster``.

    Every top-left position is mapped when there are at most :data:`MAX_POSITIONS`, else a lattice of
    them; the raster is read once, in strips of about :data:`STRIP_PIXELS`, so memory stays bounded
    whatever its size. The rule is the one a tile is judged by (the same reader, the same fraction).
    """
    span_cols, span_rows = raster.width - tile_size + 1, raster.height - tile_size + 1
    step = max(1, math.ceil(math.sqrt(span_cols * span_rows / MAX_POSITIONS)))
    cols, rows = -(-span_cols // step), -(-span_rows // step)
    fits = np.zeros((rows, cols), bool)
    per_strip = max(1, (STRIP_PIXELS // raster.width - tile_size) // step + 1)  # lattice rows per strip
    xs = np.arange(cols) * step
    for first in range(0, rows, per_strip):
        last = min(rows, first + per_strip)
        invalid = raster.invalid(first * step, (last - 1 - first) * step + tile_size)
        ys = np.arange(last - first) * step
        yy, xx = np.repeat(ys, cols), np.tile(xs, last - first)
        fractions = invalid_fractions(invalid, yy, xx, tile_size)
        fits[first:last] = (fractions <= max_nodata_fraction).reshape(last - first, cols)
    return TilePositions.from_map(step, fits)


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
        if not 1 <= neighbour_radius < float("inf"):  # also refuses NaN
            raise InputError(f"The neighbour radius must be a number of pixels, at least 1, got "
                             f"{neighbour_radius}.")
        if distant_min_distance is not None and not 0 <= distant_min_distance < float("inf"):
            raise InputError("The distance of distant tiles must be a number of pixels, at least 0, got "
                             f"{distant_min_distance}.")
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
        self.positions = [map_positions(r, self.tile_size, self.max_nodata_fraction) for r in self.rasters]
        self._refuse_rasters_without_room()
        self._refuse_rasters_without_distance()
        areas = np.array([(r.width - self.tile_size + 1) * (r.height - self.tile_size + 1)
                          for r in self.rasters], float)
        self._weights = areas / areas.sum()

    def _refuse_rasters_without_room(self) -> None:
        """Before training, not at a random step of it: every raster must hold at least one tile that fits."""
        full = [r.spec for r, p in zip(self.rasters, self.positions) if p.count == 0]
        if full:
            raise InputError(
                f"No {self.tile_size} px tile with at most {self.max_nodata_fraction:.0%} nodata fits in "
                f"{', '.join(full)}: the raster is too small or mostly nodata (or outside the mask) for "
                "these settings (try a smaller tile size, leave the raster out, or check its nodata value "
                "and the mask)."
            )

    def _refuse_rasters_without_distance(self) -> None:
        """Before training: in every raster most anchors must have a tile that fits at least the distant
        minimum away. Otherwise :meth:`_far` falls back to the farthest tile, and on a raster little
        wider than a tile to the anchor itself: a 17 px raster trained on triplets of one tile thrice, a
        40 px one with 98.5 % of its 'distant' tiles nearer than the minimum, silently."""
        rng = np.random.default_rng(0)
        for raster, positions in zip(self.rasters, self.positions):
            found = positions.all()
            hull = shapely.MultiPoint(found.astype(float)).convex_hull  # the farthest tile lies on it
            corners = shapely.get_coordinates(hull)
            anchors = found[rng.choice(len(found), min(len(found), DISTANCE_CHECK_ANCHORS), replace=False)]
            farthest = np.sqrt(((anchors[:, None, :] - corners[None]) ** 2).sum(axis=-1)).max(axis=1)
            share = float((farthest >= self.distant_min_distance).mean())
            if share < MIN_FAR_SHARE:
                raise InputError(
                    f"In {raster.spec}, {1 - share:.0%} of the tiles have no tile at least "
                    f"{self.distant_min_distance:g} px away (the distant tile's minimum distance; by default "
                    "4 times the neighbour radius): the raster, or its valid area, is too small for these "
                    "settings. Use a smaller neighbour radius or tile size, or a larger raster."
                )

    # -- single tiles -------------------------------------------------------------------------
    def _accept(self, tile: np.ndarray) -> bool:
        invalid = np.isnan(tile).any(axis=0).mean()
        return invalid <= self.max_nodata_fraction

    def _read(self, index: int, col: int, row: int) -> np.ndarray:
        return self.rasters[index].read(col, row, self.tile_size)

    def _propose(self, index: int, rng: np.random.Generator) -> tuple[tuple[int, int], tuple[int, int]]:
        """A mapped position that fits, and a position drawn in its lattice cell (the same one where the map
        holds every position): tiles come from anywhere in the valid area, not from the lattice only."""
        positions, raster = self.positions[index], self.rasters[index]
        col, row = positions.draw(rng)
        if positions.step == 1:
            return (col, row), (col, row)
        moved = (min(col + int(rng.integers(positions.step)), raster.width - self.tile_size),
                 min(row + int(rng.integers(positions.step)), raster.height - self.tile_size))
        return (col, row), moved

    def _take(self, index: int, mapped: tuple[int, int],
              moved: tuple[int, int]) -> tuple[int, int, np.ndarray]:
        """The tile at ``moved`` if it fits, else the one at ``mapped`` (which fits: the map says so)."""
        if moved != mapped:
            tile = self._read(index, *moved)
            if self._accept(tile):
                return moved[0], moved[1], tile
        return mapped[0], mapped[1], self._read(index, *mapped)

    def _anywhere(self, index: int, rng: np.random.Generator) -> tuple[int, int, np.ndarray]:
        return self._take(index, *self._propose(index, rng))

    def _near(self, index: int, rng: np.random.Generator, col: int, row: int,
              anchor: np.ndarray) -> tuple[int, int, np.ndarray]:
        """A tile centred within the radius of (col, row): proposed uniformly in the disc, else one of the
        mapped positions within it, else the anchor itself (a valid area no wider than a tile)."""
        raster, positions, radius = self.rasters[index], self.positions[index], self.neighbour_radius
        for _ in range(MAX_TRIES):
            r = radius * math.sqrt(rng.random())  # area-uniform in the disc: sqrt of a uniform radius
            angle = rng.random() * 2 * math.pi
            c, w = col + int(round(r * math.cos(angle))), row + int(round(r * math.sin(angle)))
            inside = 0 <= c <= raster.width - self.tile_size and 0 <= w <= raster.height - self.tile_size
            within = (c - col) ** 2 + (w - row) ** 2 <= radius ** 2
            if not (inside and within) or positions.fits_at(c, w) is False:
                continue
            tile = self._read(index, c, w)
            if self._accept(tile):
                return c, w, tile
        found = positions.near(col, row, radius)
        if len(found):
            c, w = (int(v) for v in found[rng.integers(len(found))])
            return c, w, self._read(index, c, w)
        return col, row, anchor.copy()

    def _far(self, index: int, rng: np.random.Generator, col: int, row: int) -> tuple[int, int, np.ndarray]:
        """A tile at least the minimum distance from (col, row): proposed among the mapped positions, else
        chosen among those far enough, else the farthest (a valid area narrower than that distance)."""
        minimum = self.distant_min_distance ** 2
        for _ in range(MAX_TRIES):
            mapped, moved = self._propose(index, rng)
            if all((c - col) ** 2 + (w - row) ** 2 >= minimum for c, w in (mapped, moved)):
                return self._take(index, mapped, moved)
        found = self.positions[index].all()
        distance = (found[:, 0] - col) ** 2 + (found[:, 1] - row) ** 2
        far = np.flatnonzero(distance >= minimum)
        pick = int(far[rng.integers(len(far))]) if len(far) else int(np.argmax(distance))
        c, w = (int(v) for v in found[pick])
        return c, w, self._read(index, c, w)

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
            ca, ra, tiles[i, 0] = self._anywhere(a, rng)
            cn, rn, tiles[i, 1] = self._near(a, rng, ca, ra, tiles[i, 0])
            if rng.random() < self.other_raster_probability:
                others = [j for j in range(len(self.rasters)) if j != a]
                d = int(others[rng.integers(len(others))])
                cd, rd, tiles[i, 2] = self._anywhere(d, rng)
            else:
                d = a
                cd, rd, tiles[i, 2] = self._far(a, rng, ca, ra)
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
