"""Issue 11, "Data loss": no input, folder or earlier output of the user's is ever destroyed.

Each case of the issue is reproduced through the public API, the command line and (where the
case came from there) Processing, and the user's files are compared byte for byte afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from analysis_synthetic import GEOTRANSFORM, clustered_embeddings, write_embedding_raster
from conftest import LANDSAT_CROP, REPO_ROOT, TINY_LOCATION_MODEL_ID, TINY_TILE_MODEL_ID, half_polygon
from osgeo import gdal, ogr
from test_importers import satclip_checkpoint

from srl_core.analysis.clustering import apply_kmeans_raster, cluster_points, fit_kmeans_raster
from srl_core.analysis.interpolation import interpolate_points
from srl_core.analysis.similarity import Query, similarity_points, similarity_raster
from srl_core.analysis.views import rgb_view_points, rgb_view_raster
from srl_core.bundle import ModelCard, load_model, save_bundle
from srl_core.cli import main
from srl_core.errors import InputError, OutputError
from srl_core.importers import install
from srl_core.location import embed_points_file
from srl_core.model_ids import check_model_id, check_new_bundle
from srl_core.models.location import build_from_config
from srl_core.tiles import embed_raster


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def thesis(tmp_path) -> Path:
    """A folder of the user's that is not a model bundle."""
    folder = tmp_path / "thesis"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.docx").write_bytes(b"PK\x03\x04 four years of work")
    (folder / "sub" / "data.csv").write_text("x,y\n1,2\n")
    return folder


def _card(model_id: str = "tiny") -> ModelCard:
    config = {
        "encoding": {"name": "sphericalharmonics", "legendre_polys": 2},
        "network": {"name": "linear", "dim_out": 4},
    }
    return ModelCard(
        id=model_id, kind="location", architecture="location_encoder", config=config, embedding_size=4
    )


def _module():
    return build_from_config(_card().config)


# -- saving a model bundle ------------------------------------------------------------------


def test_save_bundle_refuses_a_folder_that_is_not_a_bundle(thesis):
    before = snapshot(thesis.parent)
    with pytest.raises(OutputError, match="not a model bundle folder.*thesis.docx"):
        save_bundle(_module(), _card(), thesis)
    assert snapshot(thesis.parent) == before


def test_save_bundle_replaces_an_older_bundle_only_when_asked(tmp_path):
    folder = save_bundle(_module(), _card(), tmp_path / "tiny")
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="already holds a model bundle"):
        save_bundle(_module(), _card(), folder)
    assert snapshot(tmp_path) == before
    save_bundle(_module(), _card(), folder, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny"]
    assert load_model(folder).card.id == "tiny"


def test_overwrite_never_replaces_a_foreign_card_or_another_models_bundle(tmp_path):
    """A folder holding only someone's card.json ({"my": "settings"}) was taken for an older bundle and
    replaced; --overwrite into a folder holding model 'b' while writing 'a' deleted 'b' unnamed."""
    foreign = tmp_path / "settings"
    foreign.mkdir()
    (foreign / "card.json").write_text('{"my": "settings"}')
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="not a readable SRL model card"):
        save_bundle(_module(), _card(), foreign, overwrite=True)
    assert snapshot(tmp_path) == before
    other = save_bundle(_module(), _card("b"), tmp_path / "a")
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="holds the model 'b'; writing 'a' there would delete it"):
        save_bundle(_module(), _card("a"), other, overwrite=True)
    with pytest.raises(OutputError, match="holds the model 'b'"):
        check_new_bundle("a", other, overwrite=True)
    assert snapshot(tmp_path) == before


def test_save_bundle_into_an_empty_folder(tmp_path):
    (tmp_path / "new").mkdir()
    save_bundle(_module(), _card(), tmp_path / "new")
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["card.json", "weights.safetensors"]


@pytest.mark.parametrize("model_id", ["", "  ", ".", "..", "a/b", "..\\evil", ".hidden", "x" * 101])
def test_unusable_model_ids_are_refused(model_id):
    with pytest.raises(InputError, match="model id"):
        check_model_id(model_id)


def test_bundled_model_ids_are_refused_for_user_models(user_models_dir):
    with pytest.raises(InputError, match="shipped with SRL"):
        check_new_bundle("tile2vec-l8-rgb-compact")
    for reserved in ("auto", "Local"):  # installed, such a model could never be chosen
        with pytest.raises(InputError, match="automatic model choices"):
            check_new_bundle(reserved)
    assert not list(user_models_dir.iterdir())


def test_reinstalling_an_id_needs_overwrite(user_models_dir):
    loaded = load_model(save_bundle(_module(), _card("mine"), user_models_dir / "mine"))
    before = snapshot(user_models_dir)
    with pytest.raises(OutputError, match="already holds a model bundle.*overwrite"):
        install(loaded)
    assert snapshot(user_models_dir) == before
    install(loaded, overwrite=True)
    assert load_model("mine").card.id == "mine"


def test_an_id_installed_in_another_folder_is_refused(user_models_dir):
    save_bundle(_module(), _card("mine"), user_models_dir / "renamed")
    with pytest.raises(InputError, match="already installed"):
        check_new_bundle("mine", overwrite=True)


def test_cli_import_model_twice_needs_overwrite(user_models_dir, tmp_path, capsys):
    checkpoint = tmp_path / "small.ckpt"
    satclip_checkpoint(checkpoint, legendre_polys=4)
    assert main(["import-model", "satclip", str(checkpoint), "--id", "sat"]) == 0
    before = snapshot(user_models_dir)
    capsys.readouterr()
    assert main(["import-model", "satclip", str(checkpoint), "--id", "sat"]) == 2
    assert "already holds a model bundle" in capsys.readouterr().err
    assert snapshot(user_models_dir) == before
    assert main(["import-model", "satclip", str(checkpoint), "--id", "sat", "--overwrite"]) == 0
    assert load_model("sat").card.embedding_size == 16
    for bad in (".", "..", "tile2vec-l8-rgb-compact"):
        assert main(["import-model", "satclip", str(checkpoint), "--id", bad]) == 2
    assert sorted(p.name for p in user_models_dir.iterdir()) == ["sat"]


def test_training_cli_refuses_a_user_folder_before_training(thesis, user_models_dir):
    before = snapshot(thesis.parent)
    env = {**os.environ, "SRL_MODELS_DIR": str(user_models_dir), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "training", "tile2vec", str(LANDSAT_CROP), "--out", str(thesis), "--quiet"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "not a model bundle folder" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(thesis.parent) == before


TRAIN = {
    "srl:train_tile_encoder": {"INPUT": [str(LANDSAT_CROP)], "TILE_SIZE": 16, "Z_DIM": 8, "STEPS": 2,
                               "BATCH_SIZE": 4, "DEVICE": "cpu"},
    "srl:train_location_encoder": {"STEPS": 2, "BATCH_SIZE": 4, "DEVICE": "cpu"},
}  # fmt: skip


@pytest.mark.parametrize("alg", sorted(TRAIN))
def test_processing_training_into_a_user_folder_is_refused(srl_provider, user_models_dir, thesis, alg):
    import processing
    from qgis.core import QgsProcessingException

    before = snapshot(thesis.parent)
    with pytest.raises(QgsProcessingException, match="not a model bundle folder"):
        processing.run(alg, {**TRAIN[alg], "MODEL_ID": "fine", "OUTPUT": str(thesis)})
    assert snapshot(thesis.parent) == before


@pytest.mark.parametrize("model_id", [".", "..", "", "a/b", TINY_TILE_MODEL_ID, "tile2vec-l8-rgb-compact"])
@pytest.mark.parametrize("alg", sorted(TRAIN))
def test_processing_training_with_a_dangerous_id_is_refused(
    srl_provider, tiny_tile_model, user_models_dir, alg, model_id
):
    import processing
    from qgis.core import QgsProcessingException

    (user_models_dir.parent / "neighbour.txt").write_text("keep me")
    before = snapshot(user_models_dir.parent)
    with pytest.raises(QgsProcessingException, match="model id|shipped with SRL|already holds|MODEL_ID"):
        processing.run(alg, {**TRAIN[alg], "MODEL_ID": model_id})
    assert snapshot(user_models_dir.parent) == before


def test_processing_import_over_an_installed_id_needs_overwrite(srl_provider, user_models_dir, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    checkpoint = tmp_path / "small.ckpt"
    satclip_checkpoint(checkpoint, legendre_polys=4)
    params = {"FORMAT": 1, "CHECKPOINT": str(checkpoint), "NEW_ID": "sat"}
    assert processing.run("srl:import_checkpoint", params)["MODEL_ID"] == "sat"
    before = snapshot(user_models_dir)
    with pytest.raises(QgsProcessingException, match="already holds a model bundle"):
        processing.run("srl:import_checkpoint", params)
    assert snapshot(user_models_dir) == before
    assert processing.run("srl:import_checkpoint", {**params, "OVERWRITE": True})["MODEL_ID"] == "sat"


# -- an output that is an input -------------------------------------------------------------


@pytest.fixture
def raster(tmp_path) -> str:
    data, _ = clustered_embeddings(2, 6, 12, 16, seed=3)
    return write_embedding_raster(tmp_path / "emb.tif", data, model_id="m1")


def _pixel() -> list[str]:
    return [str(GEOTRANSFORM[0] + 25), str(GEOTRANSFORM[3] - 55)]


def _multi_layer_points(tmp_path: Path, embedding_points: Path) -> Path:
    """A GeoPackage with the embedding points and a second layer the user also keeps there."""
    ds = ogr.Open(str(embedding_points), update=1)
    other = ds.CreateLayer("roads", None, ogr.wkbLineString)
    other.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    feature = ogr.Feature(other.GetLayerDefn())
    feature.SetField("name", "main street")
    other.CreateFeature(feature)
    ds = None
    return embedding_points


CLI_SAME = {
    "cluster raster": lambda r, p, m: ["cluster", r, r, "-k", "2"],
    "cluster points": lambda r, p, m: ["cluster", p, p, "-k", "2"],
    "rgb-view raster": lambda r, p, m: ["rgb-view", r, r],
    "rgb-view points": lambda r, p, m: ["rgb-view", p, p],
    "similarity raster": lambda r, p, m: ["similarity", r, r, "--pixel", *_pixel()],
    "similarity points": lambda r, p, m: ["similarity", p, p, "--fid", "1"],
    "top-k onto the query raster": lambda r, p, m: ["top-k", p, r, "--fid", "1", "--query-raster", r],
    "apply-clusters onto the model": lambda r, p, m: ["apply-clusters", m, r, m],
    "embed-points multi-layer": lambda r, p, m: ["embed-points", p, p, "--model", TINY_LOCATION_MODEL_ID],
    "interpolate prediction = uncertainty": lambda r, p, m: ["interpolate", p, "value", r + ".p.tif",
                                                               r + ".p.tif", "--resolution", "0.1"],
    "interpolate onto the points": lambda r, p, m: ["interpolate", p, "value", p, r + ".u.tif",
                                                      "--resolution", "0.1"],
    "cluster model onto the input": lambda r, p, m: ["cluster", r, r + ".c.tif", "--save-model", r],
    "cluster output = model": lambda r, p, m: ["cluster", r, m, "--save-model", m],
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CLI_SAME))
def test_cli_never_writes_over_an_input(
    case, raster, embedding_points, tiny_location_model, tmp_path, capsys
):
    points = str(_multi_layer_points(tmp_path, embedding_points))
    model = str(tmp_path / "km.safetensors")
    fit_kmeans_raster(raster, 2).save(model)
    before = snapshot(tmp_path)
    assert main(CLI_SAME[case](raster, points, model)) == 2
    err = capsys.readouterr().err
    refusals = ("would overwrite the input", "Two outputs of this run are the same file",
                "--save-model must end in .safetensors")  # a raster's name is never a cluster model's
    assert any(refusal in err for refusal in refusals)
    assert "Traceback" not in err
    assert snapshot(tmp_path) == before


def test_embed_raster_mask_is_never_the_output(tiny_tile_model, tmp_path, capsys):
    mask = tmp_path / "mask.tif"
    gdal.Translate(str(mask), str(LANDSAT_CROP), bandList=[1])
    before = snapshot(tmp_path)
    args = ["embed-raster", str(LANDSAT_CROP), str(mask), "--model", TINY_TILE_MODEL_ID, "--mask", str(mask)]
    assert main(args) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    with pytest.raises(OutputError, match="would overwrite the input"):
        embed_raster(LANDSAT_CROP, mask, TINY_TILE_MODEL_ID, mask_path=mask)
    assert snapshot(tmp_path) == before
    layers = half_polygon(LANDSAT_CROP, tmp_path / "layers.gpkg")  # one layer of it, named: still its file
    before = snapshot(tmp_path)
    args = ["embed-raster", str(LANDSAT_CROP), str(layers), "--model", TINY_TILE_MODEL_ID, "--mask",
            f"{layers}|layername=land"]
    assert main(args) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    with pytest.raises(OutputError, match="would overwrite the input"):
        embed_raster(LANDSAT_CROP, layers, TINY_TILE_MODEL_ID, mask_path=f"{layers}|layername=land")
    assert snapshot(tmp_path) == before


def test_api_never_writes_over_an_input_even_under_another_name(raster, embedding_points, tmp_path):
    """Same file through a hard link, a symbolic link and a relative path: all refused."""
    link, hard = tmp_path / "link.tif", tmp_path / "hard.tif"
    link.symlink_to(raster)
    os.link(raster, hard)
    relative = os.path.relpath(raster)
    query = Query().add_vectors(np.ones((1, 6), np.float32), "m1")
    points = str(embedding_points)
    before = snapshot(tmp_path)
    model = fit_kmeans_raster(raster, 2)
    for call in (
        lambda: similarity_raster(raster, query, str(link)),
        lambda: similarity_raster(raster, query, str(hard)),
        lambda: rgb_view_raster(str(hard), relative),
        lambda: apply_kmeans_raster(model, raster, str(hard)),
        lambda: cluster_points(points, points, n_clusters=2),
        lambda: similarity_points(points, Query().add_points(points, [1]), points),
        lambda: rgb_view_points(points, points),
        lambda: interpolate_points(points, "value", points, str(tmp_path / "u.tif"), 0.1),
    ):
        with pytest.raises(OutputError, match="would overwrite the input"):
            call()
    with pytest.raises(OutputError, match="Two outputs"):
        interpolate_points(points, "value", str(tmp_path / "p.tif"), str(tmp_path / "p.tif"), 0.1)
    assert snapshot(tmp_path) == before


def test_embed_points_keeps_the_other_layers_of_a_geopackage(tiny_location_model, embedding_points, tmp_path):
    points = _multi_layer_points(tmp_path, embedding_points)
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match="would overwrite the input"):
        embed_points_file(points, points, TINY_LOCATION_MODEL_ID)
    assert snapshot(tmp_path) == before


PROCESSING_SAME = {
    "srl:cluster": lambda r, m: {"INPUT": r, "K": 2, "OUTPUT": r},
    "srl:rgb_view": lambda r, m: {"INPUT": r, "OUTPUT": r},
    "srl:similarity": lambda r, m: {"INPUT": r, "OUTPUT": r,
                                     "QUERY_POINT": f"{_pixel()[0]},{_pixel()[1]} [EPSG:32631]"},
    "srl:apply_cluster_model": lambda r, m: {"INPUT": r, "CLUSTER_MODEL": m, "OUTPUT": m},
}  # fmt: skip


@pytest.mark.parametrize("alg", sorted(PROCESSING_SAME))
def test_processing_never_writes_over_an_input(srl_provider, alg, raster, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    model = str(tmp_path / "km.safetensors")
    fit_kmeans_raster(raster, 2).save(model)
    before = snapshot(tmp_path)
    with pytest.raises(QgsProcessingException, match="would overwrite the input"):
        processing.run(alg, PROCESSING_SAME[alg](raster, model))
    assert snapshot(tmp_path) == before


MODEL_SAME = {
    "srl:embed_points": lambda pts, mask: {"INPUT": f"{pts}|layername=synthetic_points",
                                           "MODEL": TINY_LOCATION_MODEL_ID, "OUTPUT": pts},
    "srl:sample_tiles_at_points": lambda pts, mask: {"INPUT": str(LANDSAT_CROP), "POINTS": pts,
                                           "MODEL": TINY_TILE_MODEL_ID, "OUTPUT": pts},
    "srl:embed_raster": lambda pts, mask: {"INPUT": str(LANDSAT_CROP), "MODEL": TINY_TILE_MODEL_ID,
                                           "MASK": mask, "OUTPUT": mask},
    "srl:interpolate": lambda pts, mask: {"INPUT": pts, "FIELD": "value", "RESOLUTION": 0.1,
                                          "OUTPUT": mask + ".p.tif", "OUTPUT_UNCERTAINTY": mask + ".p.tif"},
}  # fmt: skip


@pytest.mark.parametrize("alg", sorted(MODEL_SAME))
def test_processing_embedding_never_writes_over_an_input(
    srl_provider, tiny_tile_model, tiny_location_model, embedding_points, tmp_path, alg
):
    import processing
    from qgis.core import QgsProcessingException

    points = str(_multi_layer_points(tmp_path, embedding_points))
    mask = str(tmp_path / "mask.tif")
    gdal.Translate(mask, str(LANDSAT_CROP), bandList=[1])
    before = snapshot(tmp_path)
    with pytest.raises(QgsProcessingException, match="would overwrite the input|Two outputs"):
        processing.run(alg, MODEL_SAME[alg](points, mask))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("alg", ["srl:embed_points", "srl:sample_tiles_at_points"])
def test_processing_with_selected_features_only_never_writes_over_the_layer(
    srl_provider, tiny_tile_model, tiny_location_model, embedding_points, tmp_path, alg
):
    """"Selected features only" hands the algorithm a feature source definition, not a layer: its file
    was missed by the output-is-an-input check, and the output written over the whole layer."""
    import processing
    from qgis.core import (
        QgsProcessingException,
        QgsProcessingFeatureSourceDefinition,
        QgsProject,
        QgsVectorLayer,
    )

    points = str(_multi_layer_points(tmp_path, embedding_points))
    layer = QgsVectorLayer(f"{points}|layername=synthetic_points", "pts", "ogr")
    QgsProject.instance().addMapLayer(layer)
    layer.selectByIds([1, 2])
    chosen = QgsProcessingFeatureSourceDefinition(layer.id(), True)
    parameters = MODEL_SAME[alg](chosen, None)
    parameters["POINTS" if "POINTS" in parameters else "INPUT"] = chosen
    parameters["OUTPUT"] = points
    before = snapshot(tmp_path)
    try:
        with pytest.raises(QgsProcessingException, match="would overwrite the input"):
            processing.run(alg, parameters)
    finally:
        QgsProject.instance().removeMapLayer(layer.id())
    assert snapshot(tmp_path) == before


def test_a_layer_in_a_geopackage_as_output_is_refused_by_name(srl_provider, embedding_points, tmp_path):
    """"Save to GeoPackage..." gives ``ogr:dbname='...' table="..."``, which SRL once took for a path
    ("Output folder does not exist: .../ogr:dbname=..."). The dialog no longer offers it, and a script
    or model that passes one is told what to give instead; the GeoPackage is left as it was."""
    import processing
    from qgis.core import QgsApplication, QgsProcessingException

    assert not QgsApplication.processingRegistry().providerById("srl").supportsNonFileBasedOutput()
    project = tmp_path / "project.gpkg"
    gdal.VectorTranslate(str(project), str(embedding_points), layerName="keep_me")
    before = snapshot(tmp_path)
    uri = f"ogr:dbname='{project}' table=\"clusters\" (geom)"
    with pytest.raises(QgsProcessingException, match="must be a file .* not a layer in a GeoPackage"):
        processing.run("srl:cluster", {"INPUT": str(embedding_points), "K": 2, "OUTPUT_POINTS": uri})
    assert snapshot(tmp_path) == before


# -- stale sidecars -------------------------------------------------------------------------


STALE_AUX = """<PAMDataset><PAMRasterBand band="1"><Metadata>
<MDI key="STATISTICS_MINIMUM">1</MDI><MDI key="STATISTICS_MAXIMUM">2</MDI>
</Metadata></PAMRasterBand></PAMDataset>
"""


def test_replacing_an_output_drops_its_stale_sidecars(raster, tmp_path, capsys):
    out = tmp_path / "sim.tif"
    assert main(["similarity", raster, str(out), "--pixel", *_pixel()]) == 0
    Path(str(out) + ".aux.xml").write_text(STALE_AUX)
    Path(str(out) + ".ovr").write_bytes(b"old overviews")
    ds = gdal.Open(str(out))
    assert ds.GetRasterBand(1).GetMetadataItem("STATISTICS_MAXIMUM") == "2"
    ds = None
    assert main(["similarity", raster, str(out), "--pixel", *_pixel()]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.tif", "sim.tif"]
    ds = gdal.Open(str(out))
    assert ds.GetRasterBand(1).GetMetadataItem("STATISTICS_MAXIMUM") is None
    assert ds.GetRasterBand(1).ComputeRasterMinMax(False)[1] > 0.99


# -- every output checked before work, all written or none --------------------------------


def test_cluster_save_model_to_a_missing_folder_writes_nothing(raster, tmp_path, capsys):
    before = snapshot(tmp_path)
    missing = str(tmp_path / "missing" / "x.safetensors")
    args = ["cluster", raster, str(tmp_path / "c.tif"), "--save-model", missing]
    assert main(args) == 2
    assert "Output folder does not exist" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_processing_cluster_save_model_to_a_missing_folder_writes_nothing(srl_provider, raster, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    before = snapshot(tmp_path)
    params = {
        "INPUT": raster,
        "K": 2,
        "OUTPUT": str(tmp_path / "c.tif"),
        "OUTPUT_MODEL": str(tmp_path / "missing" / "x.safetensors"),
    }
    with pytest.raises(QgsProcessingException, match="Output folder does not exist"):
        processing.run("srl:cluster", params)
    assert snapshot(tmp_path) == before


def test_a_failing_run_writes_none_of_its_outputs(raster, tmp_path, monkeypatch, capsys):
    """The class raster is complete when saving the model fails: it is not kept either."""
    from srl_core.analysis.clustering import EmbeddingKMeans

    def fail(self, path):
        raise OutputError("disk full (simulated)")

    monkeypatch.setattr(EmbeddingKMeans, "save", fail)
    before = snapshot(tmp_path)
    args = ["cluster", raster, str(tmp_path / "c.tif"), "--save-model", str(tmp_path / "m.safetensors")]
    assert main(args) == 2
    assert "disk full" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_a_geopackage_of_several_layers_is_never_an_output(tmp_path, tiny_location_model):
    """A project's GeoPackage of roads and parcels named as the output was replaced whole by the one
    layer written; a GeoPackage of one layer the analyst names is theirs to replace, as before."""
    from osgeo import ogr

    from srl_core.location import embed_points_file

    samples = str(REPO_ROOT / "resources" / "sample_data" / "meuse.gpkg")
    project = tmp_path / "project.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(project))
    for name in ("roads", "parcels"):
        ds.CreateLayer(name, None, ogr.wkbPoint)
    ds = None
    before = project.read_bytes()
    with pytest.raises(OutputError, match=r"holding 2 layers \((roads, parcels|parcels, roads)\)"):
        embed_points_file(samples, project, tiny_location_model, device="cpu")
    assert project.read_bytes() == before
    # one layer beside a QGIS project stored in the file (a table, not a layer): both went (an audit)
    import sqlite3

    stored = tmp_path / "stored.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(stored))
    ds.CreateLayer("parcels", None, ogr.wkbPoint)
    ds = None
    with sqlite3.connect(stored) as db:
        db.execute("CREATE TABLE qgis_projects(name TEXT PRIMARY KEY, metadata BLOB, content BLOB)")
        db.execute("INSERT INTO qgis_projects VALUES('myproject', '{}', X'00112233')")
    before = stored.read_bytes()
    with pytest.raises(OutputError, match=r"holding 2 layers and tables \(parcels, qgis_projects\)"):
        embed_points_file(samples, stored, tiny_location_model, device="cpu")
    assert stored.read_bytes() == before
    single = tmp_path / "single.gpkg"
    embed_points_file(samples, single, tiny_location_model, device="cpu")
    embed_points_file(samples, single, tiny_location_model, device="cpu")  # replaced: named as the output


def test_a_full_disk_while_saving_a_cluster_model_is_said_before_any_written_message(raster, tmp_path,
                                                                                    monkeypatch, capsys):
    """A SafetensorError ended in "a bug in SRL", after "3 clusters written to c.tif" for a file then
    discarded (found by an audit)."""
    from safetensors import SafetensorError

    import srl_core.analysis.clustering as clustering

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(clustering, "save_file", full)
    before = snapshot(tmp_path)
    args = ["cluster", raster, str(tmp_path / "c.tif"), "--save-model", str(tmp_path / "m.safetensors")]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert "Could not write the cluster model" in err and "No space left" in err and "bug" not in err
    assert "written" not in out
    assert snapshot(tmp_path) == before


def test_a_point_output_on_a_full_disk_is_a_clear_error(tmp_path, monkeypatch):
    """GDAL fails to create the GeoPackage with an empty RuntimeError: "internal error: RuntimeError: ."."""
    from osgeo import ogr

    from srl_core.vector.points import write_points

    driver = ogr.GetDriverByName("GPKG")

    class Full:
        def CreateDataSource(self, path):  # noqa: N802 (GDAL's name)
            raise RuntimeError("")

    monkeypatch.setattr(ogr, "GetDriverByName", lambda name: Full() if name == "GPKG" else driver)
    refused = r"Could not write .*p.gpkg: GDAL gave no reason\. Check the free space"
    with pytest.raises(OutputError, match=refused):
        write_points(tmp_path / "p.gpkg", np.zeros((2, 2)), "", {"a": [1, 2]})
    assert list(tmp_path.iterdir()) == []
