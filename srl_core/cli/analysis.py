"""Analyses on embeddings from the command line.

``cluster``, ``apply-clusters``, ``similarity``, ``top-k``, ``interpolate`` and ``rgb-view``.
Inputs are embedding rasters (GeoTIFF) or embedding point layers (GeoPackage); which one
is recognised from the file. Rasters SRL did not make are read when they are a recognised
product (AlphaEarth, TESSERA) or with ``--bands-as-embeddings``. Each command calls one
entry point of :mod:`srl_core.analysis.api` and prints the lines its result gives.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..analysis import api
from ..analysis.clustering import require_model_file_name
from ..analysis.interpolation import interpolate_points
from ..analysis.similarity import Query
from ..embedding_products import PRODUCT_CHOICES, EmbeddingRaster
from ..errors import InputError
from ..names import CLUSTER_METHODS, COMBINE_MODES, ENCODINGS
from ..progress import Progress
from ..vector.crs import crs_to_wkt
from ._backend import add_backend_options, backend_arguments
from ._options import add_point_table_options, add_threads_option, allow_negative_values
from ._progress_bar import text_progress


def _bar() -> Progress:
    """A progress bar on the current stderr (looked up now, not at import)."""
    return text_progress(sys.stderr)


def _input(args: argparse.Namespace) -> api.AnalysisInput:
    """The command's input, recognised as raster or points (a raster checked and described)."""
    return api.open_input(args.input, args.product, args.bands_as_embeddings)


def _print(lines: list[str]) -> None:
    for line in lines:
        if line:
            print(line)


def _query(args: argparse.Namespace, data: api.AnalysisInput) -> Query:
    query = Query()
    raster = (
        EmbeddingRaster(args.query_raster, args.product, args.bands_as_embeddings)
        if args.query_raster
        else data.source
    )
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
    allow_negative_values(parser)  # --pixel -1e5 200
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
    k: Optional[int] = args.k or None  # 0: suggested, as in the Processing dialog
    if args.save_model and args.method != "kmeans":  # before any work: it was ignored without a word
        raise InputError("Only k-means models can be saved (--save-model); HDBSCAN does not apply to new "
                         "data.")
    if args.save_model:
        require_model_file_name(args.save_model, "--save-model")
    result = api.cluster(
        _input(args), args.output, n_clusters=k, method=args.method, normalize=args.normalize,
        sample_size=args.sample, min_cluster_size=args.min_cluster_size, seed=args.seed, progress=_bar(),
        threads=args.threads, **backend_arguments(args),
    )  # fmt: skip
    saving = bool(args.save_model) and result.model is not None
    if saving:  # before saying the classes are written: they are kept only together with the model
        result.model.save(args.save_model)
    _print(result.messages())
    if saving:
        print(f"Model saved to {args.save_model}")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    result = api.apply_clusters(args.model, _input(args), args.output, progress=_bar(),
                                threads=args.threads, **backend_arguments(args))
    _print(result.messages())
    return 0


def run_similarity(args: argparse.Namespace) -> int:
    data = _input(args)
    result = api.similarity(data, _query(args, data), args.output, combine=args.combine, progress=_bar(),
                            threads=args.threads, **backend_arguments(args))
    _print(result.messages())
    return 0


def run_top_k(args: argparse.Namespace) -> int:
    data = _input(args)
    result = api.similarity(
        data, _query(args, data), None, combine=args.combine, top_k=args.k, top_k_output=args.output,
        method=args.method, progress=_bar(), threads=args.threads,
    )  # fmt: skip
    _print(result.messages())
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    result = interpolate_points(
        args.points, None if args.field == "auto" else args.field, args.prediction, args.uncertainty,
        args.resolution, log_transform=args.log,
        extent=args.extent, task=args.task, n_folds=args.folds,
        tile_raster=EmbeddingRaster(args.tile_raster, args.product, args.bands_as_embeddings)
        if args.tile_raster else None,
        n_members=args.members, encoding=args.encoding, seed=args.seed, max_distance=args.max_distance,
        crs=args.crs, x_field=args.x_field, y_field=args.y_field, progress=_bar(), threads=args.threads,
    )  # fmt: skip
    print(result.report())
    return 0


def run_rgb(args: argparse.Namespace) -> int:
    result = api.rgb_view(_input(args), args.output, sample_size=args.sample, seed=args.seed, progress=_bar(),
                          threads=args.threads)
    _print(result.messages())
    return 0


def _add_source_options(parser: argparse.ArgumentParser) -> None:
    """How to read an input raster SRL did not make (a published product or any multi-band raster)."""
    g = parser.add_argument_group("embeddings you already have")
    g.add_argument(
        "--bands-as-embeddings",
        action="store_true",
        help="Treat the bands of a raster SRL did not make as embeddings; values are used as they are.",
    )
    g.add_argument(
        "--product",
        choices=PRODUCT_CHOICES,
        default="auto",
        help="How to decode such a raster: recognise it (auto), AlphaEarth (8-bit de-quantised or float), "
        "TESSERA, or plain float values.",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cluster", help="k-means (or HDBSCAN on points) classes from embeddings.")
    p.add_argument("input", help="Embedding raster (.tif) or embedding points (.gpkg).")
    p.add_argument("output", help="Class raster (.tif) or point layer with a 'cluster' field (.gpkg).")
    p.add_argument("-k", type=int, help="Number of clusters (default, or 0: suggested by silhouette, 2..12).")
    p.add_argument("--method", choices=CLUSTER_METHODS, default=CLUSTER_METHODS[0])
    p.add_argument("--min-cluster-size", type=int, default=5, help="HDBSCAN: smallest cluster.")
    p.add_argument("--sample", type=int, default=200_000, help="Pixels sampled to fit k-means.")
    p.add_argument("--normalize", action="store_true", help="Cluster directions (cosine) not vectors.")
    p.add_argument("--save-model", help="Save the fitted k-means (.safetensors) to apply elsewhere.")
    p.add_argument("--seed", type=int, default=0)
    _add_source_options(p)
    add_threads_option(p)
    add_backend_options(p)
    p.set_defaults(func=run_cluster)

    p = subparsers.add_parser("apply-clusters", help="Apply a saved k-means model to embeddings.")
    p.add_argument("model", help="Model saved by 'cluster --save-model'.")
    p.add_argument("input")
    p.add_argument("output")
    _add_source_options(p)
    add_threads_option(p)
    add_backend_options(p)
    p.set_defaults(func=run_apply)

    p = subparsers.add_parser("similarity", help="Cosine similarity of every pixel/point to examples.")
    p.add_argument("input")
    p.add_argument(
        "output", help="Similarity raster (.tif) or point layer with a 'similarity' field (.gpkg)."
    )
    _add_query_options(p)
    _add_source_options(p)
    add_threads_option(p)
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
        help="Points: exact search, or an approximate index (faiss, for single examples); auto = exact.",
    )
    _add_query_options(p)
    _add_source_options(p)
    add_threads_option(p)
    p.set_defaults(func=run_top_k)

    p = subparsers.add_parser("interpolate", help="Map a point field from location (and tile) embeddings.")
    p.add_argument("points", help="Point layer with the field to map (FILE, or FILE|layername=LAYER).")
    p.add_argument("field", help="Field to map; auto: the first numeric field that is not an identifier.")
    p.add_argument("prediction", help="Prediction raster (.tif).")
    p.add_argument("uncertainty", help="Uncertainty raster (.tif).")
    p.add_argument("--resolution", type=float, help="Cell size in the points' CRS units (default: half the "
                   "median spacing of the points, rounded, no finer than gives a million cells).")
    p.add_argument("--log", action="store_true", help="Fit on log(values): concentrations and other "
                   "positive, skewed values.")
    p.add_argument("--extent", type=float, nargs=4, metavar=("XMIN", "YMIN", "XMAX", "YMAX"))
    allow_negative_values(p)  # --extent -1e5 ...
    p.add_argument("--task", choices=("auto", "regression", "classification"), default="auto")
    add_point_table_options(p)
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
    _add_source_options(p)
    add_threads_option(p)
    p.set_defaults(func=run_interpolate)

    p = subparsers.add_parser("rgb-view", help="PCA colour view (RGB) of embeddings.")
    p.add_argument("input")
    p.add_argument("output", help="RGBA raster (.tif) or point layer with a 'colour' field (.gpkg).")
    p.add_argument("--sample", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    _add_source_options(p)
    add_threads_option(p)
    p.set_defaults(func=run_rgb)
