"""The types and ranges of a model card's fields, checked before a :class:`ModelCard` is made.

A card is a file anyone can edit. One with ``"id": 12345`` or ``"embedding_size": "big"``
used to pass and crash later, far from the card (QGIS itself died listing models). Every
field is checked here, so a bad card is one :class:`~srl_core.errors.ModelError` naming the
file and the field, and the rest of the code can trust a card's types.
"""

from __future__ import annotations

from typing import Any

from .checks import int_in_range
from .errors import ModelError

MAX_EMBEDDING_SIZE = 65_536  # far above any published encoder; bounds what a card makes us allocate
# Training-free tile encoders (srl_core.training_free): bound to each raster they embed, so a
# card may leave the embedding size at 0 when it depends on the raster's band count.
TRAINING_FREE_ARCHITECTURES = ("bandstats", "mosaiks")

# field -> (expected Python type(s), what to call it in a message)
_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "id": (str, "a text"),
    "kind": (str, "a text"),
    "architecture": (str, "a text"),
    "config": (dict, "a JSON object"),
    "description": (str, "a text"),
    "inputs": (dict, "a JSON object"),
    "training": (dict, "a JSON object"),
    "metrics": (dict, "a JSON object"),
    "licence": (str, "a text"),
}


def check_card_fields(data: Any, source: str) -> None:
    """Raise a ModelError naming ``source`` and the field when a card field has a wrong type or range."""
    if not isinstance(data, dict):
        raise ModelError(f"{source}: a model card must be a JSON object, not a {type(data).__name__}.")
    for name, (kind, words) in _TYPES.items():
        if name in data and not isinstance(data[name], kind):
            raise ModelError(
                f"{source}: field '{name}' must be {words}, not {data[name]!r}; "
                "fix or remove this model folder."
            )
    bands = data.get("inputs", {}).get("bands") if isinstance(data.get("inputs"), dict) else None
    if bands is not None and not (isinstance(bands, list)
                                  and all(isinstance(b, (str, dict)) for b in bands)):
        raise ModelError(  # read by the band choice of every 'auto' run: one such card stopped them all
            f"{source}: field 'inputs.bands' must be a list of band names (or of {{\"name\": ...}}), not "
            f"{bands!r}; fix or remove this model folder."
        )
    if "id" in data and not data["id"].strip():
        raise ModelError(f"{source}: field 'id' is empty; fix or remove this model folder.")
    size_low = 0 if data.get("architecture") in TRAINING_FREE_ARCHITECTURES else 1
    for name, low, high in (("embedding_size", size_low, MAX_EMBEDDING_SIZE), ("format_version", 1, 1_000)):
        if name in data:
            int_in_range(data[name], f"{source}: field '{name}'", low, high, ModelError)
