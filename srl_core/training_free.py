"""Binding training-free tile encoders to a raster, and the default model for a raster's bands.

A training-free bundle (architecture ``bandstats`` or ``mosaiks``, see
:mod:`srl_core.models.training_free`) fits any band count, so its card cannot say the
bands, their statistics or, for MOSAIKS, the filters. :func:`bind_to_raster` fills them in
from the raster about to be embedded: its band count, its own band statistics over valid
pixels (:func:`srl_core.raster.statistics.band_statistics`, the same the engine's
``normalisation="raster"`` uses) and, for MOSAIKS, filters that are patches of the raster
drawn with the card's seed. The bound card's config (seed and settings) is written into
the embedding raster's metadata (``SRL_MODEL_SETTINGS``), so embeddings can be reproduced.

:func:`resolve_model` turns the model id ``"auto"`` into a learned tile bundle whose bands the
raster has when one is installed, else the MOSAIKS bundle. "Has" is judged the way the bands
are then chosen (:mod:`srl_core.band_choice`): every band the card names found by name in the
raster, else as many raster bands as the model takes. The band choice and the ``"auto"``
normalisation then apply to the model picked.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .band_choice import band_labels, card_band_names, default_bands, match_band_names
from .bundle import BUNDLED_MODELS_DIR, LoadedModel, ModelCard, list_bundles, load_model
from .card_schema import TRAINING_FREE_ARCHITECTURES
from .errors import InputError, ModelError
from .gdal_exceptions import gdal_exceptions
from .models.training_free import build_from_config
from .names import MODEL_SETTINGS_KEY
from .raster.reader import read_window
from .raster.source import RasterSource, open_dataset, open_source
from .raster.statistics import band_statistics

AUTO_MODEL = "auto"
DEFAULT_TRAINING_FREE_MODEL = "mosaiks-rcf"  # the default when no learned model fits the raster
# Bundled learned tile models in the order "auto" tries them, the best recipe measured over 3 training
# seeds first (README results); any other learned model (the user's) comes after them, by id. The
# multi-sensor recipe leads on probe and NMI but trails on P@10 and at 33 px: second.
AUTO_TILE_MODELS = ("tile2vec-l8-rgb-pixels64", "tile2vec-rgb-pixels64-multisensor",
                    "tile2vec-l8-rgb-spectral16-multiscale", "tile2vec-l8-rgb-spectral16",
                    "tile2vec-l8-rgb-compact")
PATCH_CANDIDATES_PER_FILTER = 8  # patch positions drawn per filter; patches with invalid pixels are dropped
WHITENING_EPSILON = 1e-2  # added to the patch covariance's eigenvalues (patches are standardised)

ModelLike = Union[str, Path, LoadedModel]


def is_training_free(card: ModelCard) -> bool:
    """Whether the card describes a training-free encoder (bound to each raster it embeds)."""
    return card.architecture in TRAINING_FREE_ARCHITECTURES


def _in_channels(card: ModelCard) -> int:
    try:
        return int(card.config.get("in_channels", 0))
    except (TypeError, ValueError):
        return 0


def _learned_model_for(raster_path: Union[str, Path], bands: Optional[Sequence[int]]) -> Optional[str]:
    """The id of a learned tile model for these bands: one whose band names all name raster bands
    first (without ``bands``), else a bundled one taking as many bands as given (or as the raster has
    besides alpha bands, which are no data: :func:`srl_core.band_choice.default_bands`).

    A user's model is picked by its band names only: by their count, a five-step model trained on one
    band of a crop was used for any one-band raster, silently."""
    found = [(card, folder) for card, folder in list_bundles()
             if card.kind == "tile" and not is_training_free(card)]
    learned = sorted((card for card, _ in found), key=_auto_rank)
    bundled = {card.id for card, folder in found if folder.parent == BUNDLED_MODELS_DIR}
    ds = open_dataset(str(raster_path))
    if not bands:
        labels = band_labels(ds)
        for card in learned:
            matched = match_band_names(card_band_names(card.inputs), labels)
            if matched is not None and len(matched) == _in_channels(card):
                return card.id
        bands = default_bands(ds)
        if any(_names_a_band(label) for b in bands for label in labels[b - 1]):
            return None  # named otherwise than any model's ('B4 NIR', 'elevation'): no RGB model by count
    return next((card.id for card in learned if card.id in bundled and _in_channels(card) == len(bands)),
                None)


GENERIC_LABEL = re.compile(r"(band|b)[\s_]*\d+[a-z]?")  # 'Band 1', 'B4', 'b8a': a number, not a name


def _names_a_band(label: str) -> bool:
    """Whether a raster band's label says what it holds ('nir', 'B4 NIR', 'elevation'), not only its number:
    such bands fed to an RGB model by their count ('B4 NIR', 'B5 SWIR1', 'B7 SWIR2' as blue, green, red)
    gave embeddings that looked like any others."""
    return bool(label) and not GENERIC_LABEL.fullmatch(label.strip())


def _auto_rank(card: ModelCard) -> tuple[int, str]:
    """Sort key of a learned model for "auto": its place in AUTO_TILE_MODELS, then its id."""
    known = card.id in AUTO_TILE_MODELS
    return (AUTO_TILE_MODELS.index(card.id) if known else len(AUTO_TILE_MODELS), card.id)


@gdal_exceptions()
def resolve_model(model: ModelLike, raster_path: Union[str, Path], bands: Optional[Sequence[int]] = None
                  ) -> LoadedModel:
    """Load ``model``; ``"auto"`` picks a learned tile model whose bands the raster has, else MOSAIKS."""
    if isinstance(model, str) and model == AUTO_MODEL:
        model = _learned_model_for(raster_path, bands) or DEFAULT_TRAINING_FREE_MODEL
    return load_model(model)


def sample_filters(source: RasterSource, mean: Sequence[float], std: Sequence[float], filters: int,
                   patch: int, seed: int, whiten: bool) -> np.ndarray:
    """MOSAIKS filters ``(filters, C, patch, patch)``: standardised patches of the raster at seeded positions.

    Patches with an invalid pixel are skipped. With ``whiten``, each is ZCA-whitened over the
    sample (as in Coates and Ng, and MOSAIKS), so filters are not all alike on a smooth image.
    Each filter is scaled so that its response over the sampled patches has unit spread, which
    makes the card's ``bias`` mean the same whatever the band count or the image's texture.
    """
    if source.width < patch or source.height < patch:
        raise InputError(f"{source.path} is smaller than one {patch} px MOSAIKS patch.")
    rng = np.random.default_rng(int(seed))
    count = PATCH_CANDIDATES_PER_FILTER * filters
    # positions and patches on the ground's north-up grid, as the tiles the filters meet: drawn in the
    # file's own order, a south-up copy of a raster got other filters and other embeddings (max 3.3 apart)
    xs = rng.integers(0, source.width - patch + 1, count)
    ys = rng.integers(0, source.height - patch + 1, count)
    flips = source.flip_axes
    if -1 in flips:
        xs = source.width - patch - xs
    if -2 in flips:
        ys = source.height - patch - ys
    ds = open_dataset(source.path)
    scale = np.asarray(std, np.float32)[:, None, None]
    offset = np.asarray(mean, np.float32)[:, None, None]
    patches = []
    for x, y in zip(xs, ys):
        pixels, invalid = read_window(ds, source, int(x), int(y), patch, patch)
        if not invalid.any():
            north_up = np.flip(pixels, axis=flips) if flips else pixels
            patches.append((north_up - offset) / scale)
    if len(patches) < filters:
        raise InputError(f"{source.path} has too few valid {patch} x {patch} px patches ({len(patches)} of "
                         f"{count} drawn) for {filters} MOSAIKS filters; use fewer filters or a raster with "
                         "more valid pixels.")
    sample = np.stack(patches).reshape(len(patches), -1).astype(np.float64)
    chosen = sample[:filters]
    if whiten:
        centred = sample - sample.mean(axis=0)
        values, vectors = np.linalg.eigh(centred.T @ centred / len(sample))
        zca = vectors @ np.diag(1.0 / np.sqrt(np.maximum(values, 0.0) + WHITENING_EPSILON)) @ vectors.T
        chosen = chosen @ zca  # ZCA is symmetric: w.x with whitened w = patch . (whitened x)
    spread = (sample @ chosen.T).std(axis=0)
    chosen = chosen / np.where(spread > 0, spread, 1.0)[:, None]
    return chosen.reshape(filters, len(source.bands), patch, patch).astype(np.float32)


@gdal_exceptions()
def bind_to_raster(loaded: LoadedModel, raster_path: Union[str, Path], bands: Optional[Sequence[int]] = None,
                   mask_path: Optional[str] = None) -> LoadedModel:
    """A training-free model made concrete for this raster (learned models pass through unchanged).

    The bound card gives the raster's band count, its band statistics as the normalisation
    and the embedding size; a bound MOSAIKS module holds filters drawn from the raster. Without
    ``bands`` it takes all the raster's bands but alpha bands (:func:`srl_core.band_choice.default_bands`):
    transparency is no data, and the reader already uses an alpha band as the pixels' validity mask.
    """
    card = loaded.card
    if not is_training_free(card):
        return loaded
    chosen = tuple(bands) if bands else default_bands(open_dataset(str(raster_path)))
    config, module = _build_for(card, len(chosen))  # a bad card is refused before the raster is read
    source = open_source(str(raster_path), len(chosen), chosen)
    stats = band_statistics(source, mask_path=mask_path)  # inside the mask only, as the engine compares
    if card.architecture == "mosaiks":
        config.setdefault("seed", 0)
        weight = sample_filters(source, stats.mean, stats.std, int(config.get("filters", 128)),
                                int(config.get("patch", 3)), int(config["seed"]),
                                bool(config.get("whiten", True)))
        module.weight.copy_(torch.from_numpy(weight))
    inputs = {
        **card.inputs,
        "bands": [{"name": f"band {b}", "description": f"band {b} of {Path(str(raster_path)).name}"}
                  for b in source.bands],
        "normalisation": {"mean": list(stats.mean), "std": list(stats.std)},
    }
    bound = replace(card, config=config, inputs=inputs, embedding_size=int(module.embedding_size))
    return LoadedModel(module=module.eval(), card=bound, path=loaded.path)


def bound_embedding_size(card: ModelCard, band_count: int) -> int:
    """The embedding size of ``card`` on a raster of ``band_count`` bands, known before the raster is
    read (a training-free model's depends on the band count; a learned model's is its card's)."""
    if not is_training_free(card):
        return int(card.embedding_size)
    return int(_build_for(card, band_count)[1].embedding_size)


def _build_for(card: ModelCard, band_count: int) -> tuple[dict, torch.nn.Module]:
    """A training-free card's config for ``band_count`` bands and its module, not yet fitted."""
    if card.config.get("method") != card.architecture:
        raise ModelError(f"Model '{card.id}': its config.method must be '{card.architecture}', "
                         "the same as its architecture.")
    config = {**card.config, "in_channels": int(band_count)}
    try:
        module = build_from_config(config)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"Model '{card.id}': invalid training-free config: {exc}") from exc
    if card.architecture == "mosaiks" and card.embedding_size != module.embedding_size:
        # listed with the card's size, and written with the filters' (100 listed, 256 written)
        raise ModelError(f"Model '{card.id}': its card says embedding_size {card.embedding_size}, but its "
                         f"{module.embedding_size // 2} filters make {module.embedding_size} values.")
    return config, module


def check_tile_size(card: ModelCard, tile_size: int) -> None:
    """Refuse tiles smaller than a MOSAIKS model's patch: its convolution had no position to take ("a bug
    in SRL" at --tile-size 2, which model auto also picks)."""
    patch = int(card.config.get("patch", 3)) if card.architecture == "mosaiks" else 1
    if tile_size < patch:
        raise InputError(f"Model '{card.id}' compares {patch} x {patch} px patches of each tile: choose a "
                         f"tile size of at least {patch} px, not {tile_size}.")


def settings_metadata(card: ModelCard) -> dict[str, str]:
    """Embedding-raster metadata recording a training-free model's settings (seed included); else none.

    MOSAIKS's filters are patches of the raster it embeds, standardised by its statistics: the band
    means they were drawn with are recorded too, so that embeddings of another raster (other filters,
    other features) are told apart from more of the same raster's (srl_core.embedding_recipe)."""
    if not is_training_free(card):
        return {}
    settings = {"architecture": card.architecture, **card.config,
                "normalisation": "the raster's own band statistics"}
    if card.architecture == "mosaiks":
        mean = (card.inputs.get("normalisation") or {}).get("mean") or []
        settings["filters_drawn_at_band_means"] = [float(f"{float(m):.6g}") for m in mean]
    return {MODEL_SETTINGS_KEY: json.dumps(settings, sort_keys=True)}
