"""One Processing algorithm per module; :func:`algorithms` lists what the provider registers.

The training algorithms need the project's ``training`` package beside ``srl_core``; where
it is not shipped they are simply not offered.
"""

from __future__ import annotations

import importlib.util

from .apply_cluster_model import ApplyClusterModelAlgorithm
from .cluster import ClusterAlgorithm
from .embed_raster import EmbedRasterAlgorithm
from .interpolate import InterpolateAlgorithm
from .list_models import ListModelsAlgorithm
from .rgb_view import RgbViewAlgorithm
from .sample_tiles import SampleTilesAtPointsAlgorithm
from .similarity import SimilarityAlgorithm
from .train_tile_encoder import TrainTileEncoderAlgorithm

ALGORITHMS = [
    ListModelsAlgorithm,
    EmbedRasterAlgorithm,
    SampleTilesAtPointsAlgorithm,
    ClusterAlgorithm,
    ApplyClusterModelAlgorithm,
    SimilarityAlgorithm,
    InterpolateAlgorithm,
    RgbViewAlgorithm,
]
TRAINING_ALGORITHMS = [
    TrainTileEncoderAlgorithm,
]


def training_available() -> bool:
    try:
        return importlib.util.find_spec("training.tile2vec") is not None
    except ImportError:
        return False


def algorithms() -> list[type]:
    """The algorithm classes to register here."""
    return ALGORITHMS + (TRAINING_ALGORITHMS if training_available() else [])
