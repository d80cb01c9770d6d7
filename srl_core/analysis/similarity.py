"""Similarity search: "where else looks like this?" over an embedding raster or point layer.

A query is one or more example embeddings taken from pixels, points or polygons (mean
embedding of the valid pixels whose centres fall inside). Several examples combine as
their prototype (``mean``: cosine to the mean of the unit query vectors) or as the best
match to any of them (``max``). Outputs: a cosine similarity raster (streamed), a
similarity field on points, or the top-k most similar tiles/points as a point layer.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from ..atomic import guards_files
from ..backends import Backend, using_backend
from ..embedding_format import TILE_KIND, require_same_model
from ..embedding_recipe import Recipe, compare
from ..errors import InputError
from ..gdal_exceptions import gdal_exceptions
from ..names import (
    COMBINE_MODES,
    KIND_KEY,
    MODEL_ID_KEY,
    QUALITY_WARNING_KEY,
    QUERY_KEY,
    SIMILARITY_KIND,
    SRL_PRODUCT,
)
from ..progress import Progress, ensure_progress
from ..raster.block_tasks import map_blocks
from ..raster.blocks import BlockWriter, EmbeddingBlock, EmbeddingRasterReader
from ..raster.grid import world_to_pixel
from ..threads import threaded
from ..vector.crs import layer_crs
from ..vector.points import SOURCE_FID_FIELD, EmbeddingOrigin, open_layer, write_points
from ._common import as_embeddings, l2_normalize, read_points_with_embeddings, subsample, transform_xy
from .search import SimilarityIndex, empty_top_k, merge_top_k

COMBINE = COMBINE_MODES
# A query shorter than this share of the typical embedding's length has no direction: cosine similarity to
# it is noise (or all zero). Relative: embeddings in small units (1e-8) had every example refused.
MIN_QUERY_NORM = 1e-6
# Unit examples whose mean is shorter than this point in opposite directions and cancel out.
MIN_PROTOTYPE_NORM = 1e-3
# Scores spanning less than this tell no place from another, though a map stretches its colours over any
# range: the embeddings barely differ (the bundled tile model on the bundled scene spans about 0.9).
FLAT_SCORE_RANGE = 1e-3
FLAT_CHECK_SAMPLE = 4096  # embeddings scored to check the spread, before an output is written
LENGTH_SAMPLE = 256  # embeddings whose median length is the scale an example's length is judged by
MAX_SCORE_BYTES = 64 * 1024 * 1024  # pixel-by-example scores held at once for the best match (max)
FLAT_ADVICE = (
    "Check the embeddings: re-embed the raster (e.g. standardised by its own band statistics, or with a "
    "model suited to the imagery), or, for bands given as embeddings, bands that vary across the area."
)
Warn = Callable[[str], None]
_log = logging.getLogger(__name__)


@dataclass
class Query:
    """Example embeddings (n, D) with the model they come from and a label for each."""

    vectors: list[np.ndarray] = field(default_factory=list)
    model_ids: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    recipes: list[Recipe] = field(default_factory=list)  # how the examples' embeddings were made

    def add_vectors(self, vectors: np.ndarray, model_id: str, label: str = "vector",
                    recipe: Optional[Recipe] = None, typical: float = 1.0) -> Query:
        """Add raw embedding vector(s) of model ``model_id``, made as ``recipe`` says (when known).
        ``typical``: the length of a typical embedding they are compared with (their scale)."""
        vectors = as_embeddings(vectors, "query embeddings")
        norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
        if (norms < MIN_QUERY_NORM * typical).any():  # typical > 0: a zero example is refused too
            raise InputError(
                f"The query example ({label}) has a zero or near-zero embedding (length "
                f"{norms.min():.2g}, against {typical:.2g} for a typical one): it points in no direction, so "
                "similarity to it means nothing. Choose another pixel, point or polygon as the example."
            )
        self.vectors.extend(vectors)
        self.model_ids.extend([model_id] * len(vectors))
        self.labels.extend([label] * len(vectors))
        self.recipes.append(recipe or Recipe(model_id, vectors.shape[1], source=label))
        return self

    def add_pixels(self, raster: str, xy: np.ndarray, crs_wkt: Optional[str] = None) -> Query:
        """Add the embeddings of the raster pixels containing map points ``xy`` (N, 2).

        ``crs_wkt`` is the CRS of ``xy`` when it differs from the raster's.
        """
        with EmbeddingRasterReader(raster) as reader:
            xy = transform_xy(np.atleast_2d(np.asarray(xy, np.float64)), crs_wkt, reader.info.crs_wkt)
            cells = [reader.pixel_of(x, y) for x, y in xy]
            vectors = reader.read_pixels([c for c, _ in cells], [r for _, r in cells])
            return self.add_vectors(vectors, reader.model_id, f"pixel of {Path(raster).name}", reader.recipe,
                                    _typical_length(reader.sample(LENGTH_SAMPLE)))

    def add_polygon(
        self, raster: str, polygon: Union[str, BaseGeometry], crs_wkt: Optional[str] = None
    ) -> Query:
        """Add the mean embedding of the valid pixels whose centres lie in ``polygon`` (WKT or shapely)."""
        try:
            geom = shapely.from_wkt(polygon) if isinstance(polygon, str) else polygon
        except shapely.errors.GEOSException as exc:
            raise InputError(
                f"The query polygon {polygon[:60]!r} is not valid WKT ({exc}); give it as e.g. "
                "'POLYGON((x1 y1, x2 y2, x3 y3, x1 y1))' in the raster's (or --query-crs) coordinates."
            ) from exc
        if geom is None or geom.is_empty or geom.geom_type not in ("Polygon", "MultiPolygon"):
            raise InputError("A query polygon must be a non-empty (multi)polygon.")
        with EmbeddingRasterReader(raster) as reader:
            if crs_wkt:
                coords = shapely.get_coordinates(geom)
                geom = shapely.set_coordinates(geom, transform_xy(coords, crs_wkt, reader.info.crs_wkt))
            total = np.zeros(reader.info.size, np.float64)
            count = 0
            for window in _windows_touching(reader, geom.bounds):
                block = reader.read(window)
                inside = _pixels_inside(reader, window, geom) & block.valid
                if inside.any():
                    total += block.data[:, inside].sum(axis=1)
                    count += int(inside.sum())
            if count == 0:
                raise InputError(
                    "The query polygon covers no valid pixel centre of the embedding raster "
                    "(outside it, on nodata, or smaller than one pixel)."
                )
            return self.add_vectors((total / count)[None], reader.model_id, f"polygon ({count} pixels)",
                                    reader.recipe, _typical_length(reader.sample(LENGTH_SAMPLE)))

    @gdal_exceptions()
    def add_polygon_layer(self, raster: str, layer_path: str) -> Query:
        """Add one example per polygon of a vector layer (mean embedding inside each), any CRS;
        ``layer_path`` may name the layer of its file and a filter (``FILE|layername=L|subset=F``)."""
        ds, layer = open_layer(layer_path, None)  # noqa: F841 - the layer lives as long as its dataset
        srs = layer_crs(layer.GetSpatialRef())  # a GeoPackage's 'undefined' CRS is none: the raster's
        crs_wkt = srs.ExportToWkt() if srs is not None else None
        polygons = [
            shapely.from_wkb(bytes(f.GetGeometryRef().ExportToWkb())) for f in layer if f.GetGeometryRef()
        ]
        if not polygons:
            raise InputError(f"{layer_path} has no polygons.")
        for polygon in polygons:
            self.add_polygon(raster, polygon, crs_wkt)
        return self

    def add_points(self, points: str, fids: Sequence[int]) -> Query:
        """Add the embeddings of the features ``fids`` of an embedding point layer."""
        read = read_points_with_embeddings(points)
        where = {int(f): i for i, f in enumerate(read.table.fids)}
        missing = [f for f in fids if int(f) not in where]
        if missing:
            raise InputError(f"{points} has no feature with id {missing[0]}.")
        empty = [f for f in fids if not read.embedded[where[int(f)]]]
        if empty:
            raise InputError(f"Feature {empty[0]} of {points} has no embedding (its tile ran off the raster "
                             "or was mostly nodata); choose another point as the example.")
        rows = [where[int(f)] for f in fids]
        return self.add_vectors(read.embeddings[rows], read.model_id, f"point of {Path(points).name}",
                                read.recipe, _typical_length(subsample(read.usable, LENGTH_SAMPLE, 0)))

    @property
    def model_id(self) -> str:
        return require_same_model(self.model_ids)

    def check_against(self, target: Recipe) -> list[str]:
        """Refuse embeddings of another model or size than the examples'; say any other difference in
        how they were made (:func:`srl_core.embedding_recipe.compare`)."""
        said: list[str] = []
        for recipe in dict.fromkeys(self.recipes):  # each distinct one once, in order
            said += [w for w in compare(self.model_id, recipe, target, "the query examples") if w not in said]
        return said

    def matrix(self) -> np.ndarray:
        if not self.vectors:
            raise InputError("No query examples given (a pixel, point or polygon is needed).")
        return np.stack(self.vectors).astype(np.float32)


def _windows_touching(reader: EmbeddingRasterReader, bounds: tuple) -> list:
    """The reader's windows that overlap the map rectangle ``bounds`` (minx, miny, maxx, maxy)."""
    corners = np.array([[bounds[0], bounds[1]], [bounds[0], bounds[3]], [bounds[2], bounds[1]],
                        [bounds[2], bounds[3]]])
    colrow = world_to_pixel(reader.info.geotransform, corners)  # a rotated grid too
    cols = (colrow[:, 0].min(), colrow[:, 0].max())
    rows = (colrow[:, 1].min(), colrow[:, 1].max())
    return [
        w
        for w in reader.windows()
        if w.xoff <= cols[1]
        and w.xoff + w.width >= cols[0]
        and w.yoff <= rows[1]
        and w.yoff + w.height >= rows[0]
    ]


def _pixels_inside(reader: EmbeddingRasterReader, window, geom: BaseGeometry) -> np.ndarray:
    """(h, w) mask of the window's pixel centres inside ``geom`` (empty fast when bounds miss)."""
    rows, cols = np.mgrid[window.yoff : window.yoff + window.height, window.xoff : window.xoff + window.width]
    centres = reader.pixel_centres(cols.ravel(), rows.ravel())
    minx, miny, maxx, maxy = geom.bounds
    x, y = centres[:, 0], centres[:, 1]
    near = (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
    inside = np.zeros(len(x), bool)
    if near.any():
        inside[near] = shapely.contains_xy(geom, x[near], y[near])
    return inside.reshape(window.height, window.width)


def _check_combine(combine: str) -> None:
    if combine not in COMBINE:
        raise InputError(f"Unknown way to combine queries {combine!r}; use one of {', '.join(COMBINE)}.")


def cosine_scores(unit_x: np.ndarray, unit_queries: np.ndarray, combine: str = "mean") -> np.ndarray:
    """Similarity (n,) of unit rows to unit queries: to their prototype (mean) or best match (max).

    The best match takes the queries a few at a time, so that the scores held stay within
    :data:`MAX_SCORE_BYTES` (all at once, a block of pixels times thousands of example points took
    gigabytes)."""
    _check_combine(combine)
    if combine == "mean":
        return unit_x @ _prototype(unit_queries)
    best = np.full(len(unit_x), -np.inf, np.float32)
    step = max(1, MAX_SCORE_BYTES // (4 * max(len(unit_x), 1)))
    for start in range(0, len(unit_queries), step):
        np.maximum(best, (unit_x @ unit_queries[start : start + step].T).max(axis=1), out=best)
    return best


def _pixel_scores(vectors: np.ndarray, unit_q: np.ndarray, combine: str, zero_is_nodata: bool) -> np.ndarray:
    """:func:`cosine_scores` of embedding rows; with ``zero_is_nodata`` (a raster SRL did not make), NaN for
    rows of length 0: there they mark masked places (an export's fill scored 0, 'more similar' to a query
    than truly different ground). In SRL's own rasters they are data: MOSAIKS gives uniform ground (water)
    all-zero features, which score 0 as before."""
    scores = cosine_scores(l2_normalize(vectors), unit_q, combine)
    if zero_is_nodata:
        scores[~vectors.any(axis=1)] = np.nan
    return scores


def _zero_is_nodata(reader: EmbeddingRasterReader) -> bool:
    return reader.decoding.product != SRL_PRODUCT


def _typical_length(sample: np.ndarray) -> float:
    """The median length of the (non-zero) embeddings of ``sample``; 1 when it holds none."""
    norms = np.linalg.norm(sample.astype(np.float64), axis=1)
    norms = norms[norms > 0]
    return float(np.median(norms)) if len(norms) else 1.0


def _directed_sample(reader: EmbeddingRasterReader) -> tuple[np.ndarray, Optional[str]]:
    """A sample of the raster's embeddings as :func:`_pixel_scores` scores them (those of length 0 dropped
    where they are no data), and what the dropped ones mean, when there are any."""
    sample = reader.sample(FLAT_CHECK_SAMPLE)
    directed = sample.any(axis=1)
    zero = len(sample) - int(directed.sum())
    if not zero or not _zero_is_nodata(reader):
        return sample, None
    return sample[directed], (
        f"{zero} of the {len(sample)} pixels sampled have embeddings of length 0 (0 in every band): they "
        "have no similarity to anything and are left out as no data. If they mark places without data, "
        "write them into the file as no data (NaN) to say so."
    )


def _joined(*warnings: Optional[str]) -> Optional[str]:
    return " ".join(w for w in warnings if w) or None


def _block_similarity(unit_q: np.ndarray, combine: str, zero_is_nodata: bool, block: EmbeddingBlock
                      ) -> np.ndarray:
    """Similarity of one block's valid pixels to the query, NaN elsewhere."""
    out = np.full(block.valid.shape, np.nan, np.float32)
    if block.valid.any():
        out[block.valid] = _pixel_scores(block.valid_vectors(), unit_q, combine, zero_is_nodata)
    return out


def _prototype(unit_queries: np.ndarray) -> np.ndarray:
    """The unit mean direction of the examples; an error when they cancel out."""
    mean = unit_queries.mean(axis=0)
    if np.linalg.norm(mean) < MIN_PROTOTYPE_NORM:
        raise InputError(
            "The query examples point in opposite directions and cancel out: their mean has no "
            "direction. Combine them by 'max' (best match to any), or drop the opposite examples."
        )
    return l2_normalize(mean)


def flat_scores_warning(scores: np.ndarray, consequence: str, partial: Optional[str] = None) -> Optional[str]:
    """Why and what to do when the highest of ``scores`` (all of an output's, or a sample's) stand less than
    :data:`FLAT_SCORE_RANGE` above the typical (median) one, else None: a flat map still gets a full colour
    ramp and a flat ranking still looks ranked, so only this check says they mean nothing.
    ``consequence`` says what flatness does to the output at hand; ``partial`` (default: the same), what it
    does where more than 1 % of the scores stand apart ('{apart}': their share), where "the map tells no
    place from another" was false (a query in a class covering 60 % of a raster, sharply unlike the rest).
    From the median, not the lowest: one far-off embedding (a fill value, a cloud) scored far below and hid
    900 near-ties, while a rare target (10 pixels of 480) stands clear of the rest and is no flat map."""
    if len(scores) < 2:
        return None
    typical, highest = float(np.median(scores)), float(np.max(scores))
    if highest - typical >= FLAT_SCORE_RANGE:
        return None
    apart = float(np.mean(scores <= highest - FLAT_SCORE_RANGE))
    checked = f"({len(scores)} embeddings checked: median {typical:.4f}, highest {highest:.4f})"
    if apart <= 0.01:
        return (f"The highest similarity scores stand no higher than the typical one {checked}: the "
                f"embeddings barely differ, so {consequence}. {FLAT_ADVICE}")
    return (f"{1 - apart:.0%} of the similarity scores stand within {FLAT_SCORE_RANGE:g} of the highest "
            f"{checked}: the embeddings of most places barely differ, so "
            f"{(partial or consequence).format(apart=f'{apart:.0%}')}. {FLAT_ADVICE}")


def _flat_map(scores: np.ndarray) -> Optional[str]:
    """:func:`flat_scores_warning` for a similarity map or field."""
    return flat_scores_warning(
        scores, "the map tells no place from another (its colours stretch rounding noise)",
        "the map tells those places only from the other {apart}, not from each other",
    )


def _flat_ranking(vectors: np.ndarray, unit_queries: np.ndarray, combine: str, k: int) -> Optional[str]:
    """:func:`flat_scores_warning` for a top-k ranking, from the scores of ``vectors`` (a sample of all
    the embeddings ranked: the top k alone may rightly be near-ties)."""
    scores = cosine_scores(l2_normalize(vectors), unit_queries, combine)
    return flat_scores_warning(scores, f"the {k} 'most similar' are near-ties, ranked arbitrarily")


def _tell(on_warning: Optional[Warn], *warnings: Optional[str]) -> None:
    """Give each warning to ``on_warning``, or log it (the command line prints srl_core's log)."""
    for warning in filter(None, warnings):
        (on_warning or _log.warning)(warning)


@guards_files(outputs=["output"], inputs=["raster"])
@threaded
def similarity_raster(
    raster: str,
    query: Query,
    output: str,
    combine: str = "mean",
    progress: Optional[Progress] = None,
    *,
    threads: Optional[int] = None,
    backend: Optional[Backend] = None,
    workers: Optional[int] = None,
    scheduler: Optional[str] = None,
    on_warning: Optional[Warn] = None,
) -> str:
    """Cosine similarity (float32, -1..1, NaN = nodata) of every pixel to the query.

    ``threads``: CPU threads for BLAS and faiss (default: see :mod:`srl_core.threads`).
    ``workers``, ``scheduler`` or ``backend``: block by block on Dask (see :mod:`srl_core.backends`);
    local worker processes use ``threads`` each when it is given, else one.
    A map that would be flat (:func:`flat_scores_warning`, checked on a sample before it is written)
    carries the warning in its metadata and gives it to ``on_warning`` (default: logged).
    """
    progress = ensure_progress(progress)
    _check_combine(combine)
    unit_q = l2_normalize(query.matrix())
    if combine == "mean":
        _prototype(unit_q)  # examples that cancel out are refused here, not by a worker
    with using_backend(backend, workers, scheduler, threads) as runner, \
            EmbeddingRasterReader(raster) as reader:
        unlike = query.check_against(reader.recipe)
        sample, zero_length = _directed_sample(reader)
        flat = _flat_map(cosine_scores(l2_normalize(sample), unit_q, combine))
        warning = _joined(*unlike, zero_length, flat)
        kept = reader.warnings(warning)
        meta = {
            KIND_KEY: SIMILARITY_KIND,
            MODEL_ID_KEY: reader.model_id,
            QUERY_KEY: "; ".join(query.labels),
            **reader.decoding.metadata(),
            **({QUALITY_WARNING_KEY: " ".join(kept)} if kept else {}),
        }
        with BlockWriter(
            output, reader.info, np.float32, nodata=float("nan"), metadata=meta, band_names=["similarity"]
        ) as writer:
            score = functools.partial(_block_similarity, unit_q, combine, _zero_is_nodata(reader))
            map_blocks(reader, score, writer, progress, runner)
    _tell(on_warning, warning)
    return str(output)


@guards_files(outputs=["output"], inputs=["points"])
@threaded
def similarity_points(
    points: str,
    query: Query,
    output: str,
    combine: str = "mean",
    field_name: str = "similarity",
    progress: Optional[Progress] = None,
    *,
    threads: Optional[int] = None,
    on_warning: Optional[Warn] = None,
) -> tuple[str, np.ndarray]:
    """Copy an embedding point layer with a similarity field added; return (output, scores).

    ``threads``: CPU threads for BLAS and faiss (default: see :mod:`srl_core.threads`).
    Scores that are all but equal (:func:`flat_scores_warning`) are said to ``on_warning`` (default: logged).
    """
    read = read_points_with_embeddings(points)
    unlike = query.check_against(read.recipe)
    embedded = cosine_scores(l2_normalize(read.usable), l2_normalize(query.matrix()), combine)
    scores = read.spread(embedded.astype(np.float32))
    attributes = dict(read.table.attributes)
    attributes[field_name] = scores.astype(np.float64)
    warnings = [*unlike, read.warning("their similarity is empty (NULL)"), _flat_map(embedded)]
    write_points(
        output, read.table.xyz, read.table.crs_wkt, attributes, embeddings=read.embeddings,
        model_id=read.model_id, progress=progress, fids=read.table.fids, kind=read.origin.kind,
        metadata=read.origin.recipe,
        warnings=read.origin.warnings(*warnings),
    )
    _tell(on_warning, *warnings)
    return str(output), scores


def _combined_top_k(search, unit_q: np.ndarray, k: int, combine: str) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, indices) of the combined query via a per-query ``search(queries, k)``."""
    _check_combine(combine)
    if combine == "mean":
        scores, index = search(_prototype(unit_q)[None], k)
        return scores[0], index[0]
    scores, index = search(unit_q, k)
    flat_s, flat_i = scores.ravel(), index.ravel()
    order = np.argsort(-flat_s, kind="stable")
    _, first = np.unique(flat_i[order], return_index=True)
    keep = order[np.sort(first)][:k]
    return flat_s[keep], flat_i[keep]


@guards_files(outputs=["output"], inputs=["points"])
@threaded
def top_k_points(
    points: str,
    query: Query,
    k: int,
    output: str,
    combine: str = "mean",
    method: str = "auto",
    progress: Optional[Progress] = None,
    *,
    threads: Optional[int] = None,
    on_warning: Optional[Warn] = None,
) -> tuple[str, np.ndarray, np.ndarray]:
    """The ``k`` points most similar to the query as a layer with ``rank`` and ``score``.

    Returns (output, row indices into the input layer, scores), most similar first. The output's
    ``source_fid`` is the input feature's id; where the input has that field already (the ids of the
    features it was made from, which its own could not keep), it is kept as it is.
    ``threads``: CPU threads for BLAS and faiss (default: see :mod:`srl_core.threads`).
    A ranking among near-ties (:func:`flat_scores_warning`) is said to ``on_warning`` (default: logged).
    ``method`` "auto" is exact: the examples make one query (mean) or a few (max), searched exactly in
    less time than an approximate index takes to build. That index's recall is calibrated on single
    embeddings as queries; the mean of examples far apart lies between its cells, and it missed 4 of the
    10 best (recall 0.78 over random sets of 5 examples), so "approximate" with a mean of several says so.
    """
    read = read_points_with_embeddings(points)
    table, emb, model_id = read.table, read.usable, read.model_id
    unlike = query.check_against(read.recipe)
    index = SimilarityIndex(emb, "exact" if method == "auto" else method)
    unit_q = l2_normalize(query.matrix())
    incomplete = None
    if index.approximate is not None and combine == "mean" and len(unit_q) > 1:
        incomplete = (f"Approximate search was calibrated to find {index.calibrated_recall:.0%} of the "
                      f"best matches of one example; the mean of {len(unit_q)} examples can lie between its "
                      "cells, where it finds fewer: use the exact method (the default) for a full ranking.")
    scores, ranked = _combined_top_k(index.search, unit_q, k, combine)
    rows = np.flatnonzero(read.embedded)[ranked]  # among the points that have an embedding
    attributes = {
        name: (col[rows] if isinstance(col, np.ndarray) else [col[i] for i in rows])
        for name, col in table.attributes.items()
    }
    if SOURCE_FID_FIELD not in attributes:  # one already there leads further back: to the features the
        attributes[SOURCE_FID_FIELD] = table.fids[rows]  # embeddings were made from (a shapefile's, from 0)
    extra = {"rank": np.arange(1, len(rows) + 1, dtype=np.int64), "score": scores.astype(np.float64)}
    warnings = [*unlike, incomplete, read.warning("none of them is ranked"),
                _flat_ranking(subsample(emb, FLAT_CHECK_SAMPLE, 0), unit_q, combine, k)]
    write_points(
        output,
        table.xyz[rows],
        table.crs_wkt,
        attributes,
        embeddings=read.embeddings[rows],
        model_id=model_id,
        kind=read.origin.kind, metadata=read.origin.recipe,
        extra_fields=extra,
        progress=progress,
        warnings=read.origin.warnings(*warnings),
    )
    _tell(on_warning, *warnings)
    return str(output), rows, scores


@guards_files(outputs=["output"], inputs=["raster"])
@threaded
def top_k_raster(
    raster: str,
    query: Query,
    k: int,
    output: str,
    combine: str = "mean",
    progress: Optional[Progress] = None,
    *,
    threads: Optional[int] = None,
    on_warning: Optional[Warn] = None,
) -> tuple[str, np.ndarray, np.ndarray]:
    """The ``k`` tiles (pixels) most similar to the query, streamed, as a point layer of tile centres.

    Returns (output, (k, 2) pixel (col, row), scores), most similar first.
    ``threads``: CPU threads for BLAS and faiss (default: see :mod:`srl_core.threads`).
    A ranking among near-ties (:func:`flat_scores_warning`) is said to ``on_warning`` (default: logged).
    """
    progress = ensure_progress(progress)
    if k < 1:
        raise InputError(f"The number of results k must be at least 1, got {k}.")
    unit_q = l2_normalize(query.matrix())
    with EmbeddingRasterReader(raster) as reader:
        unlike = query.check_against(reader.recipe)
        width = reader.info.width
        best = empty_top_k(1)
        zero_is_nodata = _zero_is_nodata(reader)
        for block in reader.blocks(progress):
            if not block.valid.any():
                continue
            scores = _pixel_scores(block.valid_vectors(), unit_q, combine, zero_is_nodata)
            rr, cc = np.nonzero(block.valid)
            flat = (rr + block.window.yoff).astype(np.int64) * width + (cc + block.window.xoff)
            directed = ~np.isnan(scores)
            scores, flat = scores[directed], flat[directed]
            if not len(scores):
                continue
            kk = min(k, len(scores))
            part = np.argpartition(-scores, kk - 1)[:kk]
            best = merge_top_k(*best, scores[part][None], flat[part][None], k)
        n_found = best[0].shape[1]
        if n_found < k:
            has = f"only {n_found} with data" if n_found else "no pixel with data (no data, or of length 0)"
            raise InputError(f"Asked for the {k} most similar tiles, but the raster has {has}.")
        scores, flat = best[0][0], best[1][0]
        cols, rows = flat % width, flat // width
        xy = reader.pixel_centres(cols, rows)
        emb = reader.read_pixels(cols, rows)
        extra = {
            "rank": np.arange(1, k + 1, dtype=np.int64),
            "score": scores.astype(np.float64),
            "col": cols.astype(np.int64),
            "row": rows.astype(np.int64),
        }
        sample, zero_length = _directed_sample(reader)
        warning = _joined(*unlike, zero_length, _flat_ranking(sample, unit_q, combine, k))
        origin = EmbeddingOrigin.of({**reader.metadata, KIND_KEY: TILE_KIND})  # tiles: flag and recipe
        write_points(
            output,
            xy,
            reader.info.crs_wkt,
            None,
            embeddings=emb,
            model_id=reader.model_id,
            kind=origin.kind,
            extra_fields=extra,
            warnings=origin.warnings(warning),
        )
    _tell(on_warning, warning)
    return str(output), np.column_stack([cols, rows]), scores
