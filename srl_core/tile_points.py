"""Tile embeddings at the points of a layer: read the points, bring them to the raster's CRS,
embed the tile centred at each, write the points with their embeddings (a GeoPackage).

The command line (``sample-tiles``) and the plugin's *Sample tile embeddings at points*
both call :func:`embed_tile_points_file`; the engine itself is
:func:`srl_core.tiles.embed_tiles_at_points`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from .atomic import guards_files
from .device import resolve_device
from .errors import InputError
from .gdal_exceptions import gdal_exceptions
from .names import DEFAULT_NORMALISATION, TILE_KIND, VALID_FIELD
from .progress import Progress, ensure_progress
from .raster.grid import world_to_pixel
from .raster.source import open_dataset
from .tile_encoder import check_precision
from .tiles import ModelLike, embed_tiles_at_points
from .training_free import resolve_model
from .vector.crs import CRSLike, to_crs
from .vector.points import read_points, require_geopackage_path, write_points


@dataclass(frozen=True)
class TilePointsResult:
    """What :func:`embed_tile_points_file` wrote: where, with which model, how many points embedded, and
    what the analyst must read about the embeddings (also in the layer's metadata)."""

    path: str
    model_id: str
    points: int
    embedded: int
    warnings: tuple[str, ...] = ()


@guards_files(outputs=["output"], inputs=["raster", "points"])
@gdal_exceptions()
def embed_tile_points_file(
    raster: Union[str, os.PathLike],
    points: Union[str, os.PathLike],
    output: Union[str, os.PathLike],
    model: ModelLike,
    *,
    layer: Optional[Union[str, int]] = None,
    x_field: Optional[str] = None,
    y_field: Optional[str] = None,
    crs: Optional[CRSLike] = None,
    bands: Optional[Sequence[int]] = None,
    tile_size: Optional[int] = None,
    normalisation: str = DEFAULT_NORMALISATION,
    device: str = "auto",
    precision: str = "fp32",
    batch_size: Optional[int] = None,
    max_nodata_fraction: float = 0.5,
    progress: Optional[Progress] = None,
    labels: Optional[tuple[str, str, str]] = None,
    threads: Optional[int] = None,
) -> TilePointsResult:
    """Embed the tile centred at every point of a layer/CSV (any CRS); write them to a GeoPackage.

    The output keeps the points (in their CRS) and attributes, adds the embedding fields
    ``emb_000`` .. (empty where the tile runs off the raster or is mostly nodata), the field
    ``emb_valid`` (1 embedded, 0 not) and the metadata SRL_KIND = tile_embedding, SRL_MODEL_ID, and
    SRL_QUALITY_WARNING when the engine warned (the raster unlike the model's training data, embeddings
    that barely differ: :func:`~srl_core.tiles.embed_tiles_at_points`); the result lists the warnings.
    Other arguments: as for :func:`srl_core.tiles.embed_tiles_at_points` and
    :func:`srl_core.vector.points.read_points` (``threads``: CPU threads for the model). Points of
    which none lies on the raster are refused; ``labels`` (points name, raster name, what to do)
    word that refusal as the caller's dialog does (default: the file names, and the command
    line's options).
    """
    progress = ensure_progress(progress)
    require_geopackage_path(output)  # now, not after the embeddings
    check_precision(precision, resolve_device(device))
    loaded = resolve_model(model, raster, bands)  # 'auto' picks the model; the engine binds it
    progress.report(0.0, "Reading points")
    table = read_points(points, layer=layer, x_field=x_field, y_field=y_field, crs=crs)
    ds = open_dataset(str(raster))
    raster_crs = ds.GetProjection()
    if not raster_crs:
        raise InputError(f"{raster} has no coordinate reference system, so points cannot be placed on it. "
                         "Assign one first (e.g. gdal_edit -a_srs EPSG:...).")
    xy = to_crs(table.xy, table.crs_wkt, raster_crs)  # not through lon/lat: a site grid has none
    _check_on_raster(xy, ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize, labels or (
        os.path.basename(str(points)), os.path.basename(str(raster)),
        "choose points over the raster, or another raster"))
    ds = None
    warnings: list[str] = []
    settings: dict[str, str] = {}  # tile size, bands, standardisation: points of tile 33 and a raster of 17
    emb, valid = embed_tiles_at_points(  # looked comparable
        raster, xy, loaded, bands=bands, tile_size=tile_size, device=device, precision=precision,
        batch_size=batch_size,
        max_nodata_fraction=max_nodata_fraction, normalisation=normalisation, progress=progress.sub(0.0, 0.9),
        threads=threads, on_warning=warnings.append, on_settings=settings.update,
    )
    path = write_points(
        output, table.xyz, table.crs_wkt, table.attributes, embeddings=emb, model_id=loaded.id,
        kind=TILE_KIND, extra_fields={VALID_FIELD: valid.astype("int32")}, progress=progress.sub(0.9, 1.0),
        fids=table.fids, warnings=warnings, metadata=settings,
    )
    return TilePointsResult(str(path), loaded.id, len(valid), int(valid.sum()), tuple(warnings))


def _check_on_raster(xy: np.ndarray, gt: Sequence[float], width: int, height: int,
                     labels: tuple[str, str, str]) -> None:
    """Refuse points of which none lies on the raster (a wrong layer or raster, most likely), by their pixel
    position: a box of two corners has no height on a raster turned 45 degrees (every point refused)."""
    with np.errstate(invalid="ignore"):  # points at infinity or NaN: off the raster
        try:
            col, row = world_to_pixel(gt, xy).T
        except InputError:
            return  # a degenerate geotransform: the engine says what is wrong
        on_raster = (col >= 0) & (col <= width) & (row >= 0) & (row <= height)
    if len(xy) and not on_raster.any():
        points, raster, advice = labels
        raise InputError(f"None of the {len(xy)} points of '{points}' lies on raster '{raster}': {advice}.")
