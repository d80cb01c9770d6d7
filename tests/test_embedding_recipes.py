"""A cluster model or a query from one set of embeddings applied to another made otherwise (found by an
audit of the raster analyses): other bands gave other classes on half the tiles without a word, and
embeddings of another size ended in "a bug in SRL" (a matrix product of mismatched sizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from srl_core.analysis import api
from srl_core.analysis.clustering import EmbeddingKMeans
from srl_core.analysis.similarity import Query
from srl_core.errors import InputError
from srl_core.tiles import embed_raster

CROP = str(Path(__file__).resolve().parent / "data" / "nc_landsat_crop.tif")  # 128 x 128, 5 bands


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> dict[str, str]:
    """The crop embedded with one model from bands 1,2,3 and 3,2,1, bandstats from 3 and 5 bands, and
    MOSAIKS from the crop and from a copy of its other half."""
    tmp = tmp_path_factory.mktemp("recipes")
    gdal.Translate(str(tmp / "half.tif"), CROP, srcWin=[0, 0, 64, 128])
    runs = {
        "rgb": (CROP, "tile2vec-l8-rgb-compact", [1, 2, 3]),
        "bgr": (CROP, "tile2vec-l8-rgb-compact", [3, 2, 1]),
        "stats3": (CROP, "bandstats", [1, 2, 3]),
        "stats5": (CROP, "bandstats", None),
        "mosaiks": (CROP, "mosaiks-rcf", None),
        "mosaiks_half": (str(tmp / "half.tif"), "mosaiks-rcf", None),
    }
    out = {}
    for name, (raster, model, bands) in runs.items():
        out[name] = str(tmp / f"{name}.tif")
        embed_raster(raster, out[name], model, bands=bands, tile_size=16, stride=8, device="cpu",
                     normalisation="raster")
    return out


def _a_pixel(path: str) -> np.ndarray:
    gt = gdal.Open(path).GetGeoTransform()
    return np.array([[gt[0] + 5.5 * gt[1], gt[3] + 5.5 * gt[5]]])


def test_embeddings_of_another_size_are_refused_by_name(embedded, tmp_path):
    query = Query().add_pixels(embedded["stats3"], _a_pixel(embedded["stats3"]))
    for run in (lambda: api.similarity(embedded["stats5"], query, str(tmp_path / "s.tif")),
                lambda: api.similarity(embedded["stats5"], query, None, top_k=3,
                                       top_k_output=str(tmp_path / "t.gpkg"))):
        with pytest.raises(InputError, match=r"6-value embeddings .* holds 10-value ones"):
            run()
    assert not list(tmp_path.iterdir())


def test_classes_applied_to_embeddings_of_other_bands_are_said(embedded, tmp_path):
    fitted = api.cluster(embedded["rgb"], str(tmp_path / "c.tif"), n_clusters=4)
    assert not any("come from embeddings" in w for w in fitted.warnings)
    model_path = fitted.model.save(str(tmp_path / "k.safetensors"))
    model = EmbeddingKMeans.load(str(model_path))  # the recipe is saved with the model
    assert model.recipe_ == fitted.model.recipe_ and model.recipe_.bands == "1,2,3"
    applied = api.apply_clusters(model, embedded["bgr"], str(tmp_path / "a.tif"))
    said = [w for w in applied.warnings if "made from bands 1,2,3 of their raster and 3,2,1" in w]
    assert len(said) == 1
    assert said[0] in gdal.Open(str(tmp_path / "a.tif")).GetMetadataItem("SRL_QUALITY_WARNING")
    same = api.apply_clusters(model, embedded["rgb"], str(tmp_path / "same.tif"))
    assert not any("come from embeddings" in w for w in same.warnings)


def test_a_query_from_embeddings_of_other_bands_is_said(embedded, tmp_path):
    query = Query().add_pixels(embedded["rgb"], _a_pixel(embedded["rgb"]))
    other = api.similarity(embedded["bgr"], query, str(tmp_path / "s.tif"))
    assert any("The query examples come from embeddings (rgb.tif) made from bands 1,2,3" in w
               for w in other.warnings)
    own = api.similarity(embedded["rgb"], query, str(tmp_path / "own.tif"))
    assert not any("come from embeddings" in w for w in own.warnings)


def test_mosaiks_features_of_another_raster_are_said(embedded, tmp_path):
    query = Query().add_pixels(embedded["mosaiks"], _a_pixel(embedded["mosaiks"]))
    result = api.similarity(embedded["mosaiks_half"], query, str(tmp_path / "m.tif"))
    assert any("MOSAIKS draws its filters from the raster it embeds" in w for w in result.warnings)
    own = api.similarity(embedded["mosaiks"], query, str(tmp_path / "own.tif"))
    assert not any("come from embeddings" in w for w in own.warnings)


def test_bands_chosen_by_name_at_other_positions_are_the_same_bands(tmp_path):
    """The sample scene and a copy with its NIR band put first: blue, green, red are chosen by name as
    1,2,3 and 2,3,4, the same bands, and were said to 'mean other things' (found by a review)."""
    scene = Path(__file__).resolve().parents[1] / "resources" / "sample_data" / "nc_landsat7_2000.tif"
    gdal.Translate(str(tmp_path / "nir_first.tif"), str(scene), bandList=[4, 1, 2, 3])
    a, b = str(tmp_path / "a.tif"), str(tmp_path / "b.tif")
    for raster, out in ((scene, a), (tmp_path / "nir_first.tif", b)):
        embed_raster(str(raster), out, "tile2vec-l8-rgb-compact", stride=16, device="cpu")
    assert gdal.Open(b).GetMetadataItem("SRL_BANDS") == "2,3,4"
    model = api.cluster(a, str(tmp_path / "ca.tif"), n_clusters=3).model
    applied = api.apply_clusters(model, b, str(tmp_path / "cb.tif"))
    assert not any("come from embeddings" in w for w in applied.warnings)


def test_settings_an_earlier_version_did_not_record_are_no_difference(embedded, tmp_path):
    """MOSAIKS outputs record the band means their filters were drawn at since 28 Nov 2026; one made
    before, without them, was said to come from other settings, its embeddings identical (a review)."""
    import json

    earlier = tmp_path / "earlier.tif"
    gdal.Translate(str(earlier), embedded["mosaiks"])
    ds = gdal.Open(str(earlier), gdal.GA_Update)
    settings = json.loads(ds.GetMetadataItem("SRL_MODEL_SETTINGS"))
    settings.pop("filters_drawn_at_band_means")
    ds.SetMetadataItem("SRL_MODEL_SETTINGS", json.dumps(settings, sort_keys=True))
    ds = None
    query = Query().add_pixels(embedded["mosaiks"], _a_pixel(embedded["mosaiks"]))
    result = api.similarity(str(earlier), query, str(tmp_path / "s.tif"))
    assert not any("come from embeddings" in w for w in result.warnings)


def test_classes_from_a_masked_run_applied_to_an_unmasked_one_are_said(embedded, tmp_path):
    """A run with a mask standardises by the raster's statistics inside it (land only, say): classes fitted
    there and applied to the whole raster's embeddings mean something else; the recipe did not record it."""
    from conftest import half_polygon

    land = half_polygon(Path(CROP), tmp_path / "land.gpkg")
    masked = str(tmp_path / "masked.tif")
    embed_raster(CROP, masked, "tile2vec-l8-rgb-compact", bands=[1, 2, 3], tile_size=16, stride=8,
                 device="cpu", normalisation="raster", mask_path=str(land))
    area = gdal.Open(masked).GetMetadataItem("SRL_STATISTICS_AREA")
    assert area == "the raster inside the mask land.gpkg"
    assert gdal.Open(embedded["rgb"]).GetMetadataItem("SRL_STATISTICS_AREA") == "the whole raster"
    model = api.cluster(masked, str(tmp_path / "c.tif"), n_clusters=3).model
    applied = api.apply_clusters(model, embedded["rgb"], str(tmp_path / "a.tif"))
    assert any("standardised by statistics of the raster inside the mask land.gpkg there and of the whole "
               "raster here" in w for w in applied.warnings)
    again = api.apply_clusters(model, masked, str(tmp_path / "again.tif"))
    assert not any("come from embeddings" in w for w in again.warnings)
