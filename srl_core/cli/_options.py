"""Options shared by several commands."""

from __future__ import annotations

import argparse
import re

from ..errors import InputError
from ..names import DEFAULT_NORMALISATION, DEVICE_CHOICES, NORMALISATIONS, PRECISIONS


def add_threads_option(parser: argparse.ArgumentParser, files_beside_gpu: bool = False) -> None:
    """``--threads N``: CPU threads for torch, BLAS and faiss (0 = srl_core's default); with
    ``files_beside_gpu`` the help also says what they do when the model runs on a CUDA GPU."""
    gpu = (" With the model on a CUDA GPU they read the raster and compress the output instead "
           "(default 0: physical cores - 1, at most 8).") if files_beside_gpu else ""
    parser.add_argument(
        "--threads", type=int, default=0, metavar="N",
        help="CPU threads for the computation (default 0: 1 on machines with up to 2 cores, else "
        "physical cores - 1, at most 4, so that a busy desktop does not slow the run down)." + gpu,
    )  # fmt: skip


# An argument starting with a minus and a digit is a value, not an option: argparse's own rule takes
# only a lone negative number, so '--extent -100,3000,200,4000' or '--pixel -1e5 200' failed as
# "expected one argument". No option of these commands starts with a digit.
NEGATIVE_VALUE = re.compile(r"-\.?\d")


def allow_negative_values(parser: argparse.ArgumentParser) -> None:
    """Let ``parser``'s options take values that start with a minus and a digit (coordinates)."""
    parser._negative_number_matcher = NEGATIVE_VALUE


def bands_list(text: str) -> list[int]:
    """``--bands 4,3,2`` as a list of 1-based band numbers (argparse type)."""
    from ..raster.source import parse_bands  # GDAL: only when the option is given

    try:
        return parse_bands(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_tile_model_options(parser: argparse.ArgumentParser) -> None:
    """The options of a tile-model run (``embed-raster``, ``sample-tiles``): model, bands, tile size,
    standardisation, device and precision, batch size and the nodata share a tile may have."""
    parser.add_argument("--model", default="auto",
                        help="Model id (see `models`) or bundle folder; 'auto' (default): a learned model "
                        "whose bands the raster has (by band names, else by number), else the training-free "
                        "MOSAIKS features.")
    parser.add_argument("--bands", type=bands_list, help="Raster bands in the model's order, e.g. 4,3,2 "
                        "(default: chosen from the raster's band names, else the first ones).")
    parser.add_argument("--tile-size", type=int, help="Tile size in pixels (default: the model's).")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="Default: auto.")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="fp32 (default, exact) or mixed: float16 autocast, CUDA devices only.")
    parser.add_argument("--batch-size", type=int,
                        help="Tiles per model call (default: 64 on the CPU, 1024 on a CUDA GPU).")
    parser.add_argument("--max-nodata", type=float, default=0.5,
                        help="Largest fraction of nodata pixels a tile may have (default 0.5).")
    parser.add_argument("--normalise", choices=NORMALISATIONS, default=DEFAULT_NORMALISATION,
                        help="Standardise each band with the model card's training statistics, the raster's "
                        "own (another sensor, processing level or scaling), or auto (default): the raster's "
                        "own when it looks unlike the model's training data.")


def add_point_table_options(parser: argparse.ArgumentParser) -> None:
    """``--x-field``, ``--y-field`` and ``--crs``: how to place the points of a table without geometry
    (and ``--crs`` to override a layer's), for every command that reads points."""
    parser.add_argument("--x-field", help="Field holding x / longitude (tables without geometry).")
    parser.add_argument("--y-field", help="Field holding y / latitude (tables without geometry).")
    parser.add_argument("--crs", help="CRS of the points' coordinates, e.g. EPSG:28992 (default: the "
                        "layer's, or EPSG:4326 for a table with lon/lat columns; a table with x/y columns "
                        "needs it).")
