"""Every name a user, a dialog or a file can give, in one place, importable without torch or GDAL.

The QGIS plugin builds its dialogs from these when QGIS starts (importing the engines would
load torch, which takes seconds); srl_core checks its inputs against the same tuples, and
the command line offers them as choices. The first name of a tuple is the default.
"""

from __future__ import annotations

# What a model bundle holds (its card's "kind").
MODEL_KINDS = ("tile", "location")

# Where a model runs ("auto": the local GPU when there is one, the CPU otherwise).
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
# Arithmetic of a model run: exact float32, or mixed precision (autocast) on a CUDA GPU.
PRECISIONS = ("fp32", "mixed")

# CPU threads of the models and analyses (srl_core.threads): 0 asks for srl_core's default;
# the largest count a setting or dialog accepts.
AUTO_THREADS = 0
MAX_THREADS = 256

# How the tile engine standardises each band: the card's training statistics, the raster's own, or
# "auto": the raster's own when it looks unlike the training data. An exception to the first-is-default
# rule: the order is kept because Processing stores the choice by its index; the default is "auto".
NORMALISATIONS = ("model", "raster", "auto")
DEFAULT_NORMALISATION = "auto"

# Tile encoder variants (a tile card's config "variant"), see srl_core.models.tile.
TILE_VARIANTS = ("compact", "tilenet")
# Objectives a tile encoder trains with (training.tile2vec.loss): Tile2Vec's triplet margin loss, InfoNCE
# or VICReg.
TILE_OBJECTIVES = ("triplet", "infonce", "vicreg")
# how training standardises its rasters (training.tile2vec.rasters): pooled, each by its own, or chosen
TILE_TRAINING_NORMALISATIONS = ("auto", "pooled", "per-raster")

# Space2Vec (grid, theory) and Sphere2Vec (sphere*, dfs) multi-scale location encodings,
# see srl_core.models.location.multiscale.
MULTISCALE_NAMES = ("grid", "theory", "spherec", "spherecplus", "spherem", "spheremplus", "dfs")
# Names used by SatCLIP / TorchSpatial configs for srl_core's location encodings.
LOCATION_ENCODING_ALIASES = {
    "cartesian3d": "xyz",
    "spherical_harmonics": "sphericalharmonics",
    "space2vec_grid": "grid",
    "space2vec_theory": "theory",
}
# The location encodings interpolation can use: random Fourier features first, the recommended default.
ENCODINGS = ("rff", *MULTISCALE_NAMES)

# Published location-encoder checkpoints srl_core imports (srl_core.importers), by their authors' names.
CHECKPOINT_LABELS = {"geoclip": "GeoCLIP", "satclip": "SatCLIP"}

# Embedding rasters SRL did not make (srl_core.embedding_products): what a user may ask for
# ("auto": recognised from the file); "srl" is SRL's own rasters.
AUTO_PRODUCT = "auto"
SRL_PRODUCT = "srl"
ALPHAEARTH_PRODUCT = "alphaearth"
TESSERA_PRODUCT = "tessera"
FLOAT_PRODUCT = "float"
PRODUCT_CHOICES = (AUTO_PRODUCT, ALPHAEARTH_PRODUCT, TESSERA_PRODUCT, FLOAT_PRODUCT)

# Location model ids beside the bundles (srl_core.location_scale): the bundled model or local
# features, whichever suits the layer's extent; features fitted to the layer's own extent.
AUTO_LOCATION_MODEL = "auto"
LOCAL_LOCATION_MODEL = "local"

# Clustering methods: k-means (rasters and points), HDBSCAN (points only).
CLUSTER_METHODS = ("kmeans", "hdbscan")

# How several query examples combine: their prototype (mean) or the best match (max).
COMBINE_MODES = ("mean", "max")

# Metadata items of the files srl_core writes (GeoTIFF metadata, GeoPackage layer metadata).
KIND_KEY = "SRL_KIND"
MODEL_ID_KEY = "SRL_MODEL_ID"
SIZE_KEY = "SRL_EMBEDDING_SIZE"
TILE_SIZE_KEY = "SRL_TILE_SIZE"
STRIDE_KEY = "SRL_STRIDE"
CLUSTERS_KEY = "SRL_CLUSTERS"
CLASSES_KEY = "SRL_CLASSES"
QUERY_KEY = "SRL_QUERY"
PCA_VARIANCE_KEY = "SRL_PCA_VARIANCE"
SCALES_KEY = "SRL_SCALES"
CV_KEY = "SRL_CV"
MAX_DISTANCE_KEY = "SRL_MAX_DISTANCE"
BANDS_KEY = "SRL_BANDS"  # the raster bands an embedding raster was made from
NORMALISATION_KEY = "SRL_NORMALISATION"  # the standardisation used ("model" or "raster")
# Where the raster's own statistics were taken (normalisation "raster"): the whole raster, or inside a mask.
STATISTICS_AREA_KEY = "SRL_STATISTICS_AREA"
WHOLE_RASTER = "the whole raster"
MODEL_SETTINGS_KEY = "SRL_MODEL_SETTINGS"  # a training-free model's settings, seed included (JSON)
CHOICES_KEY = "SRL_CHOICES"  # why the bands and standardisation were chosen
QUALITY_WARNING_KEY = "SRL_QUALITY_WARNING"  # degenerate embeddings: said when the layer is loaded
PRODUCT_KEY = "SRL_SOURCE_PRODUCT"  # outputs of another product's embeddings: which product
DECODING_KEY = "SRL_DECODING"  # ... and how its values were decoded
# What OGR reports for a GeoPackage layer without a CRS (its srs_id 0 or -1): no CRS at all (the plugin
# checks QGIS's layers against these too, when it starts: nothing heavier may come with them).
UNDEFINED_CRS_NAMES = ("Undefined geographic SRS", "Undefined cartesian SRS")
# How embeddings were made (srl_core.embedding_recipe): what an output copying them keeps, so that the
# next analysis of the copy still compares them with others (copies lost it, and the checks went quiet).
RECIPE_KEYS = (BANDS_KEY, NORMALISATION_KEY, TILE_SIZE_KEY, MODEL_SETTINGS_KEY, CHOICES_KEY,
               STATISTICS_AREA_KEY)

# Values of SRL_KIND: embeddings, and the analyses' outputs.
TILE_KIND = "tile_embedding"
LOCATION_KIND = "location_embedding"
CLUSTERS_KIND = "clusters"
SIMILARITY_KIND = "similarity"
INTERPOLATION_KIND = "interpolation"
VIEW_KIND = "embedding_view"

# Field of tile embeddings sampled at points: 1 where the tile could be embedded, 0 where not.
VALID_FIELD = "emb_valid"

# One layer of a multi-layer file, as QGIS names it: 'land.gpkg|layername=coast' (masks accept it)
LAYER_SUFFIX = "|layername="
SUBSET_SUFFIX = "|subset="  # after the layer name: the layer's attribute filter in QGIS


def file_part(spec: str) -> str:
    """The file of ``FILE``, ``FILE|layername=LAYER`` or either with ``|subset=FILTER``."""
    return spec.partition(SUBSET_SUFFIX)[0].partition(LAYER_SUFFIX)[0]


def split_layer(spec: str) -> tuple[str, str, str]:
    """``(file, layer name, attribute filter)`` of a vector layer given as ``FILE``,
    ``FILE|layername=LAYER``, with ``|subset=FILTER`` after either (QGIS's own syntax; the filter in
    OGR SQL, as QGIS filters a layer of a file); missing parts are ''."""
    layer_spec, _, subset = str(spec).partition(SUBSET_SUFFIX)
    return file_part(layer_spec), layer_spec.partition(LAYER_SUFFIX)[2], subset
