"""Sub-commands of ``python -m training``: one module each, exposing ``register(subparsers)``."""

import shlex
import sys


def command_line() -> str:
    """This run's command as typed, for a model card: with the card's ``working_folder`` it reruns the
    training (raster paths given relative to the folder it ran in named no file elsewhere)."""
    return "python -m training " + " ".join(shlex.quote(a) for a in sys.argv[1:])
