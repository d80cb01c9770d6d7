"""The on-disk form of embeddings, the common currency between engines and analyses.

Embedding raster: a GeoTIFF with one band per embedding dimension (float32, or float16
on request), one pixel per tile centre, nodata = NaN, and metadata items
``SRL_KIND=tile_embedding``, ``SRL_MODEL_ID``, ``SRL_EMBEDDING_SIZE``, ``SRL_TILE_SIZE``,
``SRL_STRIDE``. Band descriptions are ``emb_000`` ...

Embedding points: a vector layer (GeoPackage) with float fields ``emb_000`` ... and
layer metadata items ``SRL_KIND=location_embedding`` (or ``tile_embedding`` for tile
embeddings sampled at points) and ``SRL_MODEL_ID``.

Analyses read the model id to refuse mixing embeddings of different models.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from osgeo import gdal

from .errors import InputError
from .gdal_exceptions import gdal_exceptions
from .names import (  # noqa: F401 (the format's names, defined in srl_core.names, importable from here too)
    KIND_KEY,
    LOCATION_KIND,
    MODEL_ID_KEY,
    SIZE_KEY,
    STRIDE_KEY,
    TILE_KIND,
    TILE_SIZE_KEY,
)

FIELD_PREFIX = "emb_"
EMBEDDING_NODATA = float("nan")

_FIELD_RE = re.compile(r"^emb_(\d{3,})$")


def field_names(size: int) -> list[str]:
    """Names of the embedding fields/bands: emb_000, emb_001, ..."""
    return [f"{FIELD_PREFIX}{i:03d}" for i in range(size)]


def is_embedding_field(name: str) -> bool:
    """Whether a field of this name is read as an embedding dimension (emb_ and three or more digits)."""
    return _FIELD_RE.match(name) is not None


def embedding_fields_in(names: Sequence[str]) -> list[str]:
    """The embedding fields among ``names``, in dimension order; error if there are none."""
    found = sorted((int(m.group(1)), n) for n in names if (m := _FIELD_RE.match(n)))
    if not found:
        raise InputError("This layer has no embedding fields (emb_000, emb_001, ...).")
    if [i for i, _ in found] != list(range(len(found))):
        raise InputError("Embedding fields are not contiguous (emb_000 .. emb_NNN expected).")
    return [n for _, n in found]


def raster_metadata(model_id: str, size: int, tile_size: int, stride: int) -> dict[str, str]:
    """Metadata items written into every embedding raster."""
    return {
        KIND_KEY: TILE_KIND,
        MODEL_ID_KEY: model_id,
        SIZE_KEY: str(size),
        TILE_SIZE_KEY: str(tile_size),
        STRIDE_KEY: str(stride),
    }


@dataclass(frozen=True)
class EmbeddingRasterInfo:
    """What an analysis needs to know about an embedding raster before reading it."""

    path: str
    model_id: str
    size: int
    width: int
    height: int
    geotransform: tuple
    crs_wkt: str
    tile_size: Optional[int]
    stride: Optional[int]


@gdal_exceptions()
def read_raster_info(path: str) -> EmbeddingRasterInfo:
    """Open ``path`` and check that it is an srl embedding raster."""
    try:
        ds = gdal.Open(str(path))
    except RuntimeError as exc:
        raise InputError(f"Cannot open embedding raster {path}: {exc}") from exc
    md: Mapping[str, str] = ds.GetMetadata() or {}
    if md.get(KIND_KEY) != TILE_KIND:
        raise InputError(
            f"{path} is not an embedding raster made by SRL (metadata {KIND_KEY} missing). "
            "Embed a raster first."
        )
    size = int(md.get(SIZE_KEY, ds.RasterCount))
    if size != ds.RasterCount:
        raise InputError(f"{path}: metadata says {size} dimensions but it has {ds.RasterCount} bands.")
    return EmbeddingRasterInfo(
        path=str(path),
        model_id=md.get(MODEL_ID_KEY, "unknown"),
        size=size,
        width=ds.RasterXSize,
        height=ds.RasterYSize,
        geotransform=tuple(ds.GetGeoTransform()),
        crs_wkt=ds.GetProjection() or "",
        tile_size=int(md[TILE_SIZE_KEY]) if TILE_SIZE_KEY in md else None,
        stride=int(md[STRIDE_KEY]) if STRIDE_KEY in md else None,
    )


def require_same_model(model_ids: Sequence[str]) -> str:
    """Refuse to mix embeddings of different models; return the common id."""
    distinct = sorted(set(model_ids))
    if len(distinct) > 1:
        raise InputError(
            "These embeddings come from different models (" + ", ".join(distinct) + "); "
            "they live in different spaces and cannot be compared. Use one model throughout."
        )
    if not distinct:
        raise InputError("No embeddings given.")
    return distinct[0]
