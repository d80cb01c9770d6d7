"""``python -m srl_core embed-raster INPUT OUTPUT --model ID_OR_PATH``: a raster to an embedding raster."""

from __future__ import annotations

import argparse
import sys

from ..errors import SRLError
from ..tiles import embed_raster
from ._backend import add_backend_options, backend_arguments
from ._options import add_threads_option, add_tile_model_options, allow_negative_values
from ._progress_bar import text_progress


def _extent(text: str) -> list[float]:
    parts = text.replace(" ", "").split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("give four numbers: xmin,ymin,xmax,ymax")
    try:
        return [float(p) for p in parts]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not numbers: {text}") from exc


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "embed-raster",
        help="Embed every tile of a raster with a tile model; write an embedding GeoTIFF.",
        description="One output pixel per tile centre, one band per embedding dimension, NaN where a "
        "tile is mostly nodata or outside the mask.",
    )
    parser.add_argument("input", help="Input raster (any GDAL format, projected CRS).")
    parser.add_argument("output", help="Output embedding GeoTIFF.")
    add_tile_model_options(parser)
    parser.add_argument("--stride", type=int, help="Stride in pixels (default: the tile size).")
    parser.add_argument("--extent", type=_extent, help="xmin,ymin,xmax,ymax in the raster's CRS, e.g. "
                        "--extent -100,3000,200,4000 (or --extent=-100,3000,200,4000).")
    parser.add_argument("--mask", help="Raster (non-zero = inside) or polygon layer limiting the tiles; one "
                        "layer of a file of several as FILE|layername=LAYER.")
    parser.add_argument("--float16", action="store_true", help="Write half-precision floats (smaller file).")
    add_threads_option(parser, files_beside_gpu=True)
    add_backend_options(parser, windows=True)
    allow_negative_values(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        result = embed_raster(
            args.input, args.output, args.model, bands=args.bands, tile_size=args.tile_size,
            stride=args.stride, extent=args.extent, mask_path=args.mask, device=args.device,
            precision=args.precision, batch_size=args.batch_size,
            dtype="float16" if args.float16 else "float32",
            max_nodata_fraction=args.max_nodata, normalisation=args.normalise, progress=text_progress(),
            window_tiles=args.window_tiles, threads=args.threads, **backend_arguments(args),
        )
    except SRLError:
        print(file=sys.stderr)  # end the progress bar's line before the error message
        raise
    for choice in result.choices:
        print(choice, file=sys.stderr)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"{result.path}: {result.width} x {result.height} pixels, {result.embedding_size} bands; "
        f"{result.tiles_embedded} of {result.tiles_total} tiles embedded on {result.device} "
        f"in {result.seconds:.1f} s (model {result.model_id})."
    )
    return 0
