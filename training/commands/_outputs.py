"""What an evaluation writes, checked before the evaluation runs: its JSON report, and the cards of the
models it records its figures in."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from srl_core.atomic import check_writable, same_file
from srl_core.bundle import BUNDLED_MODELS_DIR, enclosing_bundle, find_bundle, model_dirs
from srl_core.errors import InputError, ModelError, OutputError


def _folders(models: Iterable[str]) -> list[tuple[str, Path]]:
    """(as given, folder) of the models that resolve (one that does not is the evaluation's to refuse)."""
    found = []
    for model in models:
        try:
            found.append((model, find_bundle(model).resolve()))
        except (InputError, ModelError):
            continue
    return found


def check_json_output(path: str, models: Iterable[str], files: Iterable[str] = (),
                      folders: Iterable[Path] = ()) -> None:
    """Refuse a JSON output inside the folder of a model evaluated (or of ``folders`` a run trains into),
    inside any model bundle's folder, or onto an input file, before the evaluation: ``--json
    mymodel/card.json`` wrote the table over the model's card and left a model that no longer loads."""
    target = Path(path).expanduser().resolve()
    named = [*_folders(models), *((str(f), Path(f).expanduser().resolve()) for f in folders)]
    for model, folder in named:
        if folder in target.parents:
            raise OutputError(f"The --json output {path} is inside the folder of model '{model}' ({folder}), "
                              "which this run reads or writes: choose a path outside it.")
    bundle = enclosing_bundle(target)
    if bundle is not None:
        raise OutputError(f"The --json output {path} is inside the model bundle {bundle}: choose a path "
                          "outside it.")
    for file in files:
        if same_file(target, Path(file).expanduser().resolve()):
            raise OutputError(f"The --json output {path} would overwrite the input {file} of this run; "
                              "choose another output path.")
    check_writable(path)


def check_metrics_targets(models: Iterable[str], rebuild_bundled: bool) -> None:
    """Refuse --write-metrics into the card of a model shipped with SRL unless ``rebuild_bundled`` (make
    models): a run on two bands replaced the bundled card's three tables with its one row, exit 0."""
    if rebuild_bundled:
        return
    for model, folder in _folders(models):
        if folder.parent == BUNDLED_MODELS_DIR.resolve():
            raise InputError(f"--write-metrics would rewrite the card of '{model}', a model shipped with "
                             "SRL; only make models does (--rebuild-bundled).")


def check_outside_models(option: str, path: str) -> None:
    """Refuse a folder a run writes (not a model) inside a models folder, which lists every folder in it as
    a model (a warning on every listing, and a shipped model's rebuild blocked), or inside a model's
    folder, which may hold only its card and weights."""
    target = Path(path).expanduser().resolve()
    for folder in model_dirs():
        if target.is_relative_to(folder.resolve()):
            raise InputError(f"{option} {path} is inside the models folder {folder}, where every folder is "
                             "taken for a model; choose a folder outside it.")
    inside = enclosing_bundle(target)
    if inside is not None:
        raise InputError(f"{option} {path} is inside the model folder {inside}, which may hold only its card "
                         "and weights; choose a folder outside it.")
