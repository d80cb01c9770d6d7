"""Which raster bands feed a tile model when the analyst did not say: chosen, and said.

A multi-band raster rarely has exactly the bands a model wants in its order (the bundled
sample has 6 Landsat bands, the bundled model wants blue, green, red). Refusing until the
analyst types band numbers strands new users; feeding the wrong bands silently gives
embeddings that look fine and mean nothing. So the bands are chosen from what the raster
says about itself, and the choice is reported and recorded in the output's metadata:

1. each of the model's band names (its card's ``inputs.bands``) is looked up in the
   raster's colour interpretations (Red, Green, Blue, ...) and band descriptions. A band
   whose whole label is the name, band codes and wavelengths aside ("red", "B4 red",
   "Red (0.63-0.69 um)", "Near Infrared (NIR)" for nir), beats one where the name is only
   some of the label's words ("B5 red edge 1" is red too, but less so); when every model
   band is found so, in one raster band each, those are used in the model's order;
2. otherwise all bands, when the raster has as many as the model needs;
3. otherwise the first bands the model needs, with a note saying so.

Alpha bands (transparency, which the reader uses as the pixels' validity mask) are not
data: steps 2 and 3 leave them out while the raster has enough other bands, and say so.
:func:`default_bands` is the same rule for models that take any band count.

A raster with fewer bands than the model needs is refused (:func:`srl_core.raster.source.map_bands`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

from osgeo import gdal

from .gdal_exceptions import gdal_exceptions
from .raster.source import alpha_bands, open_dataset

# Spellings of one band name made alike, applied to the model's names and the raster's labels.
_WAVELENGTH = re.compile(r"\d+(?:\.\d+)?(?:\s*-\s*\d+(?:\.\d+)?)?\s*(?:um|µm|μm|nm|microns?|micrometers?)\b")
_WORD_GAP = re.compile(r"[^a-z0-9]+")
_NUMBERED = re.compile(r"\b(swir|nir|tir|rededge|edge|band)(\d)")  # "swir1" is "swir 1"
_SYNONYMS = ((re.compile(r"\bnear infrared\b"), "nir"), (re.compile(r"\bshort ?wave infrared\b"), "swir"),
             (re.compile(r"\brededge\b"), "red edge"))
# A band's code beside its name ("B4 red", "SR_B4 red", "Band 4 red", "Red B4"): no part of the name.
_BAND_CODE = re.compile(r"^(?:(?:sr|toa|st) )?(?:band |b)\d+[a-z]?\b|\b(?:band |b)\d+[a-z]?$")
WHOLE_LABEL, WORDS_OF_LABEL = 0, 1  # how well a raster band's label names a model band: lower is better


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


def default_bands(ds: gdal.Dataset) -> tuple[int, ...]:
    """The bands a model taking any band count gets by default: all but the alpha bands, which say
    which pixels are transparent, not what is there (all bands when every one is alpha)."""
    alpha = alpha_bands(ds)
    every = tuple(range(1, ds.RasterCount + 1))
    return tuple(b for b in every if b not in alpha) or every


def _normalise_name(text: str) -> str:
    """``text`` lower case, wavelengths dropped, words separated by single spaces and common
    synonyms made alike ("Near-Infrared" is "nir", "SWIR1" is "swir 1"), so spellings compare."""
    text = _WAVELENGTH.sub(" ", text.lower())
    text = _NUMBERED.sub(r"\1 \2", _WORD_GAP.sub(" ", text))
    for pattern, spelling in _SYNONYMS:
        text = pattern.sub(spelling, text)
    return text.strip()


def _meaning(label: str) -> str:
    """What a band's name says of it, band code aside: '' for 'Band 1' or 'B4' (a position, not a name)."""
    return _BAND_CODE.sub(" ", _normalise_name(label)).strip()


def _label_forms(label: str) -> set[str]:
    """The ways a label can name its band as a whole: itself, its text outside and inside parentheses
    ("Near Infrared (NIR)"), each also without a band code ("B4 red" is "red")."""
    parts = [label, re.sub(r"\([^)]*\)", " ", label), *re.findall(r"\(([^)]*)\)", label)]
    forms = {_normalise_name(part) for part in parts}
    forms |= {_BAND_CODE.sub(" ", form).strip() for form in forms}
    return forms - {""}


def _match_rank(name: str, labels: Sequence[str]) -> Optional[int]:
    """How well one raster band's ``labels`` name the (normalised) model band ``name``: WHOLE_LABEL,
    WORDS_OF_LABEL (the name is whole words of a label: "red" in "red edge 1"), or None."""
    if any(name in _label_forms(label) for label in labels):
        return WHOLE_LABEL
    if any(f" {name} " in f" {_normalise_name(label)} " for label in labels):
        return WORDS_OF_LABEL
    return None


def band_hits(name: str, labels: list[list[str]]) -> list[int]:
    """The raster bands (1-based) that name the model band ``name`` best: those whose whole label it
    is, else those where it is words of a label, else none."""
    key = _normalise_name(name)
    ranks = [_match_rank(key, raster_labels) if key else None for raster_labels in labels]
    found = [rank for rank in ranks if rank is not None]
    return [i + 1 for i, rank in enumerate(ranks) if found and rank == min(found)]


def match_band_names(names: Sequence[str], labels: list[list[str]]) -> Optional[tuple[int, ...]]:
    """Raster bands (1-based) named like each model band, or None unless each names exactly one best,
    a different one each."""
    if not names or not all(names):
        return None
    chosen = []
    for name in names:
        hits = band_hits(name, labels)
        if len(hits) != 1:
            return None
        chosen.append(hits[0])
    return tuple(chosen) if len(set(chosen)) == len(chosen) else None


BY_NAME = "Bands chosen by their names in the raster:"  # the choice's reason, also read back from outputs


@gdal_exceptions()
def choose_bands(path: str, expected: int, names: Sequence[str]) -> BandChoice:
    """The bands of raster ``path`` to feed a model wanting ``expected`` bands named ``names``."""
    ds = open_dataset(path)
    labels = band_labels(ds)
    matched = match_band_names(names, labels)
    if matched is not None and len(matched) == expected:
        listed = ", ".join(f"{n} = band {b}" for n, b in zip(names, matched))
        return BandChoice(matched, f"{BY_NAME} {listed}.")
    return _by_position(ds, expected, names, labels)


def _by_position(ds: gdal.Dataset, expected: int, names: Sequence[str],
                 labels: list[list[str]]) -> BandChoice:
    """The raster's bands in their order when their names do not say which are the model's: its
    bands but the alpha while there are enough of them, else all its bands."""
    count, data = ds.RasterCount, default_bands(ds)
    alpha = _alpha_text(ds, data)
    if alpha and len(data) == expected:
        return BandChoice(data, f"All {expected} bands of the raster but {alpha}, in their order.")
    if alpha and len(data) > expected:
        return _first_bands(data, expected, names, labels, f"its {len(data)} bands other than {alpha}")
    if count <= expected:
        among = f", {alpha} among them (the model needs {expected} bands)" if alpha else ""
        named = [", ".join(sorted({_meaning(label) for label in band} - {""})) for band in labels]
        if all(map(_meaning, names)) and names and any(named):  # colour infrared (nir, red, green) as RGB
            shown = "; ".join(f"{i}: {label or '?'}" for i, label in enumerate(named, 1))
            return BandChoice(None, f"The raster's band names ({shown}) are not the model's "
                              f"({', '.join(names)}), so its {count} bands were used in their order{among}; "
                              "choose the bands if these are not the model's, in its order.")
        return BandChoice(None, f"All {count} bands of the raster, in their order{among}.")
    return _first_bands(tuple(range(1, count + 1)), expected, names, labels, f"its {count} bands")


def _first_bands(pool: tuple[int, ...], expected: int, names: Sequence[str], labels: list[list[str]],
                 pool_text: str) -> BandChoice:
    """The first ``expected`` bands of ``pool``, with a note that the names did not say which to use."""
    first = pool[:expected]
    wanted = f" ({', '.join(names)})" if names and all(names) else ""
    return BandChoice(
        first,
        f"The raster's band names do not say which bands the model's{wanted} are{_unclear(names, labels)}, "
        f"so the first {expected} of {pool_text} were used ({', '.join(map(str, first))}); choose the bands "
        "if these are not the model's, in its order.",
    )


def _alpha_text(ds: gdal.Dataset, data: Sequence[int]) -> str:
    """'its alpha band N' and whether GDAL uses it as the mask of the data bands; '' without one."""
    alpha = [b for b in range(1, ds.RasterCount + 1) if b not in data]
    if not alpha:
        return ""
    which = f"its alpha band{'s' * (len(alpha) > 1)} {', '.join(map(str, alpha))}"
    if ds.GetRasterBand(int(data[0])).GetMaskFlags() & gdal.GMF_ALPHA:
        return f"{which} (the valid pixels' mask, not data)"
    return f"{which} (transparency, not data)"


def _unclear(names: Sequence[str], labels: list[list[str]]) -> str:
    """Which model band names fit several raster bands equally, as ' (red: bands 4, 5 alike)'."""
    hits = {name: band_hits(name, labels) for name in names if name}
    several = [f"{name}: bands {', '.join(map(str, found))} alike"
               for name, found in hits.items() if len(found) > 1]
    return f" ({'; '.join(several)})" if several else ""
