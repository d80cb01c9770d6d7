"""Where tiles, masks and the scale check fall on the ground (found by an audit of geometric correctness):
a mask's pyramids, a rotated raster's points and Web Mercator's stretched metres each gave results that
looked right and were not."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal, osr

from srl_core.tile_points import _check_on_raster
from srl_core.tiles import embed_raster, embed_tiles_at_points
from srl_core.vector.crs import ground_pixel_size_m


def _raster(path, gt, epsg, width=64, height=64, bands=3, seed=0):
    rng = np.random.default_rng(seed)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, bands, gdal.GDT_UInt16)
    ds.SetGeoTransform(gt)
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for b in range(bands):
        ds.GetRasterBand(b + 1).WriteArray(rng.integers(7000, 12000, (height, width)))
    ds = None
    return str(path)


@pytest.mark.parametrize("pyramids", ["NEAREST", "AVERAGE"])
def test_a_mask_with_pyramids_keeps_the_tiles_its_own_pixels_say(tmp_path, pyramids):
    """The mask was resampled from its overviews (QGIS offers to build them): 48 of 768 tiles of a checker
    mask on the raster's own grid were kept or dropped by another mask. A tile is kept where the mask's
    pixel under its centre is not 0, with or without pyramids."""
    gt = (500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0)
    raster = _raster(tmp_path / "in.tif", gt, 32617, 544, 408)
    yy, xx = np.mgrid[0:408, 0:544]
    checker = (((xx + 3) // 9 + (yy + 2) // 6) % 2 == 0).astype(np.uint8)
    mask = tmp_path / "mask.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(mask), 544, 408, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(gt)
    ds.SetProjection(gdal.Open(raster).GetProjection())
    ds.GetRasterBand(1).WriteArray(checker)
    ds = None
    ds = gdal.Open(str(mask), 0)
    ds.BuildOverviews(pyramids, [2, 4, 8, 16])
    ds = None
    out = tmp_path / "out.tif"
    embed_raster(raster, out, "bandstats", tile_size=17, device="cpu", mask_path=str(mask))
    written = gdal.Open(str(out))  # held: a band outlives no dataset
    kept = np.isfinite(written.GetRasterBand(1).ReadAsArray())
    centres = np.arange(kept.shape[1]) * 17 + 8, np.arange(kept.shape[0]) * 17 + 8
    expected = checker[np.ix_(centres[1], centres[0])] != 0
    assert (kept == expected).all() and expected.sum() == 384


def test_points_on_a_raster_turned_45_degrees_are_on_it():
    """The check built the raster's box from two corners, which has no height for a square raster turned
    45 degrees: every point was refused as off the raster, though the engine embeds them."""
    s = 10 / np.sqrt(2)
    gt = (500000.0, s, s, 4000000.0, s, -s)
    centre = [gt[0] + 32 * gt[1] + 16 * gt[2], gt[3] + 32 * gt[4] + 16 * gt[5]]  # inside, in the north half
    _check_on_raster(np.array([centre]), gt, 64, 64, ("p", "r", "check"))
    outside = [gt[0] - 100.0, gt[3] + 100.0]
    with pytest.raises(Exception, match="None of the 1 points"):
        _check_on_raster(np.array([outside]), gt, 64, 64, ("p", "r", "check"))


def test_the_scale_check_measures_pixels_on_the_ground(tmp_path):
    """In Web Mercator one CRS metre is 0.5 m of ground at 60 N: 60-unit pixels (30 m, the model's own)
    were warned of as 60 m, and 30-unit ones (15 m, half the model's scale) passed."""
    mercator, lonlat = osr.SpatialReference(), osr.SpatialReference()
    mercator.ImportFromEPSG(3857)
    lonlat.ImportFromEPSG(4326)
    lonlat.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    x0, y0 = osr.CoordinateTransformation(lonlat, mercator).TransformPoint(10.0, 60.0)[:2]
    said = {}
    for units in (60.0, 30.0):
        path = _raster(tmp_path / f"m{units:g}.tif", (x0, units, 0.0, y0, 0.0, -units), 3857)
        ds = gdal.Open(path)
        ground = ground_pixel_size_m(ds.GetGeoTransform(), ds.GetProjection(), 64, 64)
        assert ground == pytest.approx(units / 2, rel=0.01)
        said[units] = []
        embed_tiles_at_points(path, np.array([[x0 + 32 * units, y0 - 32 * units]]), "tile2vec-l8-rgb-compact",
                              device="cpu", on_warning=said[units].append)
    assert not any("pixels are" in w for w in said[60.0])
    assert any("The raster's pixels are 15.0 m, the model was trained on 30.0 m" in w and "gdalwarp -tr 60.0"
               in w for w in said[30.0])
