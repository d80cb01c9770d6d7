"""Embedding algorithms through processing.run on the real Landsat crop, with a tiny model."""

from __future__ import annotations

import numpy as np
import processing
import pytest
from conftest import LANDSAT_CROP, TINY_TILE_MODEL_ID, half_polygon
from osgeo import gdal, ogr
from qgis.core import QgsProcessingException


def test_embed_raster_tiles(srl_provider, tiny_tile_model, tmp_path):
    out = tmp_path / "emb.tif"
    result = processing.run(
        "srl:embed_raster",
        {
            "INPUT": str(LANDSAT_CROP),
            "MODEL": tiny_tile_model,
            "TILE_SIZE": 16,
            "STRIDE": 16,
            "DEVICE": "cpu",
            "OUTPUT": str(out),
        },
    )
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (8, 8, 8)
    assert ds.GetMetadataItem("SRL_MODEL_ID") == TINY_TILE_MODEL_ID
    data = ds.ReadAsArray()
    # The crop's left nodata border makes the first tile column invalid, the rest is embedded.
    assert np.isnan(data[:, :, 0]).all() and np.isfinite(data[:, :, 1:]).all()
    assert result["TILES"] == 56


def test_the_mask_is_the_layer_chosen_not_the_files_first(srl_provider, tiny_tile_model, tmp_path):
    """MASK as the second layer of a GeoPackage: tiles inside that layer's polygon, not the first's
    (the first layer was taken, whichever the analyst chose)."""
    masks = half_polygon(LANDSAT_CROP, tmp_path / "masks.gpkg", "left", "west")
    half_polygon(LANDSAT_CROP, masks, "right", "east")
    out = tmp_path / "east.tif"
    processing.run("srl:embed_raster", {"INPUT": str(LANDSAT_CROP), "MODEL": tiny_tile_model, "TILE_SIZE": 16,
                                        "STRIDE": 16, "DEVICE": "cpu", "MASK": f"{masks}|layername=east",
                                        "OUTPUT": str(out)})
    data = gdal.Open(str(out)).ReadAsArray()
    assert np.isnan(data[:, :, :4]).all() and np.isfinite(data[:, :, 4:]).all()
    # both halves in one layer, filtered in QGIS to the right one: only the features shown are inside
    half_polygon(LANDSAT_CROP, masks, "left", "halves")
    half_polygon(LANDSAT_CROP, masks, "right", "halves")
    out = tmp_path / "filtered.tif"
    processing.run("srl:embed_raster", {"INPUT": str(LANDSAT_CROP), "MODEL": tiny_tile_model, "TILE_SIZE": 16,
                                        "STRIDE": 16, "DEVICE": "cpu", "OUTPUT": str(out),
                                        "MASK": f"{masks}|layername=halves|subset=\"side\" = 'right'"})
    data = gdal.Open(str(out)).ReadAsArray()
    assert np.isnan(data[:, :, :4]).all() and np.isfinite(data[:, :, 4:]).all()


def test_mixed_precision_on_the_cpu_is_refused_naming_the_parameter(srl_provider, tiny_tile_model, tmp_path):
    points = {"POINTS": str(_crop_points(tmp_path))}
    before = set(tmp_path.iterdir())
    for alg, extra, out in (("srl:embed_raster", {}, tmp_path / "emb.tif"),
                            ("srl:sample_tiles_at_points", points, tmp_path / "emb.gpkg")):
        with pytest.raises(QgsProcessingException, match="Precision 'mixed' needs a CUDA device"):
            processing.run(alg, {"INPUT": str(LANDSAT_CROP), "MODEL": tiny_tile_model, "TILE_SIZE": 16,
                                 "DEVICE": "cpu", "PRECISION": "mixed", "OUTPUT": str(out), **extra})
    assert set(tmp_path.iterdir()) == before


def test_embed_raster_extent_and_bands(srl_provider, tiny_tile_model, tmp_path):
    src = gdal.Open(str(LANDSAT_CROP))
    x0, px, _, y0, _, py = src.GetGeoTransform()
    extent = f"{x0 + 32 * px},{x0 + 96 * px},{y0 + 96 * py},{y0 + 32 * py} [EPSG:3358]"
    out = tmp_path / "part.tif"
    processing.run(
        "srl:embed_raster",
        {
            "INPUT": str(LANDSAT_CROP),
            "MODEL": tiny_tile_model,
            "BANDS": [5, 4, 3, 2, 1],
            "EXTENT": extent,
            "TILE_SIZE": 16,
            "OUTPUT": str(out),
        },
    )
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize) == (4, 4)


def test_wrong_bands_is_a_clear_error(srl_provider, tiny_tile_model, tmp_path):
    with pytest.raises(QgsProcessingException):
        processing.run(
            "srl:embed_raster",
            {
                "INPUT": str(LANDSAT_CROP),
                "MODEL": tiny_tile_model,
                "BANDS": [1, 2],
                "OUTPUT": str(tmp_path / "x.tif"),
            },
        )
    assert not (tmp_path / "x.tif").exists()
    # one value that is no number was read as band 0 ("Band(s) [0] do not exist"; an audit)
    with pytest.raises(QgsProcessingException, match="Bands must be comma-separated band numbers.*got 'a'"):
        processing.run("srl:embed_raster", {"INPUT": str(LANDSAT_CROP), "MODEL": tiny_tile_model,
                                            "BANDS": "a", "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()
    # QGIS's own form of a list of numbers is taken as before (a review of that change)
    processing.run("srl:embed_raster", {"INPUT": str(LANDSAT_CROP), "MODEL": "bandstats", "BANDS": "3;2;1",
                                        "OUTPUT": str(tmp_path / "y.tif")})
    assert gdal.Open(str(tmp_path / "y.tif")).GetMetadataItem("SRL_BANDS") == "3,2,1"


def _crop_points(tmp_path):
    """Four labelled points on the Landsat crop: two embeddable, one off its edge, one in its nodata."""
    src = gdal.Open(str(LANDSAT_CROP))
    x0, px, _, y0, _, py = src.GetGeoTransform()
    points = tmp_path / "pts.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(points))
    layer = ds.CreateLayer("pts", src.GetSpatialRef(), ogr.wkbPoint)
    layer.CreateField(ogr.FieldDefn("label", ogr.OFTInteger))
    for i, (col, row) in enumerate([(64, 64), (100, 30), (126, 126), (3, 50)]):
        f = ogr.Feature(layer.GetLayerDefn())
        f.SetField("label", i)
        f.SetGeometry(ogr.CreateGeometryFromWkt(f"POINT ({x0 + col * px} {y0 + row * py})"))
        layer.CreateFeature(f)
    ds = None
    return points


def test_sample_tiles_at_points(srl_provider, tiny_tile_model, tmp_path):
    points = _crop_points(tmp_path)
    out = tmp_path / "sampled.gpkg"
    result = processing.run(
        "srl:sample_tiles_at_points",
        {"INPUT": str(LANDSAT_CROP), "POINTS": str(points), "MODEL": tiny_tile_model, "OUTPUT": str(out)},
    )
    # (126, 126): the tile runs off the raster; (3, 50): in the nodata border.
    assert result["VALID"] == 2
    out_ds = ogr.Open(str(out))
    lyr = out_ds.GetLayer(0)
    rows = [(f.GetField("label"), f.GetField("emb_valid"), f.GetField("emb_007")) for f in lyr]
    assert [(r[0], r[1]) for r in rows] == [(0, 1), (1, 1), (2, 0), (3, 0)]
    assert rows[0][2] is not None and rows[2][2] is None
    assert lyr.GetMetadataItem("SRL_MODEL_ID") == TINY_TILE_MODEL_ID


def test_raster_normalisation_matches_a_rescaled_copy(srl_provider, tiny_tile_model, tmp_path):
    """'This raster's own statistics': a reflectance-like rescaled copy embeds like the 8-bit original."""
    src = gdal.Open(str(LANDSAT_CROP))
    scaled = tmp_path / "scaled.tif"
    copy = gdal.GetDriverByName("GTiff").CreateCopy(str(scaled), src)
    for b in range(1, copy.RasterCount + 1):  # float32 with nodata -99999, as the crop
        dn = src.GetRasterBand(b).ReadAsArray()
        copy.GetRasterBand(b).WriteArray(np.where(dn == -99999, dn, dn * 0.002 + 0.01))
    copy = None
    outputs = []
    for raster in (LANDSAT_CROP, scaled):
        out = tmp_path / f"emb-{len(outputs)}.tif"
        processing.run(
            "srl:embed_raster",
            {"INPUT": str(raster), "MODEL": tiny_tile_model, "NORMALISATION": 1, "OUTPUT": str(out)},
        )
        outputs.append(gdal.Open(str(out)).ReadAsArray())
    assert np.isfinite(outputs[0]).any()
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-3, atol=1e-3, equal_nan=True)


def test_a_raster_table_of_a_geopackage_is_the_one_embedded(srl_provider, tmp_path):
    """A raster layer that is one table of a GeoPackage (QGIS source ``GPKG:file:table``; also NetCDF
    variables, files in a zip) reached srl_core as the file alone, which GDAL refused as holding
    several rasters, though the analyst had chosen one."""
    from qgis.core import QgsProject, QgsRasterLayer

    from srl_core.tiles import embed_raster

    tables = str(tmp_path / "scenes.gpkg")
    crop = gdal.Translate("", str(LANDSAT_CROP), format="MEM", bandList=[1, 2, 3], outputType=gdal.GDT_Byte)
    gdal.Translate(tables, crop, format="GPKG", creationOptions=["RASTER_TABLE=first"])
    for i in range(1, 4):
        band = crop.GetRasterBand(i)
        band.WriteArray(band.ReadAsArray()[::-1])
    gdal.Translate(tables, crop, format="GPKG",
                   creationOptions=["RASTER_TABLE=second", "APPEND_SUBDATASET=YES"])
    layer = QgsRasterLayer(f"GPKG:{tables}:second", "second", "gdal")
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    try:
        out = processing.run("srl:embed_raster", {"INPUT": layer.id(), "MODEL": "bandstats", "TILE_SIZE": 16,
                                                  "OUTPUT": str(tmp_path / "second.tif")})["OUTPUT"]
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    embed_raster(f"GPKG:{tables}:second", tmp_path / "direct.tif", "bandstats", tile_size=16)
    embed_raster(f"GPKG:{tables}:first", tmp_path / "first.tif", "bandstats", tile_size=16)
    second = gdal.Open(out).ReadAsArray()
    np.testing.assert_array_equal(second, gdal.Open(str(tmp_path / "direct.tif")).ReadAsArray())
    assert not np.allclose(second, gdal.Open(str(tmp_path / "first.tif")).ReadAsArray(), equal_nan=True)
