"""Sub-commands of ``python -m training``: one module each, exposing ``register(subparsers)``."""

import shlex
import sys


def command_line() -> str:
    """This run's command as typed, for a model card and the metrics an evaluation records (a tile card
    whose rasters are named by relative paths also records its ``working_folder``)."""
    return "python -m training " + " ".join(shlex.quote(a) for a in sys.argv[1:])


# what a command stopped by SIGTERM (a time limit, an eviction) keeps for the same command to resume; a
# checkpoint written is named by the run itself (exc.kept): this said one was kept when none had been
RESUMING_CHECKPOINTS = ("The same command starts over: no checkpoint was written (--checkpoint-dir keeps "
                        "one every --checkpoint-every steps).")
STARTING_OVER = "The same command starts over."


def resuming(command: str) -> str:
    """What the same ``command`` picks up again after a SIGTERM: only tile2vec keeps checkpoints."""
    return RESUMING_CHECKPOINTS if command == "tile2vec" else STARTING_OVER
