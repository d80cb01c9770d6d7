"""How embeddings were made, beyond the model id: what must match before a cluster model or a query
taken from one set of embeddings is applied to another.

One model can make embeddings that do not compare: from other bands (blue, green, red as 1,2,3 of one
raster, 3,2,1 of another: a k = 5 model fitted on one gave the same class on 48 % of the same tiles of
the other), standardised otherwise, at another tile size, or, for MOSAIKS, with filters drawn from
another raster (its settings record the band means its filters were drawn at). Band statistics give 2
values per band, so one id even comes in several sizes. The
embedding outputs record how they were made (``SRL_BANDS``, ``SRL_NORMALISATION``, ``SRL_TILE_SIZE``,
``SRL_MODEL_SETTINGS``, ``SRL_STATISTICS_AREA``: a masked run's own statistics are the mask's area's);
a different size is refused, any other difference said.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Mapping, Optional

from .band_choice import BY_NAME
from .embedding_format import require_same_model
from .errors import InputError
from .names import (
    BANDS_KEY,
    CHOICES_KEY,
    MODEL_SETTINGS_KEY,
    NORMALISATION_KEY,
    STATISTICS_AREA_KEY,
    TILE_SIZE_KEY,
)


@dataclass(frozen=True)
class Recipe:
    """The model, size and settings of a set of embeddings, and the file they are in; '' where unknown."""

    model_id: str
    size: int
    bands: str = ""
    normalisation: str = ""
    tile_size: str = ""
    settings: str = ""
    source: str = ""
    bands_by_name: bool = False  # chosen by the raster's band names: numbers may differ, not the meaning
    statistics_area: str = ""  # where the raster's own statistics were taken (the whole raster, a mask)

    @classmethod
    def of(cls, metadata: Mapping[str, str], model_id: str, size: int, source: str) -> Recipe:
        """The recipe an output's metadata records (an embedding raster's, a point layer's)."""
        return cls(model_id, int(size), metadata.get(BANDS_KEY, ""), metadata.get(NORMALISATION_KEY, ""),
                   metadata.get(TILE_SIZE_KEY, ""), metadata.get(MODEL_SETTINGS_KEY, ""), Path(source).name,
                   BY_NAME in metadata.get(CHOICES_KEY, ""), metadata.get(STATISTICS_AREA_KEY, ""))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(text).items() if k in known})

    @property
    def draws_from_its_raster(self) -> bool:
        """MOSAIKS: its filters are patches of the raster it embeds, so each raster gets other features."""
        return '"architecture": "mosaiks"' in self.settings


def compare(model_id: str, fitted: Optional[Recipe], target: Recipe, what: str) -> list[str]:
    """What differs between the embeddings of model ``model_id`` that ``what`` (e.g. "the classes") was made
    from and the ``target`` embeddings it is applied to; another model or size is refused (nothing can be
    computed). None for ``fitted``: made before recipes were kept, only the model is compared."""
    require_same_model([model_id, target.model_id])
    if fitted is None:
        return []
    if fitted.size != target.size:
        raise InputError(
            f"{what.capitalize()} come from {fitted.size}-value embeddings ({fitted.source}) and "
            f"{target.source} holds {target.size}-value ones (model '{target.model_id}' makes as many values "
            "as its raster's bands ask): embed both from the same bands."
        )
    said = []
    by_name = fitted.bands_by_name and target.bands_by_name  # blue, green, red wherever a raster holds them
    if fitted.bands and target.bands and fitted.bands != target.bands and not by_name:
        said.append(f"made from bands {fitted.bands} of their raster and {target.bands} of this one's: "
                    "unless these are the same bands in the same order, they mean other things here")
    if fitted.normalisation and target.normalisation and fitted.normalisation != target.normalisation:
        said.append(f"standardised by the {_statistics(fitted.normalisation)} there and the "
                    f"{_statistics(target.normalisation)} here")
    elif (fitted.statistics_area and target.statistics_area
          and fitted.statistics_area != target.statistics_area):
        said.append(f"standardised by statistics of {fitted.statistics_area} there and of "
                    f"{target.statistics_area} here")
    if fitted.tile_size and target.tile_size and fitted.tile_size != target.tile_size:
        said.append(f"of {fitted.tile_size} px tiles there and {target.tile_size} px tiles here")
    if _settings_differ(fitted.settings, target.settings):
        said.append("made with other settings of the training-free model" + (
            " (MOSAIKS draws its filters from the raster it embeds: another raster's are other features)"
            if target.draws_from_its_raster else ""))
    if not said:
        return []
    return [f"{what.capitalize()} come from embeddings ({fitted.source}) {'; '.join(said)}. They may mean "
            f"something else in {target.source}."]


def _settings_differ(a: str, b: str) -> bool:
    """Whether two training-free settings (JSON) disagree on a key both give: outputs of an earlier version
    lack keys added since (MOSAIKS's band means), and are not other settings for that."""
    if not a or not b:
        return False
    try:
        first, second = json.loads(a), json.loads(b)
    except ValueError:
        return a != b
    if not isinstance(first, dict) or not isinstance(second, dict):
        return a != b
    return any(first[key] != second[key] for key in first.keys() & second.keys())


def _statistics(normalisation: str) -> str:
    return {"model": "model's training statistics", "raster": "raster's own statistics"}.get(
        normalisation, f"'{normalisation}' statistics")
