"""``python -m srl_core sample-tiles RASTER POINTS OUTPUT [--model ID]``: tile embeddings at points."""

from __future__ import annotations

import argparse
import sys

from ..tile_points import embed_tile_points_file
from ._options import add_point_table_options, add_threads_option, add_tile_model_options
from ._progress_bar import text_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample-tiles",
        help="Embed the raster tile centred at each point of a layer; write the points with them.",
        description="Points in any CRS; a field emb_valid is 0 where the tile runs off the raster or is "
        "mostly nodata (its embedding fields are then empty).",
    )
    parser.add_argument("raster", help="Input raster (any GDAL format, projected CRS).")
    parser.add_argument("points", help="Point layer (GeoPackage, shapefile, GeoJSON, ...) or CSV.")
    parser.add_argument("output", help="Output GeoPackage (.gpkg) with emb_000.. and emb_valid fields.")
    parser.add_argument("--layer", help="Layer name in a multi-layer source (needed when the file holds "
                                      "several; or give FILE|layername=NAME).")
    add_point_table_options(parser)
    add_tile_model_options(parser)
    add_threads_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = embed_tile_points_file(
        args.raster, args.points, args.output, args.model, layer=args.layer, x_field=args.x_field,
        y_field=args.y_field, crs=args.crs, bands=args.bands, tile_size=args.tile_size,
        normalisation=args.normalise, device=args.device, precision=args.precision,
        batch_size=args.batch_size,
        max_nodata_fraction=args.max_nodata, progress=text_progress(), threads=args.threads,
    )
    print(file=sys.stderr)  # end the progress bar's line
    print(f"{result.path}: {result.embedded} of {result.points} points embedded (model {result.model_id}).")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0
