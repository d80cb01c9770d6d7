"""Property-based fuzzing (hypothesis) of what a user or a file can hand srl_core.

Coordinates (NaN, infinities, out of range, huge), rasters (shapes, data types, nodata patterns,
infinities) and model cards (any JSON) must give either a result whose values are finite or one
of srl_core's own errors (:class:`~srl_core.errors.SRLError`): never another exception type, and
never a changed input file. Examples are few and derandomised so that the run is fast and the
same on every machine; set ``SRL_FUZZ_EXAMPLES`` (default 30) to search harder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from osgeo import gdal, gdal_array, osr
from test_tile_engine import mean_model

from srl_core.analysis.similarity import Query
from srl_core.bundle import CARD_NAME, ModelCard, build_module, read_card
from srl_core.errors import SRLError
from srl_core.location import embed_lonlat, embed_xy
from srl_core.models.location import ENCODINGS, NETWORKS, build_from_config
from srl_core.tiles import embed_raster, embed_tiles_at_points, tile_model_inputs

FUZZ = settings(
    max_examples=int(os.environ.get("SRL_FUZZ_EXAMPLES", "30")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- coordinates ---------------------------------------------------------------------------------
SPECIAL = [0.0, -0.0, 90.0, -90.0, 180.0, -180.0, 90.0000001, 180.0000001, 1e308, -1e308, 5e-324]
coordinate = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-200, 200),
    st.sampled_from(SPECIAL + [float("nan"), float("inf"), float("-inf")]),
)
points = st.lists(st.tuples(coordinate, coordinate), max_size=12)


# Pixel positions on the small test rasters (24 x 24 at most), mostly inside, some not numbers.
def pixels(size: int) -> st.SearchStrategy:
    """Pixel positions on a raster of ``size`` x ``size`` px at most: mostly inside, some not numbers."""
    inside = st.floats(0.2 * size, 0.8 * size)
    pixel = st.one_of(inside, inside, inside, st.floats(-2, size + 2), coordinate)
    return st.lists(st.tuples(pixel, pixel), min_size=1, max_size=6)


def mostly(usual, *others):
    """``usual`` four times in five, else one of ``others``: the edge cases without losing the main path."""
    return st.integers(0, 4).flatmap(lambda i: st.sampled_from(others) if i == 4 else st.just(usual))


torch.manual_seed(0)
LOCATION = build_from_config(
    {
        "encoding": {"name": "sphericalharmonics", "legendre_polys": 4},
        "network": {"name": "siren", "dim_hidden": 8, "num_layers": 1, "dim_out": 4},
    }
).eval()


@FUZZ
@given(points, st.sampled_from(["raise", "mask"]))
def test_lonlat_gives_finite_embeddings_or_an_srl_error(pts, on_invalid):
    lonlat = np.array(pts, dtype=np.float64).reshape(-1, 2)
    try:
        emb, valid = embed_lonlat(LOCATION, lonlat, device="cpu", on_invalid=on_invalid, batch_size=5)
    except SRLError as exc:
        event(type(exc).__name__)
        return
    event("result")
    inside = np.isfinite(lonlat).all(axis=1) & (np.abs(lonlat[:, 0]) <= 180) & (np.abs(lonlat[:, 1]) <= 90)
    assert np.array_equal(valid, inside)
    assert np.isfinite(emb[valid]).all() and np.isnan(emb[~valid]).all()


@FUZZ
@given(points, st.sampled_from(["EPSG:28992", "EPSG:3857", "EPSG:32633"]))
def test_projected_points_give_finite_embeddings_or_an_srl_error(pts, crs):
    xy = np.array(pts, dtype=np.float64).reshape(-1, 2)
    try:
        emb = embed_xy(LOCATION, xy, crs, device="cpu")
    except SRLError as exc:
        event(type(exc).__name__)
        return
    event("result")
    assert emb.shape == (len(xy), 4) and np.isfinite(emb).all()


# -- rasters -------------------------------------------------------------------------------------
def _map_xy(pts) -> np.ndarray:
    """Map coordinates of pixel positions (col, row) on the 10 m test grid (overflow gives inf)."""
    with np.errstate(over="ignore"):
        return np.array(pts, dtype=np.float64).reshape(-1, 2) * [10.0, -10.0] + [500000.0, 4000000.0]


def _write(path: Path, data: np.ndarray, nodata, crs: bool) -> str:
    bands, rows, cols = data.shape
    gtype = gdal_array.NumericTypeCodeToGDALTypeCode(data.dtype)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gtype)
    ds.SetGeoTransform((500000.0, 10.0, 0.0, 4000000.0, 0.0, -10.0))
    if crs:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32633)
        ds.SetProjection(srs.ExportToWkt())
    for i in range(bands):
        band = ds.GetRasterBand(i + 1)
        if nodata is not None:
            band.SetNoDataValue(float(nodata))
        band.WriteArray(data[i])
    ds = None
    return str(path)


@st.composite
def rasters(draw, min_side: int = 1):
    """(data (bands, rows, cols), nodata value or None): any small shape, type and nodata pattern."""
    dtype = np.dtype(draw(st.sampled_from(["uint8", "uint16", "int16", "int32", "float32", "float64"])))
    bands = draw(mostly(2, 1, 3))  # the test model reads 2 bands
    rows, cols = draw(st.integers(min_side, 24)), draw(st.integers(min_side, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.kind == "f":
        scale = draw(st.sampled_from([1.0, 1e4, 1e30]))
        data = (rng.normal(size=(bands, rows, cols)) * scale).astype(dtype)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, size=(bands, rows, cols), endpoint=True).astype(dtype)
    pattern = draw(st.sampled_from(["none", "random", "all", "rows", "constant"]))
    nodata = draw(st.sampled_from([None, 0, "nan", "max"]))
    value = {
        None: None,
        0: 0,
        "nan": np.nan if dtype.kind == "f" else None,
        "max": np.finfo(dtype).max if dtype.kind == "f" else np.iinfo(dtype).max,
    }[nodata]
    if pattern == "constant":
        data[:] = data.flat[0]
    elif value is not None and pattern != "none":
        mask = {
            "random": rng.random(data.shape[1:]) < draw(st.floats(0, 1)),
            "all": np.ones(data.shape[1:], bool),
            "rows": (np.arange(rows) % 2 == 0)[:, None].repeat(cols, 1),
        }[pattern]
        data[:, mask] = value
    if dtype.kind == "f" and draw(st.booleans()):
        data.flat[rng.integers(0, data.size)] = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
    return data, value


@FUZZ
@given(
    rasters(), st.integers(1, 9), st.sampled_from(["model", "raster"]), st.booleans(), mostly(0.5, 0.0, 1.0)
)
def test_raster_gives_finite_embeddings_or_an_srl_error(raster, tile, normalisation, crs, max_nodata):
    data, nodata = raster
    with tempfile.TemporaryDirectory() as folder:
        src = _write(Path(folder) / "in.tif", data, nodata, crs)
        before = digest(src)
        out = Path(folder) / "out.tif"
        try:
            result = embed_raster(
                src,
                out,
                mean_model(2, tile),
                normalisation=normalisation,
                device="cpu",
                max_nodata_fraction=max_nodata,
            )
        except SRLError as exc:
            event(type(exc).__name__)
            assert not out.exists()
        else:
            event("result")
            emb = gdal.Open(str(out)).ReadAsArray().reshape(2, -1)
            embedded = ~np.isnan(emb).any(axis=0)
            assert np.isfinite(emb[:, embedded]).all() and embedded.sum() == result.tiles_embedded > 0
        assert digest(src) == before


@FUZZ
@given(rasters(min_side=6), pixels(1))
def test_tiles_at_points_give_finite_embeddings_or_an_srl_error(raster, pts):
    data, nodata = raster
    with np.errstate(over="ignore", invalid="ignore"):
        xy = _map_xy(
            np.array(pts, dtype=np.float64) * [data.shape[2], data.shape[1]]
        )  # fractions of the raster
    with tempfile.TemporaryDirectory() as folder:
        src = _write(Path(folder) / "in.tif", data, nodata, True)
        before = digest(src)
        try:
            emb, valid = embed_tiles_at_points(src, xy, mean_model(2, 3), device="cpu")
        except SRLError as exc:
            event(type(exc).__name__)
        else:
            event(f"result, {int(valid.sum())} valid")
            assert np.isfinite(emb[valid]).all() and np.isnan(emb[~valid]).all()
        assert digest(src) == before


@pytest.fixture(scope="module")
def embedding_raster_file(tmp_path_factory) -> Path:
    from analysis_synthetic import write_embedding_raster

    data = np.random.default_rng(0).normal(size=(4, 12, 10)).astype(np.float32)
    data[:, 0, :] = np.nan
    data[:, 5, 5] = 0.0
    return Path(write_embedding_raster(tmp_path_factory.mktemp("fuzz") / "emb.tif", data))


@FUZZ
@given(pixels(12))
def test_query_pixels_give_a_finite_query_or_an_srl_error(embedding_raster_file, pts):
    before = digest(embedding_raster_file)
    xy = _map_xy(pts)
    try:
        query = Query().add_pixels(str(embedding_raster_file), xy)
    except SRLError as exc:
        event(type(exc).__name__)
    else:
        event("result")
        assert np.isfinite(query.matrix()).all()
    assert digest(embedding_raster_file) == before


# -- model cards ---------------------------------------------------------------------------------
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
sane = st.integers(1, 12)
weird = st.one_of(st.integers(-2, 300), st.floats(-1, 300), st.sampled_from([0, 10**9, "4", None, [3], 2.5]))
small = st.one_of(sane, sane, sane, weird)  # mostly usable, so that checks past the first are reached


def _section(names) -> st.SearchStrategy:
    """A config section: a known name with plausible, out-of-range or wrong-typed parameters."""
    keys = [
        "legendre_polys",
        "num_features",
        "sigma",
        "dim_hidden",
        "num_layers",
        "dim_out",
        "frequency_num",
        "min_radius",
        "max_radius",
        "cells",
        "num_branches",
        "num_anchors",
        "kernel_size",
        "dropout",
    ]
    return st.fixed_dictionaries({"name": st.sampled_from(sorted(names))}, optional={k: small for k in keys})


location_config = st.fixed_dictionaries({"encoding": _section(ENCODINGS), "network": _section(NETWORKS)})
tile_config = st.fixed_dictionaries(
    {},
    optional={
        "in_channels": small,
        "variant": st.sampled_from(["compact", "tilenet", "x"]),
        "z_dim": small,
        "widths": st.lists(small, max_size=3),
        "blocks": st.lists(small, max_size=4),
    },
)
tile_inputs = st.fixed_dictionaries(
    {},
    optional={
        "tile_size": small,
        "pixel_size_m": small,
        "bands": json_value,
        "normalisation": st.fixed_dictionaries(
            {}, optional={"mean": st.lists(small, max_size=4), "std": st.lists(small, max_size=4)}
        ),
    },
)


@st.composite
def cards(draw):
    kind = draw(st.sampled_from(["tile", "location"]) | mostly("tile", "other"))
    card = {
        "id": "fuzz",
        "kind": kind,
        "architecture": "tilenet" if kind == "tile" else "location_encoder",
        "config": draw(tile_config if kind == "tile" else location_config),
        "embedding_size": draw(small),
        "inputs": draw(tile_inputs) if kind == "tile" else {},
    }
    for key in draw(
        st.lists(st.sampled_from([*card, "description", "licence", "format_version"]), max_size=2)
    ):
        card[key] = draw(json_value)
    return card


@FUZZ
@given(cards())
def test_any_card_is_a_usable_card_or_a_model_error(card):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / CARD_NAME
        path.write_text(json.dumps(card), encoding="utf-8")
        before = digest(path)
        try:
            parsed = read_card(folder)
            assert isinstance(parsed, ModelCard)
            assert isinstance(parsed.id, str) and isinstance(parsed.config, dict)
            assert isinstance(parsed.embedding_size, int) and parsed.embedding_size >= 1
            assert isinstance(parsed.inputs, dict) and isinstance(parsed.description, str)
            if parsed.kind == "tile":
                inputs = tile_model_inputs(parsed)
                assert inputs.tile_size >= 1 and min(inputs.std) > 0
            module = build_module(parsed)
            assert sum(p.numel() for p in module.parameters()) >= 0
            event("result")
        except SRLError as exc:
            event(type(exc).__name__)
        assert digest(path) == before
