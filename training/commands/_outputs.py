"""The JSON output of an evaluation, checked before the evaluation runs."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from srl_core.atomic import check_writable, same_file
from srl_core.bundle import find_bundle
from srl_core.errors import InputError, ModelError, OutputError


def check_json_output(path: str, models: Iterable[str], files: Iterable[str] = ()) -> None:
    """Refuse a JSON output inside the folder of a model evaluated, or onto an input file, before the
    evaluation: ``--json mymodel/card.json`` wrote the table over the model's card and left a model that
    no longer loads. ``models``: ids or folders (one that does not resolve is the evaluation's to refuse)."""
    target = Path(path).expanduser().resolve()
    for model in models:
        try:
            folder = find_bundle(model).resolve()
        except (InputError, ModelError):
            continue
        if folder in target.parents:
            raise OutputError(f"The --json output {path} is inside the folder of model '{model}' ({folder}), "
                              "which this run reads: choose a path outside it.")
    for file in files:
        if same_file(target, Path(file).expanduser().resolve()):
            raise OutputError(f"The --json output {path} would overwrite the input {file} of this run; "
                              "choose another output path.")
    check_writable(path)
