"""Tile2Vec: learn tile embeddings from unlabelled rasters (the analyst's own, or the bundled models' data).

``train_tile2vec(rasters, Tile2VecConfig(...))`` trains; ``export_bundle`` writes a model
bundle srl_core loads by path or id. The command line is ``python -m training tile2vec``.
"""

from .export import build_card, export_bundle
from .loss import OBJECTIVES, LossParts, infonce_loss, triplet_loss, vicreg_loss
from .rasters import TrainingRaster, band_statistics, open_training_rasters
from .sampler import TripletBatch, TripletSampler, augment, normalise, radiometric_jitter
from .trainer import Tile2VecConfig, TrainResult, train_tile2vec

__all__ = [
    "OBJECTIVES", "LossParts", "Tile2VecConfig", "TrainResult", "TrainingRaster", "TripletBatch",
    "TripletSampler", "augment", "band_statistics", "build_card", "export_bundle", "infonce_loss",
    "normalise", "open_training_rasters", "radiometric_jitter", "train_tile2vec", "triplet_loss",
    "vicreg_loss",
]
