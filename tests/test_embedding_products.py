"""Embeddings SRL did not make: published products decoded to known vectors, any multi-band
raster with "treat bands as embeddings", through the API and the command line.

The product rasters are generated here: known unit vectors quantised by each product's
documented rule, so the decoded vectors are checked against known answers.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from osgeo import gdal
from product_rasters import (
    ALPHAEARTH_NAMES,
    LANDSAT,
    ORIGIN_X,
    PIXEL,
    TOP_Y,
    H,
    W,
    alphaearth_int8,
    dequantise_alphaearth,
    unit_vectors,
    write_raster,
)

from srl_core.analysis import api
from srl_core.analysis.clustering import EmbeddingKMeans
from srl_core.analysis.similarity import Query
from srl_core.cli import main
from srl_core.embedding_products import (
    ALPHAEARTH_MODEL_ID,
    DECODING_KEY,
    PRODUCT_KEY,
    EmbeddingRaster,
    describe_embedding_raster,
)
from srl_core.errors import InputError
from srl_core.raster.blocks import EmbeddingRasterReader


def read_all(raster) -> tuple[np.ndarray, np.ndarray]:
    """Decoded (D, H, W) and valid mask of a whole raster, assembled from the reader's blocks."""
    with EmbeddingRasterReader(raster, max_bytes=16 * 16 * 64 * 4) as reader:
        data = np.full((reader.info.size, reader.info.height, reader.info.width), np.nan, np.float32)
        valid = np.zeros((reader.info.height, reader.info.width), bool)
        blocks = list(reader.blocks())
        assert len(blocks) > 1  # streamed, several windows
        for block in blocks:
            w = block.window
            data[:, w.yoff : w.yoff + w.height, w.xoff : w.xoff + w.width] = block.data
            valid[w.yoff : w.yoff + w.height, w.xoff : w.xoff + w.width] = block.valid
    return data, valid


def test_alphaearth_8bit_is_recognised_and_dequantised_to_the_known_vectors(tmp_path):
    for names in (True, False):  # band names A00..A63, or only 64 signed bytes with nodata -128
        path, x, q = alphaearth_int8(tmp_path / f"aef_{names}.tif", names=names)
        info, decoding = describe_embedding_raster(path)
        assert decoding.product == "alphaearth" and info.model_id == ALPHAEARTH_MODEL_ID and info.size == 64
        data, valid = read_all(path)
        assert not valid[0, 0] and valid.sum() == H * W - 1
        np.testing.assert_allclose(data[:, valid], dequantise_alphaearth(q)[:, valid], rtol=1e-6)
        # Quantisation error is below one step of the square-root scale; vectors stay unit length.
        assert np.abs(data[:, valid] - x[:, valid]).max() < 1 / 127.5
        np.testing.assert_allclose(np.linalg.norm(data[:, valid], axis=0), 1.0, atol=0.01)


def test_bottom_up_raster_reads_north_up_and_outputs_are_north_up(tmp_path):
    top, x, q = alphaearth_int8(tmp_path / "top.tif")
    bottom, _, _ = alphaearth_int8(tmp_path / "bottom.tif", bottom_up=True)
    assert gdal.Open(bottom).GetGeoTransform()[5] > 0
    info, decoding = describe_embedding_raster(bottom)
    assert decoding.flip_y and info.geotransform == (ORIGIN_X, PIXEL, 0, TOP_Y, 0, -PIXEL)
    data_bottom, valid_bottom = read_all(bottom)
    data_top, valid_top = read_all(top)
    np.testing.assert_array_equal(data_bottom, data_top)
    np.testing.assert_array_equal(valid_bottom, valid_top)
    # A pixel query by map coordinates finds the same vector, and the similarity raster is north-up.
    query = Query().add_pixels(bottom, [[ORIGIN_X + 15, TOP_Y - 25]])  # column 1, row 2
    np.testing.assert_allclose(query.matrix()[0], dequantise_alphaearth(q)[:, 2, 1], rtol=1e-6)
    result = api.similarity(bottom, query, str(tmp_path / "sim.tif"))
    out = gdal.Open(result.output)
    assert out.GetGeoTransform() == (ORIGIN_X, PIXEL, 0, TOP_Y, 0, -PIXEL)
    sim = out.ReadAsArray()
    assert sim[2, 1] == pytest.approx(1.0, abs=1e-6) and np.isnan(sim[0, 0])
    assert np.nanmin(sim[:, : W // 2]) > np.nanmax(sim[:, W // 2 :])  # the query's half scores higher
    assert "bottom-up" in out.GetMetadataItem(DECODING_KEY)
    assert out.GetMetadataItem(PRODUCT_KEY) == "alphaearth"
    assert any("de-quantised" in line for line in result.messages())


def test_earth_engine_float_export_shares_the_8bit_files_space(tmp_path):
    path8, x, q = alphaearth_int8(tmp_path / "aef8.tif")
    x = x.astype(np.float32)
    x[:, 0, 0] = np.nan
    pathf = write_raster(tmp_path / "ee.tif", x, names=ALPHAEARTH_NAMES)
    info, decoding = describe_embedding_raster(pathf)
    assert decoding.product == "alphaearth" and not decoding.dequantise
    data, valid = read_all(pathf)
    np.testing.assert_array_equal(data[:, valid], x[:, valid])
    # Both are AlphaEarth: k-means fitted on the 8-bit file applies to the float export.
    fitted = api.cluster(path8, str(tmp_path / "c8.tif"), n_clusters=2, sample_size=500)
    applied = api.apply_clusters(fitted.model, pathf, str(tmp_path / "cf.tif"))
    assert applied.model.model_id == ALPHAEARTH_MODEL_ID
    np.testing.assert_array_equal(
        gdal.Open(fitted.output).ReadAsArray(), gdal.Open(applied.output).ReadAsArray()
    )


def test_tessera_scales_in_the_file_are_applied(tmp_path):
    rng = np.random.default_rng(3)
    x = unit_vectors(128, seed=3) * 3.0
    # Per-pixel scales (as geotessera quantises): int8 values times the pixel's scale, 0 = no data.
    scale = (np.abs(x).max(axis=0) / 127.0).astype(np.float32)
    q = np.round(x / scale).astype(np.int8)
    scale[1, 1] = 0.0
    stacked = np.concatenate([q.astype(np.float32), scale[None]])
    names = [f"band_{i}" for i in range(128)] + ["scales"]
    path = write_raster(
        tmp_path / "t.tif", stacked, names=names, metadata={"SOURCE": "TESSERA v1 (geotessera)"}
    )
    info, decoding = describe_embedding_raster(path)
    assert decoding.product == "tessera" and info.size == 128 and decoding.scale_band == 129
    data, valid = read_all(path)
    assert not valid[1, 1] and valid.sum() == H * W - 1
    np.testing.assert_allclose(data[:, valid], (q * scale[None])[:, valid], rtol=1e-6)
    assert np.abs(data[:, valid] - x[:, valid]).max() <= scale.max() / 2 + 1e-6

    # One scale per band (GDAL scale/offset), TESSERA named explicitly since nothing says so.
    band_scale = rng.uniform(0.01, 0.03, 128)
    offsets = rng.uniform(-0.1, 0.1, 128)
    stored = np.round((x - offsets[:, None, None]) / band_scale[:, None, None]).astype(np.float32)
    plain = write_raster(tmp_path / "t2.tif", stored, scale_offset=(band_scale, offsets))
    with pytest.raises(InputError, match="Treat the bands of a raster SRL did not make as embeddings"):
        describe_embedding_raster(plain)
    data, valid = read_all(EmbeddingRaster(plain, product="tessera"))
    expected = stored * band_scale[:, None, None] + offsets[:, None, None]
    assert valid.all()
    np.testing.assert_allclose(data, expected, rtol=1e-5, atol=1e-6)


def test_any_raster_needs_the_users_word_and_products_check_band_counts(tmp_path):
    with pytest.raises(InputError, match="Treat the bands of a raster SRL did not make as embeddings"):
        api.open_input(str(LANDSAT))
    with pytest.raises(InputError, match="64 bands"):
        describe_embedding_raster(EmbeddingRaster(str(LANDSAT), product="alphaearth"))
    with pytest.raises(InputError, match="Unknown embedding product"):
        describe_embedding_raster(EmbeddingRaster(str(LANDSAT), product="clay"))
    one_band = write_raster(tmp_path / "one.tif", np.ones((1, H, W), np.float32))
    with pytest.raises(InputError, match="at least 2"):
        api.open_input(one_band, bands_as_embeddings=True)
    data = api.open_input(str(LANDSAT), bands_as_embeddings=True)
    assert data.is_raster and "used as they are" in data.note


def _landsat_values() -> tuple[np.ndarray, np.ndarray]:
    values = gdal.Open(str(LANDSAT)).ReadAsArray().astype(np.float32)
    return values, (values != -99999).all(axis=0)


def test_landsat_bands_as_embeddings_through_the_api(tmp_path):
    values, valid = _landsat_values()
    data = api.open_input(str(LANDSAT), bands_as_embeddings=True)
    result = api.cluster(data, str(tmp_path / "k.tif"), n_clusters=4, sample_size=5000)
    classes = gdal.Open(result.output).ReadAsArray()
    # Every pixel with a complete vector gets the class of its nearest centre; the others none.
    expected = result.model.predict(values[:, valid].T) + 1
    np.testing.assert_array_equal(classes[valid], expected)
    assert (classes[~valid] == 0).all() and result.n_clusters == 4
    out = gdal.Open(result.output)
    assert out.GetMetadataItem(PRODUCT_KEY) == "float"
    assert out.GetMetadataItem(DECODING_KEY) == "band values as stored"
    assert "used as they are" in result.messages()[0]

    view = api.rgb_view(data, str(tmp_path / "rgb.tif"), sample_size=5000)
    assert len(view.explained_variance) == 3 and view.explained_variance[0] > 0.5  # correlated bands
    assert view.variance_text == gdal.Open(view.output).GetMetadataItem("SRL_PCA_VARIANCE")
    rgba = gdal.Open(view.output).ReadAsArray()
    np.testing.assert_array_equal(rgba[3] == 255, valid)


def test_landsat_bands_as_embeddings_through_the_cli(tmp_path, capsys):
    values, valid = _landsat_values()
    gt = gdal.Open(str(LANDSAT)).GetGeoTransform()
    row, col = 200, 300
    x, y = gt[0] + (col + 0.5) * gt[1], gt[3] + (row + 0.5) * gt[5]
    assert main(["similarity", str(LANDSAT), str(tmp_path / "s.tif"), "--pixel", str(x), str(y)]) == 2
    assert "--bands-as-embeddings" in capsys.readouterr().err
    opts = ["--bands-as-embeddings"]
    assert main(["similarity", str(LANDSAT), str(tmp_path / "s.tif"), "--pixel", str(x), str(y), *opts]) == 0
    assert "used as they are" in capsys.readouterr().out
    sim = gdal.Open(str(tmp_path / "s.tif")).ReadAsArray()
    unit = values[:, valid] / np.linalg.norm(values[:, valid], axis=0)
    q = values[:, row, col] / np.linalg.norm(values[:, row, col])
    np.testing.assert_allclose(sim[valid], q @ unit, atol=1e-5)
    assert np.isnan(sim[~valid]).all()
    model = str(tmp_path / "k.safetensors")
    args = ["cluster", str(LANDSAT), str(tmp_path / "c.tif"), "-k", "3", "--save-model", model, *opts]
    assert main([*args, "--sample", "3000"]) == 0
    assert main(["apply-clusters", model, str(LANDSAT), str(tmp_path / "c2.tif"), *opts]) == 0
    np.testing.assert_array_equal(
        gdal.Open(str(tmp_path / "c.tif")).ReadAsArray(), gdal.Open(str(tmp_path / "c2.tif")).ReadAsArray()
    )
    assert EmbeddingKMeans.load(model).model_id == "bands-as-embeddings-6"
    assert main(["rgb-view", str(LANDSAT), str(tmp_path / "rgb.tif"), "--sample", "3000", *opts]) == 0
    assert "Share of variance explained by PC1, PC2, PC3" in capsys.readouterr().out
    assert (
        main(["top-k", str(LANDSAT), str(tmp_path / "t.gpkg"), "-k", "3", "--pixel", str(x), str(y), *opts])
        == 0
    )
    assert "3 most similar" in capsys.readouterr().out


def test_interpolation_uses_landsat_bands_as_tile_embeddings(tmp_path, capsys):
    from srl_core.vector.points import write_points

    values, valid = _landsat_values()
    ds = gdal.Open(str(LANDSAT))
    gt = ds.GetGeoTransform()
    rng = np.random.default_rng(0)
    rows, cols = np.nonzero(valid)
    pick = rng.choice(len(rows), 60, replace=False)
    r, c = rows[pick], cols[pick]
    xy = np.column_stack([gt[0] + (c + 0.5) * gt[1], gt[3] + (r + 0.5) * gt[5]])
    write_points(str(tmp_path / "p.gpkg"), xy, ds.GetProjection(), {"nir": values[3, r, c].astype(float)})
    args = [
        "interpolate",
        str(tmp_path / "p.gpkg"),
        "nir",
        str(tmp_path / "pr.tif"),
        str(tmp_path / "un.tif"),
    ]
    args += ["--resolution", "285", "--members", "2", "--folds", "3", "--tile-raster", str(LANDSAT)]
    assert main(args) == 2  # a plain raster needs the user's word
    assert main([*args, "--bands-as-embeddings"]) == 0
    assert "used as they are" in capsys.readouterr().out
    prediction = gdal.Open(str(tmp_path / "pr.tif"))
    assert prediction.GetMetadataItem(PRODUCT_KEY) == "float"


# -- what counts as no data, and where pixels are (an audit, session 24) -----------------------------------
def test_pixels_with_the_nodata_value_in_some_bands_are_left_out_and_said(tmp_path):
    """A pixel is no data where any band holds the value (Landsat's bands have their own no-data
    borders), but embeddings written with no-data 0 hold exact zeros where a feature is off: a third
    of such a raster was left out without a word. The note now says so, with what to do."""
    x = unit_vectors(8).astype(np.float32)
    x[3, :, ::3] = 0.0  # one dimension off in a third of the pixels
    path = write_raster(tmp_path / "relu.tif", x, nodata=0.0)
    data = api.open_input(path, bands_as_embeddings=True)
    result = api.cluster(data, str(tmp_path / "c.tif"), n_clusters=2)
    assert "35% of the pixels read hold the no-data value 0 in some bands but not all" in result.messages()[0]
    assert "gdal_edit -unsetnodata" in result.messages()[0]
    classes = gdal.Open(result.output).ReadAsArray()
    assert (classes[:, ::3] == 0).all() and (classes[:, 1::3] > 0).all()
    full = write_raster(tmp_path / "full.tif", unit_vectors(8).astype(np.float32), nodata=0.0)
    assert "some bands but not all" not in describe_embedding_raster(
        EmbeddingRaster(full, bands_as_embeddings=True))[1].note


def test_zero_length_alphaearth_vectors_are_no_data(tmp_path):
    """An AlphaEarth float export without a no-data value holds 0 in every band where it is masked; its
    vectors have unit length, so those pixels are no data (they were a class of their own, and more
    'similar' to any query than truly different ground)."""
    x = unit_vectors(64).astype(np.float32)
    x[:, 5:7, :] = 0.0
    path = write_raster(tmp_path / "ee_masked.tif", x, names=ALPHAEARTH_NAMES)
    _, valid = read_all(path)
    assert not valid[5:7].any() and valid.sum() == H * W - 2 * W


def test_zero_fill_of_a_tessera_mosaic_is_no_data_in_every_analysis(tmp_path):
    """geotessera's older merge writes 0 where no tile covers and declares no no-data value: the fill
    was a class in clusters and a colour in the RGB view, while similarity left it out (an audit)."""
    x = unit_vectors(128, seed=4).astype(np.float32)
    x[:, :, :3] = 0.0
    names = [f"Tessera_Band_{i}" for i in range(128)]
    path = write_raster(tmp_path / "mosaic.tif", x, names=names,
                        metadata={"SOURCE": "TESSERA v1 (geotessera)"})
    _, valid = read_all(path)
    assert not valid[:, :3].any() and valid[:, 3:].all()


def test_an_alphaearth_named_raster_of_converted_8bit_values_is_refused(tmp_path):
    """Clipped or warped with GDAL before 3.7 (QGIS's Clip, Warp), signed bytes lose their sign and became
    Byte 0..255; as Float32 they keep the integers. Both were read as a float export, similarities
    0.64-1.00 everywhere (an audit)."""
    _, _, q = alphaearth_int8(tmp_path / "ae.tif")
    converted = write_raster(tmp_path / "ae_f32.tif", q.astype(np.float32), names=ALPHAEARTH_NAMES)
    with pytest.raises(InputError, match="holds values up to .*not the -1..1 of their float export"):
        describe_embedding_raster(converted)


def test_rotated_embedding_raster_places_pixels_by_the_whole_transform(tmp_path):
    """Pixel centres, pixel examples and polygon examples used only the axis-aligned terms: top-k
    points of a 30° rotated raster were written 10 pixels off, and examples were refused."""
    angle = np.radians(30)
    gt = (ORIGIN_X, PIXEL * np.cos(angle), PIXEL * np.sin(angle), TOP_Y, PIXEL * np.sin(angle),
          -PIXEL * np.cos(angle))
    x = unit_vectors(8).astype(np.float32)
    path = write_raster(tmp_path / "rot.tif", x)
    gdal.Open(path, gdal.GA_Update).SetGeoTransform(gt)
    raster = EmbeddingRaster(path, bands_as_embeddings=True)

    def centre(col: int, row: int) -> tuple[float, float]:
        c, r = col + 0.5, row + 0.5
        return gt[0] + c * gt[1] + r * gt[2], gt[3] + c * gt[4] + r * gt[5]

    with EmbeddingRasterReader(raster) as reader:
        np.testing.assert_allclose(reader.pixel_centres(np.array([17]), np.array([3]))[0], centre(17, 3))
        assert reader.pixel_of(*centre(17, 3)) == (17, 3)
        np.testing.assert_allclose(reader.sample_at(np.array([centre(17, 3)]))[0], x[:, 3, 17], rtol=1e-6)
    cx, cy = centre(15, 4)
    by_point = Query().add_pixels(raster, [[cx, cy]])
    square = shapely.box(cx - 2, cy - 2, cx + 2, cy + 2).wkt
    by_polygon = Query().add_polygon(raster, square)
    np.testing.assert_allclose(by_point.matrix()[0], x[:, 4, 15], rtol=1e-6)
    np.testing.assert_allclose(by_polygon.matrix()[0], x[:, 4, 15], rtol=1e-6)
    data = api.open_input(path, bands_as_embeddings=True)
    result = api.similarity(data, by_point, str(tmp_path / "sim.tif"), top_k=1,
                            top_k_output=str(tmp_path / "top.gpkg"))
    from osgeo import ogr

    points = ogr.Open(result.top_k_output)
    feature = points.GetLayer().GetNextFeature()
    point = feature.GetGeometryRef()
    assert (point.GetX(), point.GetY()) == pytest.approx((cx, cy))


def test_an_embedding_raster_without_georeferencing_is_refused(tmp_path):
    """GDAL's default grid read it bottom-up: outputs came out upside down under a note saying
    'bottom-up rows read north-up', on an invented grid."""
    path = str(tmp_path / "plain.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 6, 4, 3, gdal.GDT_Float32)
    ds.GetRasterBand(1).Fill(1.0)
    ds = None
    with pytest.raises(InputError, match="has no georeferencing"):
        describe_embedding_raster(EmbeddingRaster(path, bands_as_embeddings=True))


@pytest.mark.parametrize("gdal_type, dtype, nodata", [(gdal.GDT_Byte, np.uint8, -1),
                                                      (gdal.GDT_UInt16, np.uint16, -9999)])
def test_a_nodata_value_the_band_type_cannot_hold_leaves_no_pixel_out(tmp_path, gdal_type, dtype, nodata):
    """-9999 declared on UInt16 bands (gdal_translate -a_nodata -9999 -ot UInt16) marks no pixel, as GDAL
    and QGIS take it; cast to the band's type it became 55537, and every valid 55537 was no data."""
    rng = np.random.default_rng(0)
    values = rng.integers(10, 200, (5, H, W)).astype(dtype)
    values[:, :, :4] = np.array(nodata).astype(dtype)  # the wrapped value, in every band of 4 columns
    tif = tmp_path / "bands.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(tif), W, H, 5, gdal_type)
    ds.SetGeoTransform([ORIGIN_X, PIXEL, 0, TOP_Y, 0, -PIXEL])
    ds.SetProjection("EPSG:32631")
    for b in range(5):
        ds.GetRasterBand(b + 1).WriteArray(values[b])
    ds = None
    vrt = gdal.Translate(str(tmp_path / "bands.vrt"), str(tif), format="VRT")
    for b in range(5):
        vrt.GetRasterBand(b + 1).SetNoDataValue(nodata)
    vrt = None
    data = api.open_input(str(tmp_path / "bands.vrt"), bands_as_embeddings=True)
    result = api.cluster(data, str(tmp_path / "c.tif"), n_clusters=2)
    classes = gdal.Open(result.output).ReadAsArray()
    assert (classes > 0).all()
    assert len(np.unique(classes[:, :4])) == 1 and (classes[:, 4:] != classes[0, 0]).mean() > 0.9
    assert not any("no-data value" in message for message in result.messages())


def test_the_alpha_band_of_a_four_band_byte_geotiff_is_named_in_the_note(tmp_path):
    """GDAL marks the 4th band of a 4-band Byte GeoTIFF as alpha: it was left out as a dimension, and its
    0 pixels as no data, under a note saying only 'its 3 band values are used'."""
    rng = np.random.default_rng(0)
    values = rng.integers(10, 200, (4, H, W)).astype(np.uint8)
    values[3] = 255
    values[3, 0, :3] = 0
    path = tmp_path / "rgba.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(path), W, H, 4, gdal.GDT_Byte)
    ds.SetGeoTransform([ORIGIN_X, PIXEL, 0, TOP_Y, 0, -PIXEL])
    ds.SetProjection("EPSG:32631")
    ds.WriteArray(values)
    ds = None
    assert gdal.Open(str(path)).GetRasterBand(4).GetColorInterpretation() == gdal.GCI_AlphaBand
    result = api.cluster(api.open_input(str(path), bands_as_embeddings=True), str(tmp_path / "c.tif"),
                         n_clusters=2)
    assert "its 3 band values are used" in result.messages()[0]
    assert "band 4 is an alpha band (transparency), not a dimension" in result.messages()[0]
    assert (gdal.Open(result.output).ReadAsArray()[0, :3] == 0).all()


def test_values_beyond_float32_squares_are_no_data_refused_or_scaled_right(tmp_path):
    """Squares of values beyond about 1e19 overflow float32: an undeclared fill of 1e30 scored 0.0 in a
    similarity map (its cosine is 0.19) and k-means on embeddings of 1e29 put every pixel in one class,
    advising a smaller k; a single example of that size was refused as 'cancelling out'."""
    from srl_core.analysis._common import l2_normalize
    from srl_core.analysis.clustering import EmbeddingKMeans

    rows = np.array([[3e29, 4e29], [3, 4], [3e-25, 4e-25], [0, 0]], np.float32)
    np.testing.assert_allclose(l2_normalize(rows), [[0.6, 0.8]] * 3 + [[0, 0]], atol=1e-7)
    cube = (np.ones((2, 3, 4), np.float32) * 1e30).transpose(1, 0, 2)  # not C-ordered
    np.testing.assert_allclose(l2_normalize(cube), 0.5)
    assert l2_normalize(np.zeros((5, 0))).shape == (5, 0)
    x = unit_vectors(8).astype(np.float32)
    x[:, 2, 3] = -3.4e38  # a float raster's fill, not declared
    path = write_raster(tmp_path / "fill.tif", x)
    data = api.open_input(path, bands_as_embeddings=True)
    query = Query().add_pixels(data.source, np.array([[ORIGIN_X + 5.5 * PIXEL, TOP_Y - 7.5 * PIXEL]]))
    sim = gdal.Open(api.similarity(data, query, str(tmp_path / "s.tif")).output).ReadAsArray()
    assert np.isnan(sim[2, 3]) and np.isfinite(np.delete(sim.ravel(), 2 * W + 3)).all()
    classes = gdal.Open(api.cluster(data, str(tmp_path / "c.tif"), n_clusters=2).output).ReadAsArray()
    assert classes[2, 3] == 0 and len(np.unique(classes[:, : W // 2][classes[:, : W // 2] > 0])) == 1
    with pytest.raises(InputError, match="overflow the float32 distances k-means uses"):
        EmbeddingKMeans(2).fit((unit_vectors(8) * 1e29).reshape(8, -1).T)
    huge = write_raster(tmp_path / "huge.tif", (unit_vectors(8) * 1e29).astype(np.float32))
    big = api.open_input(huge, bands_as_embeddings=True)
    Query().add_pixels(big.source, np.array([[ORIGIN_X + 5.5 * PIXEL, TOP_Y - 7.5 * PIXEL]]))  # not refused


def test_a_raster_in_degrees_past_180_takes_longitudes_of_the_other_convention(tmp_path):
    """A grid of 170..190° E (climate and ocean data): -179° lies on it at 181°, but was 'outside' it, and an
    interpolation's points there were all refused as off the tile raster."""
    from srl_core.raster.blocks import EmbeddingRasterReader

    data = np.random.default_rng(0).normal(size=(4, 10, 200)).astype(np.float32)
    path = str(tmp_path / "pacific.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 200, 10, 4, gdal.GDT_Float32)
    ds.SetGeoTransform([170.0, 0.1, 0, -14.0, 0, -0.1])
    ds.SetProjection("EPSG:4326")
    ds.WriteArray(data)
    ds = None
    source = EmbeddingRaster(path, bands_as_embeddings=True)
    with EmbeddingRasterReader(source) as reader:
        assert reader.pixel_of(-179.05, -14.55) == reader.pixel_of(180.95, -14.55) == (109, 5)
        east, west, off = reader.sample_at(np.array([[181.05, -14.05], [-178.95, -14.05], [-160.0, -14.05]]))
        assert np.array_equal(east, west) and np.array_equal(east, data[:, 0, 110]) and np.isnan(off).all()
    with pytest.raises(InputError, match="outside"):
        Query().add_pixels(source, np.array([[-160.0, -14.5]]))  # 200° E: off the grid either way
