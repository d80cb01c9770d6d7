"""Where to sample: area-uniform points on the sphere, optionally restricted to land.

Uniform in longitude and in sin(latitude) is uniform in area; sampling uniform latitude
instead would crowd the poles (a 1-degree band at 89N has 1/57 the area of one at the equator).
Land comes from ``global-land-mask`` (GLOBE 1 km, 1/120 degree), read from its packaged array
so the package itself (and its import-time 1 GB load) is not needed.
"""

from __future__ import annotations

import numpy as np

from srl_core.errors import InputError

from ..datasets.packages import DATA_PACKAGES, find_file

LAND_MASK_PACKAGE = "global-land-mask"
LAND_MASK_FILE = "global_land_mask/globe_combined_mask_compressed.npz"


def sample_area_uniform(
    n: int, rng: np.random.Generator, lat_min: float = -90.0, lat_max: float = 90.0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform in area between two latitudes: (lon, lat) float64 degrees."""
    if not -90.0 <= lat_min < lat_max <= 90.0:
        raise InputError(f"Latitude bounds need -90 <= lat_min < lat_max <= 90 (got {lat_min}, {lat_max}).")
    lon = rng.uniform(-180.0, 180.0, n)
    z = rng.uniform(np.sin(np.radians(lat_min)), np.sin(np.radians(lat_max)), n)
    lat = np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))
    return lon, lat


LAND_MASK_NAME = "land mask"  # its entry in a card's training data: where points were drawn, not imagery


class LandMask:
    """Land/sea lookup on a plate-carrée boolean grid (row 0 at 90N, column 0 at 180W).

    The grid is stored bit-packed along longitude, so the 1 km global mask costs 117 MB.
    """

    def __init__(self, is_land: np.ndarray, source: str = "in-memory array") -> None:
        if is_land.ndim != 2 or is_land.shape[1] != 2 * is_land.shape[0]:
            raise InputError(f"A global land mask must be an (H, 2H) grid, got shape {is_land.shape}.")
        self.height, self.width = is_land.shape
        self.source = source
        self._bits = np.packbits(is_land.astype(bool), axis=1)

    @classmethod
    def from_package(cls) -> LandMask:
        """The GLOBE-based mask shipped in ``global-land-mask`` (True there means ocean)."""
        with np.load(find_file(LAND_MASK_PACKAGE, LAND_MASK_FILE)) as data:
            ocean = data["mask"]
        version, licence = DATA_PACKAGES[LAND_MASK_PACKAGE]
        source = f"{LAND_MASK_PACKAGE}=={version} {LAND_MASK_FILE} (GLOBE 1 km land mask; {licence})"
        return cls(~ocean, source)

    def describe(self) -> dict[str, str]:
        """Provenance, for a model card."""
        return {"name": LAND_MASK_NAME, "source": self.source, "grid": f"{self.width}x{self.height}"}

    def is_land(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Boolean array: is each (lon, lat) on land? Cells are indexed from their north-west corner."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        row = np.clip(((90.0 - lat) * self.height / 180.0).astype(np.int64), 0, self.height - 1)
        col = np.clip(((lon + 180.0) * self.width / 360.0).astype(np.int64), 0, self.width - 1)
        byte = self._bits[row, col >> 3]
        return ((byte >> (7 - (col & 7))) & 1).astype(bool)


def check_ocean_fraction(ocean_fraction: float) -> None:
    """Refuse a share of points at sea outside [0, 1) (also NaN), where no land or no point is drawn."""
    if not 0.0 <= ocean_fraction < 1.0:
        raise InputError(f"ocean_fraction must be in [0, 1), got {ocean_fraction}.")


def sample_land(
    n: int,
    rng: np.random.Generator,
    land: LandMask,
    lat_min: float = -90.0,
    lat_max: float = 90.0,
    ocean_fraction: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` area-uniform points on land (plus ``ocean_fraction`` of them at sea), by rejection."""
    check_ocean_fraction(ocean_fraction)
    n_ocean = int(round(n * ocean_fraction))
    wanted = {True: n - n_ocean, False: n_ocean}
    kept: dict[bool, list[tuple[np.ndarray, np.ndarray]]] = {True: [], False: []}
    counts = {True: 0, False: 0}
    for _ in range(1000):
        if all(counts[k] >= wanted[k] for k in wanted):
            break
        lon, lat = sample_area_uniform(max(2 * n, 1024), rng, lat_min, lat_max)
        on_land = land.is_land(lon, lat)
        for key in (True, False):
            need = wanted[key] - counts[key]
            if need > 0:
                sel = np.flatnonzero(on_land == key)[:need]
                kept[key].append((lon[sel], lat[sel]))
                counts[key] += sel.size
    if any(counts[k] < wanted[k] for k in wanted):
        raise InputError(f"Could not find {n} land points between latitudes {lat_min} and {lat_max}.")
    parts = kept[True] + kept[False]
    lon = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    lat = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0)
    order = rng.permutation(lon.size)
    return lon[order], lat[order]
