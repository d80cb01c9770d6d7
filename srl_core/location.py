"""The location engine: (lon, lat) points to embeddings with a location encoder.

``embed_points_file`` also takes the model id ``local``: location features fitted to the
layer's own extent (:mod:`srl_core.location_scale`), for layers far smaller than a global
model resolves; with a global model on such a layer it warns.

``embed_lonlat`` embeds an (N, 2) array of (lon, lat) WGS84 degrees in batches on the chosen
device, reporting progress and honouring cancel between batches. Invalid coordinates (NaN,
infinite, outside [-180, 180] x [-90, 90]) are an error naming the first bad row, or, with
``on_invalid="mask"``, give NaN rows and ``valid == False``. ``embed_xy`` takes coordinates in any
CRS. ``embed_points_file`` reads any point
layer or CSV (any CRS), embeds it, and writes an embedding points GeoPackage.
"""

from __future__ import annotations

import os
import warnings as _warnings
from functools import partial
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch

from .atomic import guards_files
from .backends import Backend, using_backend
from .bundle import LoadedModel, ModelCard, load_model
from .checks import check_finite_output
from .device import resolve_device
from .embedding_format import LOCATION_KIND
from .embedding_quality import spread, spread_warning
from .errors import InputError, ModelError
from .gdal_exceptions import gdal_exceptions
from .location_partitions import EmbedLonLat, embed_partitioned
from .location_scale import (
    LOCAL_MODEL,
    LocalLocationFeatures,
    auto_location_model,
    is_auto,
    is_local,
    scale_warning,
)
from .progress import Progress, ensure_progress
from .raster.parts import parts_folder, remove_parts, removed_on_cancel, resume_note
from .threads import limit_threads
from .vector.crs import CRSLike, check_lonlat, invalid_lonlat, to_lonlat
from .vector.points import read_points, require_geopackage_path, write_points

ModelLike = Union[str, os.PathLike, LoadedModel, torch.nn.Module]
ON_INVALID = ("raise", "mask")


def _resolve(model: ModelLike) -> tuple[torch.nn.Module, int]:
    """The torch module and its embedding size, from an id, a bundle path, a LoadedModel or a module."""
    if isinstance(model, torch.nn.Module):
        size = getattr(model, "embedding_size", None)
        if size is None:
            raise ModelError("This module does not say its embedding size (embedding_size attribute).")
        return model, int(size)
    loaded = load_model(model)
    if loaded.card.kind != "location":
        raise ModelError(
            f"Model '{loaded.id}' is a {loaded.card.kind} model; embedding points needs a location model."
        )
    return loaded.module, int(loaded.card.embedding_size)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise InputError("batch_size must be at least 1.")


def embed_lonlat(
    model: ModelLike,
    lonlat: np.ndarray,
    *,
    device: str = "auto",
    batch_size: int = 4096,
    on_invalid: str = "raise",
    progress: Optional[Progress] = None,
    threads: Optional[int] = None,
    backend: Optional[Backend] = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    partition_rows: Optional[int] = None,
    parts_beside: Optional[Union[str, os.PathLike]] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embed (N, 2) (lon, lat) degrees: returns (float32 (N, D) embeddings, bool (N,) valid).

    ``threads``: CPU threads for the model (default: see :mod:`srl_core.threads`).
    ``workers``, ``scheduler`` or ``backend``: partitions of ``partition_rows`` points run on
    Dask (see :mod:`srl_core.location_partitions`), with the same result; ``parts_beside``
    (an output path) keeps finished partitions beside it so that a killed run resumes. Local
    worker processes use ``threads`` threads each when it is given, else one each.
    """
    if on_invalid not in ON_INVALID:
        raise InputError(f"on_invalid must be one of {ON_INVALID}, not '{on_invalid}'.")
    _check_batch_size(batch_size)
    progress = ensure_progress(progress)
    module, size = _resolve(model)
    arr = np.asarray(lonlat, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        if arr.size == 0:
            return np.zeros((0, size), np.float32), np.zeros(0, bool)
        raise InputError(f"Coordinates must be an (N, 2) array of (lon, lat), got shape {arr.shape}.")
    if on_invalid == "raise":
        check_lonlat(arr, "coordinates")
        valid = np.ones(len(arr), dtype=bool)
    else:
        valid = ~invalid_lonlat(arr)
    rows = np.flatnonzero(valid)
    if len(rows) == 0:
        progress.report(1.0, "Nothing to embed")
        return np.full((len(arr), size), np.nan, dtype=np.float32), valid
    inputs = arr[rows].astype(np.float32)
    with using_backend(backend, workers, scheduler, threads) as runner:
        if runner is not None:
            task = EmbedLonLat(module, size, device, batch_size)
            values = embed_partitioned(runner, task, inputs, partition_rows, progress,
                                       None if parts_beside is None else str(parts_beside))
            check_finite_output(values, "The location model", rows)
            if len(rows) == len(arr):  # every point valid: the partitions' array as it is, no second copy
                return values, valid
            out = np.full((len(arr), size), np.nan, dtype=np.float32)
            out[rows] = values
            return out, valid
    out = np.full((len(arr), size), np.nan, dtype=np.float32)
    dev = resolve_device(device)
    module = module.to(dev).eval()
    with limit_threads(threads), torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            progress.check()
            batch = torch.from_numpy(inputs[start : start + batch_size]).to(dev)
            emb = module(batch)
            if emb.shape[1] != size:
                raise ModelError(f"The model returned {emb.shape[1]} values per point, its card says {size}.")
            values = emb.float().cpu().numpy()
            check_finite_output(values, "The location model", rows[start : start + batch_size])
            out[rows[start : start + batch_size]] = values
            progress.report(min(start + batch_size, len(rows)) / len(rows), "Embedding locations")
    return out, valid


@gdal_exceptions()
def embed_xy(
    model: ModelLike,
    xy: np.ndarray,
    crs: CRSLike,
    *,
    device: str = "auto",
    batch_size: int = 4096,
    progress: Optional[Progress] = None,
    threads: Optional[int] = None,
) -> np.ndarray:
    """Embed (N, 2) coordinates in any CRS (converted to lon/lat with osr, axis order handled).

    Points that cannot be converted are an InputError naming the first such row.
    """
    lonlat = to_lonlat(xy, crs)
    emb, _ = embed_lonlat(model, lonlat, device=device, batch_size=batch_size, progress=progress,
                          threads=threads)
    return emb


@guards_files(outputs=["output"], inputs=["input"])
@gdal_exceptions()
def embed_points_file(
    input: Union[str, os.PathLike],
    output: Union[str, os.PathLike],
    model: ModelLike,
    *,
    layer: Optional[Union[str, int]] = None,
    x_field: Optional[str] = None,
    y_field: Optional[str] = None,
    crs: Optional[CRSLike] = None,
    device: str = "auto",
    batch_size: int = 4096,
    progress: Optional[Progress] = None,
    threads: Optional[int] = None,
    on_message: Optional[Callable[[str], None]] = None,
    backend: Optional[Backend] = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    partition_rows: Optional[int] = None,
) -> Path:
    """Embed every point of a layer/CSV and write them, attributes kept, to a GeoPackage.

    The output has the input's attributes, fields ``emb_000`` .. and metadata SRL_KIND =
    location_embedding, SRL_MODEL_ID. Points keep their source CRS. Returns the output path.
    ``model="local"``: features fitted to the layer's own extent; ``model="auto"``: the bundled
    location model, or the local features when the points span far less than it resolves (see
    :mod:`srl_core.location_scale`). ``on_message`` receives what the analyst should read (the
    model chosen, points spanning far less than the model resolves, embeddings that barely differ,
    local features over too much of the globe); default: :func:`warnings.warn`. The warnings are
    also kept in the layer's metadata (SRL_QUALITY_WARNING), so whoever uses the points later is told.
    ``workers``, ``scheduler``, ``backend``, ``partition_rows``: as for :func:`embed_lonlat`;
    a killed run resumes from the partitions it finished.
    """
    resolve_device(device)  # checked for every model: 'local' used neither, and took any value unsaid
    _check_batch_size(batch_size)
    require_geopackage_path(output)  # now, not after the embeddings
    progress = ensure_progress(progress)
    # the caller: past this lambda, this function and its two decorators' wrappers (tested)
    say = on_message or (lambda text: _warnings.warn(text, stacklevel=5))
    progress.report(0.0, "Reading points")
    table = read_points(input, layer=layer, x_field=x_field, y_field=y_field, crs=crs)
    progress.check()
    if is_auto(model):
        model, note = auto_location_model(table.lonlat)
        say(note)
    if is_local(model):
        check_lonlat(table.lonlat, "coordinates")
        if backend is not None or workers or scheduler:  # it went on in this process without a word
            say("Model 'local' computes its features here, in blocks (cheap beside writing them): the Dask "
                "workers or scheduler given are not used.")
        local = LocalLocationFeatures(table.lonlat)
        warning = local.warning()
        if warning:
            say(warning)
        return write_points(output, table.xyz, table.crs_wkt, table.attributes,
                            embeddings=local(table.lonlat), model_id=local.model_id, kind=LOCATION_KIND,
                            progress=progress.sub(0.1, 1.0), fids=table.fids,
                            warnings=[warning] if warning else [])
    card = None
    if isinstance(model, torch.nn.Module):
        model_id = str(getattr(model, "model_id", "unsaved-module"))
    else:
        model = load_model(model)
        model_id, card = model.id, model.card
    warning = scale_warning(card, table.lonlat) if card else None
    if warning:
        say(warning)  # before the work: known from the points alone
    earlier = len(list(parts_folder(output).glob("part-*.npy")))  # an earlier run's partitions, resumed
    emb, _ = embed_lonlat(
        model, table.lonlat, device=device, batch_size=batch_size, progress=progress.sub(0.05, 0.6),
        threads=threads, backend=backend, workers=workers, scheduler=scheduler,
        partition_rows=partition_rows, parts_beside=output,
    )
    if card and not warning:  # the scale is the cause when it warns: the spread would only repeat it
        warning = _spread_warning(card, emb)
        if warning:
            say(warning)
    # a Ctrl-C while writing discarded a resumed run's earlier partitions too
    kept = partial(resume_note, parts_folder(output), earlier, "partitions")
    with removed_on_cancel(lambda: remove_parts(output), kept):
        written = write_points(
            output,
            table.xyz,
            table.crs_wkt,
            table.attributes,
            embeddings=emb,
            model_id=model_id,
            kind=LOCATION_KIND,
            progress=progress.sub(0.6, 1.0),
            fids=table.fids,
            warnings=[warning] if warning else [],
        )
    remove_parts(output)
    return written


def _spread_warning(card: ModelCard, emb: np.ndarray) -> Optional[str]:
    """A warning when a model's embeddings of the points barely differ (:mod:`.embedding_quality`),
    e.g. points closer together than a model whose card gives no resolution can tell apart."""
    return spread_warning(spread(emb), card, "Check the points' coordinates and CRS, or use the location "
                          f"features fitted to the layer's own extent (model '{LOCAL_MODEL}').")
