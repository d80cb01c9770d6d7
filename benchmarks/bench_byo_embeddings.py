"""Memory and speed of the analyses on an AlphaEarth-style 8-bit embedding raster.

Writes 64-band signed 8-bit rasters (nodata -128, 512 px tiles, as the public COGs), of two
sizes and, for the larger one, also bottom-up (positive y pixel size), then runs the
similarity raster and the application of a k-means model on each through
``srl_core.analysis.api``. Peak memory (growth of VmHWM over the call, as in
bench_analysis.py) must not grow with the raster: windows are read, decoded and written one
at a time. Pixels/second are reported beside it.

Run:  nice -n 10 .venv/bin/python benchmarks/bench_byo_embeddings.py [--sizes 1024 3072]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_analysis import Measure  # noqa: E402

from srl_core.analysis import api  # noqa: E402
from srl_core.analysis.similarity import Query  # noqa: E402

BANDS = 64


def write_alphaearth(path: Path, size: int, bottom_up: bool, seed: int = 0) -> str:
    """A size x size, 64-band signed 8-bit raster in strips (the generator's memory stays small)."""
    gdal_type = getattr(gdal, "GDT_Int8", gdal.GDT_Byte)
    options = ["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "INTERLEAVE=PIXEL", "BIGTIFF=IF_SAFER"]
    if gdal_type == gdal.GDT_Byte:
        options.append("PIXELTYPE=SIGNEDBYTE")
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, BANDS, gdal_type, options)
    pixel = 10.0
    top = 4_000_000.0
    ds.SetGeoTransform([500_000.0, pixel, 0, top - size * pixel, 0, pixel] if bottom_up else
                       [500_000.0, pixel, 0, top, 0, -pixel])  # fmt: skip
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32631)
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(seed)
    centres = rng.integers(-127, 128, (4, BANDS)).astype(np.int16)
    for b in range(BANDS):
        ds.GetRasterBand(b + 1).SetNoDataValue(-128)
        ds.GetRasterBand(b + 1).SetDescription(f"A{b:02d}")
    for y in range(0, size, 512):
        rows = min(512, size - y)
        group = (np.arange(size)[None, :] * 4 // size).repeat(rows, axis=0)  # four vertical stripes
        noise = rng.integers(-20, 21, (BANDS, rows, size), dtype=np.int16)
        q = np.clip(centres[group].transpose(2, 0, 1) + noise, -127, 127).astype(np.int8)
        ds.WriteRaster(
            0, y, size, rows, q.view(np.uint8).tobytes() if gdal_type == gdal.GDT_Byte else q.tobytes()
        )
    ds = None
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 3072])
    parser.add_argument("--gdal-cache-mib", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="One 512 px raster (make benchmarks).")
    args = parser.parse_args()
    if args.quick:
        args.sizes = [512]
    gdal.SetCacheMax(args.gdal_cache_mib * 2**20)
    print(f"{'raster':>28} {'MiB on disk':>11} {'analysis':>12} {'s':>7} {'Mpx/s':>6} {'peak MiB':>9}")
    with tempfile.TemporaryDirectory() as folder:
        cases = [(s, False) for s in args.sizes] + [(max(args.sizes), True)]
        model = None
        for size, bottom_up in cases:
            name = f"{size}x{size}x64 int8" + (" bottom-up" if bottom_up else "")
            path = write_alphaearth(Path(folder) / f"aef_{size}_{bottom_up}.tif", size, bottom_up)
            mib = Path(path).stat().st_size / 2**20
            data = api.open_input(path)
            query = Query().add_pixels(data.source, [[500_000.0 + 15, 4_000_000.0 - 15]])
            if model is None:
                model = api.cluster(
                    data, str(Path(folder) / "fit.tif"), n_clusters=4, sample_size=20_000
                ).model
            for label in ("similarity", "apply k=4"):
                with Measure() as m:
                    if label == "similarity":
                        api.similarity(data, query, str(Path(folder) / "sim.tif"))
                    else:
                        api.apply_clusters(model, data, str(Path(folder) / "k.tif"))
                rate = size * size / m.seconds / 1e6
                print(f"{name:>28} {mib:11.0f} {label:>12} {m.seconds:7.1f} {rate:6.2f} {m.peak_mib:9.0f}")
            Path(path).unlink()


if __name__ == "__main__":
    main()
