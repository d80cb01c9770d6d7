"""``python -m srl_core embed-points`` and ``import-model``: the location side on the command line.

    python -m srl_core embed-points points.csv out.gpkg --model satclip-l10 --x-field lon --y-field lat
    python -m srl_core import-model geoclip location_encoder_weights.pth --id geoclip
"""

from __future__ import annotations

import argparse
import sys

from ..device import DEVICE_CHOICES
from ..errors import InputError
from ..importers import IMPORTERS, import_and_install
from ..location import embed_points_file
from ._backend import add_backend_options, backend_arguments
from ._options import add_point_table_options, add_threads_option
from ._progress_bar import text_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    embed = subparsers.add_parser(
        "embed-points",
        help="Embed the points of a vector layer or CSV with a location model, to a GeoPackage.",
    )
    embed.add_argument("input", help="Point layer (GeoPackage, shapefile, GeoJSON, ...) or CSV.")
    embed.add_argument("output", help="Output GeoPackage (.gpkg) with emb_000.. fields.")
    embed.add_argument(
        "--model",
        default="auto",
        help="Location model id or bundle folder; 'local': features fitted to the layer's own extent "
        "(layers far smaller than global models resolve); 'auto' (default): the bundled model, or "
        "'local' where it cannot tell the points apart.",
    )
    embed.add_argument("--layer", help="Layer name in a multi-layer source (needed when the file holds "
                                      "several; or give FILE|layername=NAME).")
    add_point_table_options(embed)
    embed.add_argument("--device", default="auto", help=f"One of {', '.join(DEVICE_CHOICES)} (default auto).")
    embed.add_argument("--batch-size", type=int, default=4096, help="Points per batch (default 4096).")
    add_threads_option(embed)
    add_backend_options(embed, partitions=True)
    embed.set_defaults(func=run_embed)

    imp = subparsers.add_parser(
        "import-model", help="Import a published GeoCLIP or SatCLIP checkpoint into the user model folder."
    )
    imp.add_argument("kind", choices=sorted(IMPORTERS), help="Which checkpoint format.")
    imp.add_argument("path", help="GeoCLIP location_encoder_weights.pth or SatCLIP .ckpt file.")
    imp.add_argument("--id", dest="model_id", help="Model id (default: from the file name).")
    imp.add_argument("--overwrite", action="store_true", help="Replace an installed model of the same id.")
    imp.set_defaults(func=run_import)


def run_embed(args: argparse.Namespace) -> int:
    out = embed_points_file(
        args.input,
        args.output,
        args.model,
        layer=args.layer,
        x_field=args.x_field,
        y_field=args.y_field,
        crs=args.crs,
        device=args.device,
        batch_size=args.batch_size,
        progress=text_progress(),
        partition_rows=args.partition_rows,
        threads=args.threads,
        on_message=lambda text: print(f"\n{text}", file=sys.stderr),
        **backend_arguments(args),
    )
    print(out)
    return 0


def run_import(args: argparse.Namespace) -> int:
    if args.model_id is not None and not args.model_id.strip():  # it fell back to the default id, unsaid
        raise InputError("--id is empty: give a model id, or leave --id out for the one from the file name.")
    loaded = import_and_install(args.kind, args.path, args.model_id, overwrite=args.overwrite)
    card = loaded.card
    print(f"Imported '{card.id}' ({card.embedding_size}-d, licence {card.licence}) to {loaded.path}")
    return 0
