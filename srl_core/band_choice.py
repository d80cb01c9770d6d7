"""Which raster bands feed a tile model when the analyst did not say: chosen, and said.

A multi-band raster rarely has exactly the bands a model wants in its order (the bundled
sample has 6 Landsat bands, the bundled model wants blue, green, red). Refusing until the
analyst types band numbers strands new users; feeding the wrong bands silently gives
embeddings that look fine and mean nothing. So the bands are chosen from what the raster
says about itself, and the choice is reported and recorded in the output's metadata:

1. each of the model's band names (its card's ``inputs.bands``) is looked up in the
   raster's colour interpretations (Red, Green, Blue, ...) and band descriptions (as a
   whole word: "B3 red (0.63-0.69 um)" is red); when every model band is found, in one
   raster band each, those are used in the model's order;
2. otherwise all bands, when the raster has as many as the model needs;
3. otherwise the first bands the model needs, with a note saying so.

A raster with fewer bands than the model needs is refused (:func:`srl_core.raster.source.map_bands`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from osgeo import gdal

from .raster.source import open_dataset


@dataclass(frozen=True)
class BandChoice:
    """The 1-based raster bands chosen, in the model's order, and why (one sentence)."""

    bands: Optional[tuple[int, ...]]  # None: leave the raster as it is (the counts do not allow a choice)
    reason: str


def card_band_names(inputs: dict) -> list[str]:
    """The model's band names from a card's ``inputs`` (entries may be names or {"name": ...})."""
    names = []
    for entry in inputs.get("bands") or []:
        name = entry.get("name") if isinstance(entry, dict) else entry
        names.append(str(name or ""))
    return names


def band_labels(ds: gdal.Dataset) -> list[list[str]]:
    """Per raster band: its colour interpretation (when meaningful) and its description, lower case."""
    labels = []
    for i in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(i)
        interp = gdal.GetColorInterpretationName(band.GetColorInterpretation()) or ""
        found = [interp.lower()] if interp.lower() not in ("undefined", "gray", "grey", "") else []
        if band.GetDescription():
            found.append(band.GetDescription().lower())
        labels.append(found)
    return labels


def _matches(name: str, labels: list[str]) -> bool:
    pattern = re.compile(rf"(?<![a-z0-9]){re.escape(name.lower())}(?![a-z0-9])")
    return any(label == name.lower() or pattern.search(label) for label in labels)


def match_band_names(names: Sequence[str], labels: list[list[str]]) -> Optional[tuple[int, ...]]:
    """Raster bands (1-based) named like each model band, or None unless each matches exactly one."""
    if not names or not all(names):
        return None
    chosen = []
    for name in names:
        hits = [i + 1 for i, raster_labels in enumerate(labels) if _matches(name, raster_labels)]
        if len(hits) != 1:
            return None
        chosen.append(hits[0])
    return tuple(chosen) if len(set(chosen)) == len(chosen) else None


def choose_bands(path: str, expected: int, names: Sequence[str]) -> BandChoice:
    """The bands of raster ``path`` to feed a model wanting ``expected`` bands named ``names``."""
    ds = open_dataset(path)
    count = ds.RasterCount
    matched = match_band_names(names, band_labels(ds))
    if matched is not None and len(matched) == expected:
        listed = ", ".join(f"{n} = band {b}" for n, b in zip(names, matched))
        return BandChoice(matched, f"Bands chosen by their names in the raster: {listed}.")
    if count == expected or count < expected:
        return BandChoice(None, f"All {count} bands of the raster, in their order.")
    first = tuple(range(1, expected + 1))
    wanted = f" ({', '.join(names)})" if names and all(names) else ""
    return BandChoice(
        first,
        f"The raster's band names do not say which bands the model's{wanted} are, so the first {expected} "
        f"of its {count} bands were used ({', '.join(map(str, first))}); choose the bands if these are not "
        "the model's, in its order.",
    )
