"""One Processing algorithm per module; :func:`algorithms` lists what the provider registers.

The training algorithms need the project's ``training`` package beside ``srl_core``; where
it is not shipped they are simply not offered.
"""

from __future__ import annotations

import importlib.util

from .apply_cluster_model import ApplyClusterModelAlgorithm
from .cluster import ClusterAlgorithm
from .embed_points import EmbedPointsAlgorithm
from .embed_raster import EmbedRasterAlgorithm
from .import_checkpoint import ImportCheckpointAlgorithm
from .interpolate import InterpolateAlgorithm
from .list_models import ListModelsAlgorithm
from .rgb_view import RgbViewAlgorithm
from .sample_tiles import SampleTilesAtPointsAlgorithm
from .similarity import SimilarityAlgorithm
from .train_location_encoder import TrainLocationEncoderAlgorithm
from .train_tile_encoder import TrainTileEncoderAlgorithm

ALGORITHMS = [
    ListModelsAlgorithm,
    EmbedRasterAlgorithm,
    EmbedPointsAlgorithm,
    SampleTilesAtPointsAlgorithm,
    ClusterAlgorithm,
    ApplyClusterModelAlgorithm,
    SimilarityAlgorithm,
    InterpolateAlgorithm,
    RgbViewAlgorithm,
    ImportCheckpointAlgorithm,
]
TRAINING_ALGORITHMS = [
    TrainTileEncoderAlgorithm,
    TrainLocationEncoderAlgorithm,
]


def training_available() -> bool:
    try:
        return all(
            importlib.util.find_spec(m) is not None for m in ("training.tile2vec", "training.location")
        )
    except ImportError:
        return False


def algorithms() -> list[type]:
    """The algorithm classes to register here."""
    return ALGORITHMS + (TRAINING_ALGORITHMS if training_available() else [])
