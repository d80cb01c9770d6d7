"""Model ids a user may give a new bundle, checked once for every entry point.

Importing a checkpoint (Python, command line, QGIS) and training a model (``python -m
training``, QGIS) all name the new bundle with an id that becomes a folder name in the user
model folder. An id that is empty, '.', '..' or holds a path separator would write (and
replace) somewhere else; a bundled model's id would be hidden behind the bundled model; an
id already installed is only replaced when the caller asks for it explicitly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Union

from .bundle import BUNDLED_MODELS_DIR, check_bundle_folder, list_bundles, user_models_dir
from .errors import InputError
from .names import AUTO_LOCATION_MODEL, LOCAL_LOCATION_MODEL

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


# ids the model choices take as the automatic choice (tile and location 'auto', location 'local')
RESERVED_IDS = (AUTO_LOCATION_MODEL, LOCAL_LOCATION_MODEL)


def check_model_id(model_id: Optional[str]) -> str:
    """The id stripped, or an InputError when it cannot be a folder name of its own."""
    text = (model_id or "").strip()
    if not text:
        raise InputError("A model id is needed: use letters, digits, '.', '-' and '_'.")
    if not _ID.fullmatch(text):
        raise InputError(
            f"'{text}' is not a usable model id: use up to 100 letters, digits, '.', '-' and '_', "
            "starting with a letter or digit (no '/', '\\', '.' or '..')."
        )
    return text


def bundled_ids() -> set[str]:
    """Ids of the models shipped with SRL."""
    return {card.id for card, folder in list_bundles() if folder.parent == BUNDLED_MODELS_DIR}


def check_new_bundle(
    model_id: Optional[str], folder: Optional[Union[str, os.PathLike]] = None, overwrite: bool = False,
    bundled: bool = False,
) -> Path:
    """Check a new bundle's id and folder before any work; return the folder to write.

    ``folder`` defaults to ``<user model folder>/<id>``. Refused: an unusable id
    (:func:`check_model_id`), a bundled model's id outside the bundled folder, a folder inside
    the bundled folder unless ``bundled`` (``make models`` rebuilding SRL's own: a Processing run
    given that folder and "Overwrite" replaced the shipped ``bandstats`` with a Tile2Vec model), an
    id another user bundle already has, and a folder :func:`~srl_core.bundle.check_bundle_folder`
    refuses (anything but an older bundle; that one only with ``overwrite``).
    """
    model_id = check_model_id(model_id)
    if model_id.lower() in RESERVED_IDS:  # always the automatic choice: a model of this id is never used
        raise InputError(f"'{model_id}' names one of SRL's automatic model choices "
                         f"({', '.join(RESERVED_IDS)}), so a model with that id could never be chosen. "
                         "Choose another id.")
    target = Path(os.path.abspath(Path(folder).expanduser() if folder else user_models_dir() / model_id))
    where = target.parent.resolve() / target.name  # comparable with the resolved folders listed
    if not bundled and BUNDLED_MODELS_DIR in where.parents:
        raise InputError(
            f"{target} is in the folder of the models shipped with SRL ({BUNDLED_MODELS_DIR}), which a "
            "model of yours must not replace nor sit among. Leave the output folder empty (your model "
            "folder) or choose another one."
        )
    if model_id in bundled_ids() and where.parent != BUNDLED_MODELS_DIR:
        raise InputError(
            f"'{model_id}' is the id of a model shipped with SRL; a model of yours with that id would be "
            "hidden behind it. Choose another id."
        )
    for card, existing in list_bundles():
        if card.id == model_id and existing.resolve() != where:
            raise InputError(
                f"A model with the id '{model_id}' is already installed in {existing}; choose another id."
            )
    return check_bundle_folder(target, overwrite, model_id)
