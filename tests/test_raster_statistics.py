"""Standardising by the raster's own statistics: known answers, bounded sampling, bad rasters."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from test_raster_grid import GT, write_raster
from test_tile_engine import CROP, mean_model

from srl_core.errors import InputError
from srl_core.raster.reader import read_window
from srl_core.raster.source import open_source
from srl_core.raster.statistics import band_statistics, sampled_windows
from srl_core.tiles import embed_raster, embed_tiles_at_points


def test_statistics_skip_nodata_and_match_numpy(tmp_path) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal([[[50.0]], [[900.0]]], [[[5.0]], [[120.0]]], size=(2, 60, 70)).astype(np.float32)
    data[:, :10, :] = -1  # nodata rows: left out
    source = open_source(write_raster(tmp_path / "r.tif", data, nodata=-1), 2, None)
    stats = band_statistics(source)
    valid = data[:, 10:, :].reshape(2, -1).astype(np.float64)
    assert stats.pixels == valid.shape[1]
    np.testing.assert_allclose(stats.mean, valid.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(stats.std, valid.std(axis=1), rtol=1e-6)


def test_large_rasters_are_sampled_by_squares_within_the_budget(tmp_path) -> None:
    assert sampled_windows(40, 30, 4_000_000) == [(0, 0, 40, 30)]  # small: read whole
    windows = sampled_windows(50_000, 100_000, 4_000_000)
    assert 4_000_000 // 65_536 <= len(windows) <= 1.2 * 4_000_000 / 65_536
    assert len(set(windows)) == len(windows)
    assert all(x % 256 == 0 and y % 256 == 0 and x + w <= 50_000 and y + h <= 100_000
               for x, y, w, h in windows)
    xs, ys = sorted({x for x, _, _, _ in windows}), sorted({y for _, y, _, _ in windows})
    assert ys[0] < 100_000 / 11 and ys[-1] > 100_000 * 10 / 11  # one square per stratum: spread over it
    assert xs[0] < 50_000 / len(xs) and xs[-1] > 50_000 * (1 - 1 / len(xs))
    assert len(ys) == 11 and len(windows) == len(xs) * len(ys)  # a lattice: few rows (strips: decoded once)
    assert len(sampled_windows(10**6, 10, 100)) == 8  # at least 8 squares
    windows = sampled_windows(64, 200, 16 * 16 * 10, side=16)  # 6 of 13 grid rows, 2 of 4 columns
    assert len(windows) == 12 and sum(w * h for _, _, w, h in windows) == 12 * 256
    assert sampled_windows(64, 200, 16 * 16 * 10, side=16, min_windows=52)[-1] == (48, 192, 16, 8)  # clipped
    data = np.tile(np.arange(1000, dtype=np.float32)[None, :, None], (1, 1, 600))  # row r holds r
    source = open_source(write_raster(tmp_path / "r.tif", data, block=256), 1, None)
    sampled = band_statistics(source, max_pixels=65_536)  # 9 of 12 squares
    assert sampled.pixels == sum(w * h for _, _, w, h in sampled_windows(600, 1000, 65_536))
    assert not sampled.whole and band_statistics(source, max_pixels=600_000).whole
    assert sampled.mean[0] == pytest.approx(499.5, abs=60)
    assert sampled.std[0] == pytest.approx(data.std(), rel=0.2)


def test_the_sample_and_the_normalisation_choice_do_not_depend_on_the_file_layout(tmp_path) -> None:
    """A scene with a bright top and a dark bottom, stored as 256-px tiles, 128-px tiles and one-row
    strips: the sampled pixels, so the statistics and the 'auto' choice, are the same."""
    from srl_core.tiles import choose_normalisation, tile_model_inputs

    rng = np.random.default_rng(1)
    rows = np.where(np.arange(1100) < 300, 4000.0, 100.0)[:, None] + rng.normal(0, 5, (1100, 900))
    data = np.stack([rows, rows * 0.5]).astype(np.float32)
    inputs = tile_model_inputs(mean_model(2, 8, mean=600.0, std=200.0).card)
    found = set()
    for name, block in (("tiles256", 256), ("tiles128", 128), ("strips", 0)):
        source = open_source(write_raster(tmp_path / f"{name}.tif", data, block=block), 2, None)
        stats = band_statistics(source, max_pixels=65_536)
        choice = choose_normalisation(source, inputs, "auto")[0]
        found.add((stats.mean, stats.std, stats.pixels, choice))
    assert len(found) == 1


def test_all_nodata_and_constant_bands_are_refused(tmp_path) -> None:
    zeros = np.zeros((1, 20, 20), np.float32)
    empty = open_source(write_raster(tmp_path / "e.tif", zeros, nodata=0), 1, None)
    with pytest.raises(InputError, match="no valid pixel"):
        band_statistics(empty)
    data = np.stack([np.full((20, 20), 3.0), np.arange(400.0).reshape(20, 20)]).astype(np.float32)
    flat = open_source(write_raster(tmp_path / "c.tif", data), 2, None)
    with pytest.raises(InputError, match=r"Band\(s\) \[1\] .* constant"):
        band_statistics(flat)


def test_raster_normalisation_makes_embeddings_independent_of_units(tmp_path) -> None:
    """An 8-bit export and a 16-bit rescaled copy (a*x + b) embed the same way with 'raster'."""
    dn = gdal.Open(CROP).ReadAsArray().astype(np.float32)
    scaled = np.where(dn == 0, 0, dn * 37.5 + 5000).astype(np.float32)
    a = write_raster(tmp_path / "dn.tif", dn, nodata=0)
    b = write_raster(tmp_path / "scaled.tif", scaled, nodata=0)
    model = mean_model(5, 16, mean=7000.0, std=300.0)  # 'trained' on 16-bit values like `scaled`
    embed_raster(a, tmp_path / "ea.tif", model, normalisation="raster")
    embed_raster(b, tmp_path / "eb.tif", model, normalisation="raster")
    ea = gdal.Open(str(tmp_path / "ea.tif")).ReadAsArray()
    eb = gdal.Open(str(tmp_path / "eb.tif")).ReadAsArray()
    assert np.isfinite(ea).sum() > 0
    np.testing.assert_allclose(ea, eb, rtol=1e-4, atol=1e-4, equal_nan=True)
    # standardised: the mean over all embedded tiles of a band's tile means is near 0
    assert np.abs(np.nanmean(ea, axis=(1, 2))).max() < 0.2
    xy = np.array([[GT[0] + 64.5 * GT[1], GT[3] + 64.5 * GT[5]]])  # centre of pixel (64, 64)
    pa, valid = embed_tiles_at_points(a, xy, model, normalisation="raster")
    pb, _ = embed_tiles_at_points(b, xy, model, normalisation="raster")
    assert valid.all()
    np.testing.assert_allclose(pa, pb, rtol=1e-4, atol=1e-4)


def test_a_raster_unlike_the_training_data_gets_a_warning(tmp_path) -> None:
    model = mean_model(5, 16, mean=7000.0, std=300.0)
    dn = embed_raster(CROP, tmp_path / "dn.tif", model, normalisation="model")
    assert any("standard deviations from the model's training data" in w for w in dn.warnings)
    auto = embed_raster(CROP, tmp_path / "auto.tif", model)  # the default: the raster's own, said so
    assert auto.warnings == () and "raster's own statistics, because band" in auto.choices[-1]
    assert gdal.Open(str(tmp_path / "auto.tif")).GetMetadataItem("SRL_NORMALISATION") == "raster"
    assert embed_raster(CROP, tmp_path / "own.tif", model, normalisation="raster").warnings == ()
    like = embed_raster(CROP, tmp_path / "like.tif", mean_model(5, 16, mean=70.0, std=30.0))
    assert like.warnings == ()
    with pytest.raises(InputError, match="Normalisation must be one of"):
        embed_raster(CROP, tmp_path / "bad.tif", model, normalisation="scene")
    assert not (tmp_path / "bad.tif").exists()


def test_auto_reads_a_small_raster_once_for_its_choice_and_its_statistics(tmp_path, monkeypatch) -> None:
    """The choice's sample of a raster small enough to read whole is its statistics: no second pass."""
    from srl_core import tiles

    reads = []

    def counting(*args, **kwargs):
        reads.append(kwargs.get("max_pixels"))
        return band_statistics(*args, **kwargs)

    monkeypatch.setattr(tiles, "band_statistics", counting)
    model = mean_model(5, 16, mean=7000.0, std=300.0)
    auto = gdal.Open(str(embed_raster(CROP, tmp_path / "auto.tif", model).path)).ReadAsArray()
    assert len(reads) == 1
    reads.clear()
    own = gdal.Open(str(embed_raster(CROP, tmp_path / "own.tif", model, normalisation="raster").path))
    np.testing.assert_array_equal(auto, own.ReadAsArray())
    assert len(reads) == 1  # the standardisation's statistics serve the checks too: no sample of their own


def test_an_undeclared_zero_border_gets_a_warning_and_a_declared_one_none(tmp_path) -> None:
    """A scene's fill border of zeros with no nodata set: the tiles there would be embedded as ground."""
    data = np.random.default_rng(2).integers(100, 200, size=(3, 96, 96)).astype(np.uint16)
    data[:, :, :30] = 0  # a third of the scene is fill
    model = mean_model(3, 16, mean=150.0, std=30.0)
    bare = embed_raster(write_raster(tmp_path / "bare.tif", data), tmp_path / "e1.tif", model)
    assert [w for w in bare.warnings if "are 0 in every band" in w and "-a_nodata 0" in w]
    assert "31%" in " ".join(bare.warnings)
    own = embed_raster(tmp_path / "bare.tif", tmp_path / "e5.tif", model, normalisation="raster")
    assert [w for w in own.warnings if "are 0 in every band" in w]  # from the standardisation's statistics
    declared = embed_raster(write_raster(tmp_path / "nodata.tif", data, nodata=0), tmp_path / "e2.tif", model)
    assert not [w for w in declared.warnings if "are 0 in every band" in w]
    mosaiks = embed_raster(tmp_path / "bare.tif", tmp_path / "e4.tif", "mosaiks-rcf", tile_size=16)
    assert [w for w in mosaiks.warnings if "are 0 in every band" in w]  # training-free models too
    data[:, :, :30] = 150  # no fill: some zeros in one band only are not fill
    data[0, 0, :] = 0
    plain = embed_raster(write_raster(tmp_path / "plain.tif", data), tmp_path / "e3.tif", model)
    assert not [w for w in plain.warnings if "are 0 in every band" in w]


def test_sampling_does_not_fill_gdal_block_cache(tmp_path, monkeypatch) -> None:
    """The squares of one lattice row share their strips (kept in GDAL's cache while that row is
    read); the blocks of earlier rows must not pile up in the cache."""
    from srl_core.raster import statistics

    data = np.random.default_rng(0).integers(1, 255, size=(2, 2048, 2048)).astype(np.uint8)
    source = open_source(write_raster(tmp_path / "big.tif", data, block=256), 2, None)
    gdal.SetCacheMax(512 * 1024 * 1024)
    held = []

    def recording_read(*args, **kwargs):
        held.append(gdal.GetCacheUsed())  # what earlier reads left in the cache
        return read_window(*args, **kwargs)

    monkeypatch.setattr(statistics, "read_window", recording_read)
    band_statistics(source, max_pixels=65_536 * 8)  # 3 rows of 3 of the 64 blocks
    assert len(held) == 9
    block = 2 * 65_536  # 2 bands of 64 KiB
    assert max(held) - held[0] < 2 * block + 100_000  # at most the 2 earlier squares of the same row
    assert max(held[3] - held[0], held[6] - held[0]) < 100_000  # a new row starts with an empty cache


def test_a_thin_undeclared_zero_border_gets_a_warning(tmp_path) -> None:
    """2 px of zeros round a 1000 px raster: 0.8 % of its pixels, none of them in the check's sample
    (its squares do not reach the edges), but in every tile along the edge. The edge check names it;
    a raster whose edge holds only some zero pixels, or that declares 0 as nodata, gets no warning."""
    data = np.random.default_rng(3).integers(100, 200, size=(3, 1000, 1000)).astype(np.uint16)
    data[:, :2, :] = data[:, -2:, :] = data[:, :, :2] = data[:, :, -2:] = 0
    model = mean_model(3, 16, mean=150.0, std=30.0)
    framed = embed_raster(write_raster(tmp_path / "framed.tif", data), tmp_path / "e1.tif", model)
    assert [w for w in framed.warnings if "100% of the outermost pixels read along an edge" in w
            and "-a_nodata 0" in w]
    assert not [w for w in framed.warnings if "sampled from" in w]  # the share alone would not have told
    declared = embed_raster(write_raster(tmp_path / "nodata.tif", data, nodata=0), tmp_path / "e2.tif", model)
    assert not [w for w in declared.warnings if "0 in every band" in w]
    data[:, :2, :] = data[:, -2:, :] = data[:, :, :2] = data[:, :, -2:] = 150
    data[:, 0, 480:520] = 0  # a few dark pixels on one edge, in one of the runs read, are not a border
    plain = embed_raster(write_raster(tmp_path / "plain.tif", data), tmp_path / "e3.tif", model)
    assert not [w for w in plain.warnings if "0 in every band" in w]


def test_a_nodata_value_the_band_cannot_hold_is_no_declaration(tmp_path) -> None:
    """-1 declared on UInt16 bands masks nothing (GDAL takes it so), but it turned the warning of an
    undeclared 0 fill off: a third of a scene was embedded as ground without a word."""
    data = np.random.default_rng(2).integers(100, 200, size=(3, 96, 96)).astype(np.uint16)
    data[:, :, :30] = 0
    model = mean_model(3, 16, mean=150.0, std=30.0)
    declared = write_raster(tmp_path / "minus_one.tif", data, nodata=-1)
    result = embed_raster(declared, tmp_path / "e.tif", model)
    assert [w for w in result.warnings if "are 0 in every band" in w and "-a_nodata 0" in w]


def test_tiles_of_no_valid_pixel_are_nodata_even_when_any_share_is_allowed(tmp_path) -> None:
    """--max-nodata 1 embedded tiles of no valid pixel (0.0 in every value: a made-up embedding)."""
    data = np.random.default_rng(3).integers(100, 200, size=(3, 32, 48)).astype(np.uint16)
    data[:, :, :16] = 0
    src = write_raster(tmp_path / "half.tif", data, nodata=0)
    result = embed_raster(src, tmp_path / "e.tif", mean_model(3, 16, mean=150.0), max_nodata_fraction=1.0)
    emb = gdal.Open(str(tmp_path / "e.tif")).ReadAsArray()
    assert np.isnan(emb[:, :, 0]).all() and np.isfinite(emb[:, :, 1:]).all() and result.tiles_embedded == 4


def test_an_undeclared_fill_is_no_sign_of_another_sensor(tmp_path) -> None:
    """A Landsat scene's 17 % zero border moved its band means by several standard deviations of its ground:
    model auto took the very scene a model was trained on for another sensor's, standardised it by its own
    statistics, and every similarity map came out flat (medians 0.97). The fill is still warned of."""
    from srl_core.raster.statistics import band_statistics

    data = np.random.default_rng(4).uniform(140, 160, size=(3, 96, 96)).astype(np.float32)
    data[:, :, :30] = 0
    path = write_raster(tmp_path / "scene.tif", data)
    stats = band_statistics(open_source(path, 3))
    ground = data[:, :, 30:].reshape(3, -1).astype(np.float64)
    np.testing.assert_allclose(stats.without_zeros().mean, ground.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(stats.without_zeros().std, ground.std(axis=1), rtol=1e-4)
    result = embed_raster(path, tmp_path / "e.tif", mean_model(3, 16, mean=150.0, std=10.0))
    said = "model's training statistics (the raster looks like its training data)"
    assert any(said in choice for choice in result.choices)
    assert [w for w in result.warnings if "are 0 in every band" in w]
