"""Rasters as other software writes them, each read as what it holds or refused naming what to do
(found by an audit of the tile engine and of training on unusual inputs).

- ArcGIS's float64 no-data (-DBL_MAX), beyond float32: every pixel was taken for no-data;
- signed bytes (GDAL 3.6's PIXELTYPE=SIGNEDBYTE) were read as unsigned, their -128 fill embedded;
- complex pixels (radar SLC) were embedded from their real part alone;
- a colour table's codes were embedded as measurements without a word;
- a raster placed by ground control points only was said to have "no georeferencing".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from srl_core.errors import InputError
from srl_core.tiles import embed_raster
from training.tile2vec import open_training_rasters

CROP = Path(__file__).resolve().parent / "data" / "nc_landsat_crop.tif"  # Float32, no-data -99999
CROP_NODATA = -99999.0
DBL_MAX = float(np.finfo(np.float64).max)


def _copy(path: Path, data_type: int, nodata: float, options: tuple = ()) -> Path:
    """The crop as ``data_type``, its fill written as ``nodata`` and declared so."""
    src = gdal.Open(str(CROP))
    pixels = src.ReadAsArray().astype(np.float64)
    pixels[pixels == CROP_NODATA] = nodata
    ds = gdal.GetDriverByName("GTiff").Create(str(path), src.RasterXSize, src.RasterYSize, src.RasterCount,
                                              data_type, list(options))
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for i in range(src.RasterCount):
        ds.GetRasterBand(i + 1).SetNoDataValue(nodata)
        ds.GetRasterBand(i + 1).WriteArray(pixels[i])
    ds = None
    return path


def _embedded(path: Path, out: Path) -> np.ndarray:
    embed_raster(str(path), str(out), "bandstats", tile_size=16, device="cpu")
    return gdal.Open(str(out)).ReadAsArray()


@pytest.mark.parametrize("data_type, nodata", [(gdal.GDT_Float64, -DBL_MAX), (gdal.GDT_Float32, -np.inf)])
def test_a_no_data_value_beyond_float32_is_read_as_declared(tmp_path, data_type, nodata):
    """Read as float32 such a fill is -inf; the tolerance for huge values (inf then) took every pixel
    for no-data: 'every pixel is nodata' from the engine and from training alike."""
    reference = _embedded(CROP, tmp_path / "ref.tif")
    extreme = _copy(tmp_path / "extreme.tif", data_type, nodata)
    np.testing.assert_allclose(_embedded(extreme, tmp_path / "e.tif"), reference, rtol=1e-6)
    (training,) = open_training_rasters([str(extreme)])
    assert training.source.nodata[0] == nodata


def test_signed_bytes_are_refused_naming_the_conversion(tmp_path):
    signed = _copy(tmp_path / "signed.tif", gdal.GDT_Byte, 0, ("PIXELTYPE=SIGNEDBYTE",))
    if gdal.Open(str(signed)).GetRasterBand(1).DataType != gdal.GDT_Byte:
        pytest.skip("this GDAL writes signed bytes as Int8, read as they are")
    with pytest.raises(InputError, match=r"signed bytes.*gdal_translate -ot Int16"):
        embed_raster(str(signed), str(tmp_path / "s_out.tif"), "bandstats", tile_size=16, device="cpu")
    assert not (tmp_path / "s_out.tif").exists()


def test_complex_pixels_are_refused_naming_the_amplitude(tmp_path):
    complex_raster = _copy(tmp_path / "slc.tif", gdal.GDT_CFloat32, CROP_NODATA)
    for run in (lambda: embed_raster(str(complex_raster), str(tmp_path / "c_out.tif"), "bandstats",
                                     tile_size=16, device="cpu"),
                lambda: open_training_rasters([str(complex_raster)])):
        with pytest.raises(InputError, match=r"complex numbers \(CFloat32\).*amplitude"):
            run()
    assert not (tmp_path / "c_out.tif").exists()


def test_a_colour_table_is_said(tmp_path):
    classes = tmp_path / "landcover.tif"
    src = gdal.Open(str(CROP))
    ds = gdal.GetDriverByName("GTiff").Create(str(classes), 128, 128, 1, gdal.GDT_Byte)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    ds.GetRasterBand(1).WriteArray((np.arange(128 * 128).reshape(128, 128) // 1000 % 7).astype(np.uint8))
    table = gdal.ColorTable()
    for code in range(7):
        table.SetColorEntry(code, (30 * code, 255 - 30 * code, 100, 255))
    ds.GetRasterBand(1).SetRasterColorTable(table)
    ds = None
    run = embed_raster(str(classes), str(tmp_path / "lc.tif"), "bandstats", tile_size=16, device="cpu")
    assert any("has a colour table" in w and "gdal_translate -expand rgb" in w for w in run.warnings)


def test_ground_control_points_only_are_named(tmp_path):
    placed = tmp_path / "gcps.tif"
    gdal.Translate(str(placed), str(CROP), GCPs=[gdal.GCP(500000 + 28.5 * x, 4000000 - 28.5 * y, 0, x, y)
                                                 for x, y in ((0, 0), (128, 0), (0, 128), (128, 128))],
                   outputSRS="EPSG:32617")
    assert gdal.Open(str(placed)).GetGeoTransform(can_return_null=True) is None
    with pytest.raises(InputError, match=r"4 ground control points only.*gdalwarp"):
        embed_raster(str(placed), str(tmp_path / "g_out.tif"), "bandstats", tile_size=16, device="cpu")
