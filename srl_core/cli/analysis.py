"""Analyses on embeddings from the command line.

``cluster``, ``apply-clusters``, ``similarity``, ``top-k``, ``interpolate`` and ``rgb-view``.
Inputs are embedding rasters (GeoTIFF) or embedding point layers (GeoPackage); which one
is recognised from the file.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from osgeo import gdal

from ..analysis.clustering import EmbeddingKMeans, apply_kmeans_raster, cluster_points, fit_kmeans_raster
from ..analysis.interpolation import interpolate_points
from ..analysis.similarity import Query, similarity_points, similarity_raster, top_k_points, top_k_raster
from ..analysis.views import rgb_view_points, rgb_view_raster
from ..errors import InputError
from ..names import CLUSTER_METHODS, COMBINE_MODES, ENCODINGS
from ..progress import Progress
from ..vector.crs import crs_to_wkt
from ._backend import add_backend_options, backend_arguments
from ._progress_bar import text_progress


def _bar() -> Progress:
    """A progress bar on the current stderr (looked up now, not at import)."""
    return text_progress(sys.stderr)


def _is_raster(path: str) -> bool:
    """True for a raster file, False for a vector one; error when GDAL can open neither."""
    for flag, answer in ((gdal.OF_RASTER, True), (gdal.OF_VECTOR, False)):
        try:
            if gdal.OpenEx(str(path), flag) is not None:
                return answer
        except RuntimeError:
            continue
    raise InputError(f"Cannot open {path} as a raster or a vector layer.")


def _query(args: argparse.Namespace) -> Query:
    query = Query()
    raster = args.query_raster or (args.input if _is_raster(args.input) else None)
    crs = crs_to_wkt(args.query_crs) if args.query_crs else None
    if (args.pixel or args.polygon or args.polygon_layer) and raster is None:
        raise InputError("Pixel and polygon queries need an embedding raster (--query-raster).")
    for x, y in args.pixel or []:
        query.add_pixels(raster, [[x, y]], crs)
    for wkt in args.polygon or []:
        query.add_polygon(raster, wkt, crs)
    for layer in args.polygon_layer or []:
        query.add_polygon_layer(raster, layer)
    if args.fid:
        query.add_points(args.query_points or args.input, args.fid)
    query.matrix()  # error now if nothing was given
    return query


def _add_query_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("query (one or more examples)")
    g.add_argument(
        "--pixel",
        nargs=2,
        type=float,
        action="append",
        metavar=("X", "Y"),
        help="Map coordinates of an example pixel (repeatable).",
    )
    g.add_argument(
        "--polygon",
        action="append",
        metavar="WKT",
        help="Example polygon as WKT: mean embedding inside it (repeatable).",
    )
    g.add_argument(
        "--polygon-layer",
        action="append",
        metavar="PATH",
        help="Vector file of example polygons, one example each (repeatable).",
    )
    g.add_argument("--fid", type=int, action="append", help="Feature id of an example point (repeatable).")
    g.add_argument("--query-raster", help="Embedding raster for --pixel/--polygon (default: the input).")
    g.add_argument("--query-points", help="Embedding point layer for --fid (default: the input).")
    g.add_argument("--query-crs", help="CRS of --pixel/--polygon coordinates (default: the raster's).")
    g.add_argument(
        "--combine",
        choices=COMBINE_MODES,
        default="mean",
        help="Several examples: similarity to their mean, or to the best matching one.",
    )


def run_cluster(args: argparse.Namespace) -> int:
    k: Optional[int] = args.k
    if _is_raster(args.input):
        if args.method != "kmeans":
            raise InputError("HDBSCAN is for point layers; use k-means on rasters.")
        model = fit_kmeans_raster(
            args.input,
            k,
            sample_size=args.sample,
            normalize=args.normalize,
            seed=args.seed,
            progress=_bar(),
        )
        apply_kmeans_raster(model, args.input, args.output, progress=_bar(),
                            **backend_arguments(args))
    else:
        _, labels, model = cluster_points(
            args.input,
            args.output,
            method=args.method,
            n_clusters=k,
            min_cluster_size=args.min_cluster_size,
            normalize=args.normalize,
            seed=args.seed,
        )
        if model is None:
            noise = int((labels == 0).sum())
            print(f"HDBSCAN found {int(labels.max())} clusters; {noise} points are noise (0).")
    if model is not None:
        if model.suggestion_ is not None:
            print(model.suggestion_.summary())
        print(f"{model.k} clusters written to {args.output}")
        if args.save_model:
            model.save(args.save_model)
            print(f"Model saved to {args.save_model}")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    model = EmbeddingKMeans.load(args.model)
    if _is_raster(args.input):
        apply_kmeans_raster(model, args.input, args.output, progress=_bar(),
                            **backend_arguments(args))
    else:
        cluster_points(args.input, args.output, model=model)
    print(f"{model.k} clusters written to {args.output}")
    return 0


def run_similarity(args: argparse.Namespace) -> int:
    query = _query(args)
    if _is_raster(args.input):
        similarity_raster(args.input, query, args.output, args.combine, progress=_bar(),
                          **backend_arguments(args))
    else:
        similarity_points(args.input, query, args.output, args.combine)
    print(f"Similarity written to {args.output}")
    return 0


def run_top_k(args: argparse.Namespace) -> int:
    query = _query(args)
    if _is_raster(args.input):
        _, _, scores = top_k_raster(args.input, query, args.k, args.output, args.combine, progress=_bar())
    else:
        _, _, scores = top_k_points(args.input, query, args.k, args.output, args.combine, args.method)
    print(f"{len(scores)} most similar written to {args.output} (scores {scores[0]:.3f} .. {scores[-1]:.3f})")
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    result = interpolate_points(
        args.points, args.field, args.prediction, args.uncertainty, args.resolution,
        extent=args.extent, task=args.task, tile_raster=args.tile_raster, n_folds=args.folds,
        n_members=args.members, encoding=args.encoding, seed=args.seed, max_distance=args.max_distance,
        progress=_bar(),
    )  # fmt: skip
    print(result.report())
    return 0


def run_rgb(args: argparse.Namespace) -> int:
    if _is_raster(args.input):
        rgb_view_raster(args.input, args.output, args.sample, args.seed, progress=_bar())
    else:
        rgb_view_points(args.input, args.output, args.seed)
    print(f"Colour view written to {args.output}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cluster", help="k-means (or HDBSCAN on points) classes from embeddings.")
    p.add_argument("input", help="Embedding raster (.tif) or embedding points (.gpkg).")
    p.add_argument("output", help="Class raster (.tif) or point layer with a 'cluster' field (.gpkg).")
    p.add_argument("-k", type=int, help="Number of clusters (default: suggested by silhouette, 2..12).")
    p.add_argument("--method", choices=CLUSTER_METHODS, default=CLUSTER_METHODS[0])
    p.add_argument("--min-cluster-size", type=int, default=5, help="HDBSCAN: smallest cluster.")
    p.add_argument("--sample", type=int, default=200_000, help="Pixels sampled to fit k-means.")
    p.add_argument("--normalize", action="store_true", help="Cluster directions (cosine) not vectors.")
    p.add_argument("--save-model", help="Save the fitted k-means (.safetensors) to apply elsewhere.")
    p.add_argument("--seed", type=int, default=0)
    add_backend_options(p)
    p.set_defaults(func=run_cluster)

    p = subparsers.add_parser("apply-clusters", help="Apply a saved k-means model to embeddings.")
    p.add_argument("model", help="Model saved by 'cluster --save-model'.")
    p.add_argument("input")
    p.add_argument("output")
    add_backend_options(p)
    p.set_defaults(func=run_apply)

    p = subparsers.add_parser("similarity", help="Cosine similarity of every pixel/point to examples.")
    p.add_argument("input")
    p.add_argument(
        "output", help="Similarity raster (.tif) or point layer with a 'similarity' field (.gpkg)."
    )
    _add_query_options(p)
    add_backend_options(p)
    p.set_defaults(func=run_similarity)

    p = subparsers.add_parser("top-k", help="The k tiles or points most similar to examples, as points.")
    p.add_argument("input")
    p.add_argument("output", help="Point layer (.gpkg) with rank and score.")
    p.add_argument("-k", type=int, default=10)
    p.add_argument(
        "--method",
        choices=("auto", "exact", "approximate"),
        default="auto",
        help="Points: exact search, or an approximate index (faiss); auto = approximate beyond 1M.",
    )
    _add_query_options(p)
    p.set_defaults(func=run_top_k)

    p = subparsers.add_parser("interpolate", help="Map a point field from location (and tile) embeddings.")
    p.add_argument("points", help="Point layer with the field to map.")
    p.add_argument("field")
    p.add_argument("prediction", help="Prediction raster (.tif).")
    p.add_argument("uncertainty", help="Uncertainty raster (.tif).")
    p.add_argument("--resolution", type=float, required=True, help="Cell size in the points' CRS units.")
    p.add_argument("--extent", type=float, nargs=4, metavar=("XMIN", "YMIN", "XMAX", "YMAX"))
    p.add_argument("--task", choices=("auto", "regression", "classification"), default="auto")
    p.add_argument("--tile-raster", help="Embedding raster whose tile embeddings join the location ones.")
    p.add_argument(
        "--max-distance",
        type=float,
        metavar="DIST",
        help="Leave pixels farther than this (points' CRS units) from every sample empty in both "
        "rasters, rather than extrapolate there (default: no limit).",
    )
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--members", type=int, default=8, help="Ensemble size.")
    p.add_argument(
        "--encoding",
        choices=ENCODINGS,
        default="rff",
        help="Location encoding at the points' scales (rff recommended; see the benchmark).",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_interpolate)

    p = subparsers.add_parser("rgb-view", help="PCA colour view (RGB) of embeddings.")
    p.add_argument("input")
    p.add_argument("output", help="RGBA raster (.tif) or point layer with a 'colour' field (.gpkg).")
    p.add_argument("--sample", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_rgb)
