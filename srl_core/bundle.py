"""Model bundles: ``<folder>/weights.safetensors`` plus ``<folder>/card.json``.

The card says everything a user or an engine needs to use the weights correctly:
the architecture and its config (to rebuild the torch module), the inputs (bands,
normalisation, tile and pixel size for tile models; lon/lat for location models),
the embedding size, how it was trained, its metrics and its licence.

Weights are never pickled: safetensors only. Reading cards (listing models, as QGIS does
when it loads the plugin) does not import torch, which takes seconds. Bundles are found
by id in the bundled ``resources/models`` folder and in the user's model folder
(``SRL_MODELS_DIR`` or ``~/.local/share/srl/models``), or opened by path.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from .atomic import partial_path, remove_stale_partials, remove_with_sidecars
from .card_schema import check_card_fields
from .checks import check_finite_state
from .errors import BundleExistsError, ModelError, OutputError

if TYPE_CHECKING:  # torch is imported where weights are read or written: listing cards stays light
    import torch

CARD_NAME = "card.json"
WEIGHTS_NAME = "weights.safetensors"
_BUNDLE_FILES = (WEIGHTS_NAME, CARD_NAME)  # all a bundle folder holds
FORMAT_VERSION = 1
KINDS = ("tile", "location")

# Architecture name -> module exposing ``build_from_config(config: dict) -> torch.nn.Module``.
# A card can only name these, so loading a bundle never imports arbitrary code.
ARCHITECTURES = {
    "location_encoder": "srl_core.models.location",
    "tilenet": "srl_core.models.tile",
    # training-free tile encoders: no weights, bound to the user's raster (srl_core.training_free)
    "bandstats": "srl_core.models.training_free",
    "mosaiks": "srl_core.models.training_free",
}

BUNDLED_MODELS_DIR = Path(__file__).resolve().parent.parent / "resources" / "models"
log = logging.getLogger(__name__)
_warned: set[tuple[str, str]] = set()  # (folder, problem) already logged: listing runs often


def user_models_dir() -> Path:
    """Where imported and user-trained bundles go."""
    env = os.environ.get("SRL_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "srl" / "models"


@dataclass
class ModelCard:
    """The JSON card stored beside the weights.

    ``inputs`` for a tile model: ``bands`` (list of {name, description}), ``normalisation``
    ({mean: [...], std: [...]} per band, applied as (x - mean) / std), ``tile_size`` (px),
    ``pixel_size_m``, ``sensor``, and ``nodata`` when training was told one (the engines apply it to bands
    of a raster that declare none). For a location model: ``coordinates`` ("lon/lat WGS84").
    """

    id: str
    kind: str
    architecture: str
    config: dict[str, Any]
    embedding_size: int
    description: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    licence: str = "unknown"
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @property
    def size_text(self) -> str:
        """The embedding size for people: a training-free model's card says 0, as its size is set by the
        raster it embeds, and "Embedding size 0" was shown as such."""
        if self.embedding_size:
            return str(self.embedding_size)
        scales = self.config.get("scales") if self.architecture == "bandstats" else None
        if isinstance(scales, list) and scales:
            return f"{2 * len(scales)} x the raster's band count"
        return "set by the raster's band count"

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "card") -> ModelCard:
        check_card_fields(data, source)
        required = ("id", "kind", "architecture", "config", "embedding_size")
        missing = [k for k in required if k not in data]
        if missing:
            raise ModelError(f"{source}: model card is missing {', '.join(missing)}.")
        known = {f for f in cls.__dataclass_fields__}
        whole = {k: int(data[k]) for k in ("embedding_size", "format_version") if k in data}  # 64.0 is 64
        card = cls(**{k: v for k, v in {**data, **whole}.items() if k in known})
        if card.kind not in KINDS:
            raise ModelError(f"{source}: unknown model kind '{card.kind}' (expected {KINDS}).")
        if card.architecture not in ARCHITECTURES:
            raise ModelError(f"{source}: unknown architecture '{card.architecture}'.")
        return card


@dataclass
class LoadedModel:
    """A torch module in eval mode together with its card and where it came from."""

    module: torch.nn.Module
    card: ModelCard
    path: Optional[Path] = None

    @property
    def id(self) -> str:
        return self.card.id


def build_module(card: ModelCard) -> torch.nn.Module:
    """Rebuild the (untrained) torch module a card describes (its size bounded before allocation)."""
    from .model_build import build_bounded

    module = importlib.import_module(ARCHITECTURES[card.architecture])
    built = build_bounded(module.build_from_config, card.config, f"Model '{card.id}'")
    size_of = getattr(module, "embedding_size", None)  # architectures whose config fixes the size
    size = size_of(card.config) if size_of is not None else card.embedding_size
    if size != card.embedding_size:
        raise ModelError(
            f"Model '{card.id}': its card says {card.embedding_size} dimensions, but its config makes "
            f"{size}; the card was edited or damaged."
        )
    return built


def enclosing_bundle(path: Union[str, Path]) -> Optional[Path]:
    """The model bundle folder that ``path`` is, or lies in (the nearest folder holding a card), else None:
    what a run must not write into (checkpoints, an evaluation's report), whatever model it is."""
    resolved = Path(path).expanduser().resolve()
    return next((folder for folder in (resolved, *resolved.parents) if (folder / CARD_NAME).is_file()), None)


def read_card(folder: Union[str, Path]) -> ModelCard:
    """Read and validate ``card.json`` of a bundle folder."""
    path = Path(folder) / CARD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"No {CARD_NAME} in {folder}: not a model bundle.") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"Cannot read {path} ({exc}); check the file and its permissions.") from exc
    return ModelCard.from_dict(data, source=str(path))


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load weights, naming missing, unexpected and mis-shaped tensors in the error."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    numbers = [f"{k} ({str(t.dtype).replace('torch.', '')})" for k, t in state.items()
               if k in expected and expected[k].is_floating_point() and not t.is_floating_point()]
    if numbers:  # cast to float on loading, integers or booleans gave embeddings unrelated to the model's
        raise ModelError(f"{what}: weights that must be floating-point numbers are not: "
                         f"{', '.join(numbers[:4])}{' ...' if len(numbers) > 4 else ''}; the file is not "
                         "this model's weights.")
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
        if extra:
            parts.append("unexpected: " + ", ".join(extra[:8]) + (" ..." if len(extra) > 8 else ""))
        if shapes:
            parts.append("wrong shape: " + ", ".join(shapes[:8]))
        raise ModelError(f"{what}: weights do not match the architecture ({'; '.join(parts)}).")
    check_finite_state(state, what)
    module.load_state_dict(state, strict=True)


def load_bundle(folder: Union[str, Path]) -> LoadedModel:
    """Load a bundle folder: validate the card, rebuild the module, load safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    card = read_card(folder)
    module = build_module(card)
    weights = folder / WEIGHTS_NAME
    try:
        state = load_file(str(weights))
    except FileNotFoundError as exc:
        raise ModelError(f"Model '{card.id}': {WEIGHTS_NAME} is missing in {folder}.") from exc
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"Model '{card.id}': {weights} is corrupt or unreadable ({exc}).") from exc
    load_state_strict(module, state, f"Model '{card.id}'")
    module.eval()
    return LoadedModel(module=module, card=card, path=folder)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_bundle_folder(
    folder: Union[str, Path], overwrite: bool = False, model_id: Optional[str] = None
) -> Path:
    """Refuse a bundle folder whose replacement could destroy anything but an older bundle, or that
    cannot be written.

    A new or empty folder is fine; one holding only an SRL model card (and weights) is an older
    bundle, replaced only with ``overwrite`` and, when ``model_id`` is given, only if it is that
    model's; anything else (a file, a link, a folder with other files, a ``card.json`` that is not an
    SRL card) is the user's and is never touched. Whether the bundle can be written there is
    tried too (:func:`_probe_writable`): callers check before hours of training, not after.
    """
    folder = Path(os.path.abspath(Path(folder).expanduser()))  # '..' folded, links not followed
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise OutputError(f"{folder} exists and is not a model bundle folder; choose a new or empty folder.")
    if folder.is_dir():
        for name in _BUNDLE_FILES:  # what a killed save into this folder left (_write_into)
            remove_stale_partials(folder / name)
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    if entries:
        _refuse_other_content(folder, entries, overwrite, model_id)
    _probe_writable(folder, into=folder.is_dir() and not entries)
    return folder


def _refuse_other_content(folder: Path, entries: list[str], overwrite: bool, model_id: Optional[str]) -> None:
    """Refuse a folder holding anything but a bundle, a bundle of another model than ``model_id`` (when
    given), and a bundle without ``overwrite``. A ``card.json`` is ours only when it reads as an SRL model
    card: a folder holding someone's settings file of that name was replaced."""
    others = [name for name in entries if name not in _BUNDLE_FILES]
    if others or CARD_NAME not in entries:
        shown = ", ".join(others[:3] or entries[:3]) + (" ..." if len(others) > 3 else "")
        raise OutputError(
            f"{folder} is not a model bundle folder (it holds {shown}); a model is only written over a "
            f"folder holding just {CARD_NAME} and {WEIGHTS_NAME}. Choose a new or empty folder."
        )
    try:
        existing = read_card(folder).id
    except ModelError as exc:
        raise OutputError(
            f"{folder} holds a {CARD_NAME} that is not a readable SRL model card ({exc}), so it is not "
            "replaced. Choose a new or empty folder, or remove that folder yourself if it was a model."
        ) from exc
    if model_id is not None and existing != model_id:
        raise OutputError(
            f"{folder} holds the model '{existing}'; writing '{model_id}' there would delete it. Choose "
            f"another folder (or remove '{existing}' first)."
        )
    if not overwrite:
        raise BundleExistsError(
            f"{folder} already holds a model bundle ('{existing}'); choose another model id or folder, or "
            "ask to overwrite it (--overwrite on the command line; in QGIS, 'Overwrite a model of the same "
            "id or folder' when training, 'Replace an installed model of the same id' when importing)."
        )


def _probe_writable(folder: Path, into: bool) -> None:
    """Create and remove what saving will create first: a partial folder beside ``folder`` (with its
    missing parents), or, ``into`` an existing empty folder, a partial entry inside it. A parent that
    is a file, a read-only place or a missing permission is then one clear error before any work."""
    probe = partial_path(folder / WEIGHTS_NAME) if into else partial_path(folder)
    missing = [p for p in reversed(probe.parents) if not p.exists()]  # outermost first
    created: list[Path] = []
    try:
        for parent in missing:
            parent.mkdir()
            created.append(parent)
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        file = next((p for p in folder.parents if p.is_file()), None)
        reason = f"{file} is a file, not a folder" if file else exc.strerror or str(exc)
        message = f"Cannot write the model bundle {folder}: {reason}; choose another folder."
        raise OutputError(message) from exc
    finally:
        for parent in reversed(created):
            with contextlib.suppress(OSError):
                parent.rmdir()


def save_bundle(
    module: torch.nn.Module, card: ModelCard, folder: Union[str, Path], overwrite: bool = False
) -> Path:
    """Write a bundle atomically: a complete bundle appears, or nothing does.

    An existing bundle at ``folder`` is only replaced with ``overwrite``; any other existing
    content is refused (see :func:`check_bundle_folder`). An existing empty folder (a mount
    point, a folder made for the model) is written into, file by file, the card last; otherwise
    the bundle is written as a partial folder beside it and renamed into place.
    """
    from safetensors import SafetensorError

    folder = check_bundle_folder(folder, overwrite, card.id)
    into = folder.is_dir() and not any(folder.iterdir())
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    check_finite_state(state, f"Model '{card.id}'")
    try:
        if into:
            _write_into(state, card, folder)
        else:
            _write_beside(state, card, folder)
    except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error
        reason = getattr(exc, "strerror", None) or exc
        raise OutputError(f"Could not write the model bundle {folder}: {reason}") from exc
    return folder


def _write_files(state: dict[str, torch.Tensor], card: ModelCard, paths: dict[str, Path]) -> None:
    """Weights and card at ``paths[WEIGHTS_NAME]`` and ``paths[CARD_NAME]``, with shared permissions
    (safetensors makes private files, 0600; a bundle is shared, as any file)."""
    from safetensors.torch import save_file

    save_file(state, str(paths[WEIGHTS_NAME]), metadata={"id": card.id})
    paths[CARD_NAME].write_text(card.to_json(), encoding="utf-8")
    mask = _current_umask()
    for path in paths.values():
        os.chmod(path, 0o666 & ~mask)


def _write_beside(state: dict[str, torch.Tensor], card: ModelCard, folder: Path) -> None:
    """A partial folder beside ``folder``, renamed onto it when complete; removed on any failure."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder)
    tmp = partial_path(folder)
    try:
        tmp.mkdir()
        os.chmod(tmp, 0o777 & ~_current_umask())  # mkdtemp-like private folders: a bundle is shared
        _write_files(state, card, {name: tmp / name for name in _BUNDLE_FILES})
        _replace_folder(tmp, folder)
    except BaseException:
        remove_with_sidecars(tmp)
        raise


def _write_into(state: dict[str, torch.Tensor], card: ModelCard, folder: Path) -> None:
    """Into an existing empty folder, which may not be renamed (a mount point): each file under a partial
    name inside it, renamed into place when both are complete, the card last (a folder is listed as a
    bundle by its card, so it never lists one without weights); the folder is left empty on failure."""
    partials = {name: partial_path(folder / name) for name in _BUNDLE_FILES}
    try:
        _write_files(state, card, partials)
        os.replace(partials[WEIGHTS_NAME], folder / WEIGHTS_NAME)
        os.replace(partials[CARD_NAME], folder / CARD_NAME)
    except BaseException:
        for path in [*partials.values(), folder / WEIGHTS_NAME]:
            path.unlink(missing_ok=True)
        raise


def _replace_folder(new: Path, folder: Path) -> None:
    """Move ``new`` onto ``folder``; an old bundle there stays until the new one is in place."""
    if not folder.exists():
        os.replace(new, folder)
        return
    aside = partial_path(folder)
    os.replace(folder, aside)
    try:
        os.replace(new, folder)
    except OSError:
        os.replace(aside, folder)
        raise
    for name in _BUNDLE_FILES:
        (aside / name).unlink(missing_ok=True)
    aside.rmdir()


def model_dirs() -> list[Path]:
    """Folders searched for bundles by id: bundled first, then the user's."""
    return [BUNDLED_MODELS_DIR, user_models_dir()]


def list_bundles() -> list[tuple[ModelCard, Path]]:
    """Every readable bundle in the model folders; unreadable ones are skipped with a logged warning
    naming the folder (once), so that one bad card never stops the other models from loading."""
    found, skipped = scan_bundles()
    for folder, problem in skipped:
        _warn_once(folder, problem)
    return found


def scan_bundles() -> tuple[list[tuple[ModelCard, Path]], list[tuple[Path, str]]]:
    """``(readable bundles, skipped folders with what is wrong with each)`` of the model folders: a
    dialog listing models can then say which folder it left out and why, not only a log."""
    found: list[tuple[ModelCard, Path]] = []
    skipped: list[tuple[Path, str]] = []
    for root in model_dirs():
        if not root.is_dir():
            continue
        try:
            subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError as exc:
            skipped.append((root, f"cannot list it ({exc})"))
            continue
        for sub in subs:
            try:
                found.append((read_card(sub), sub))
            except ModelError as exc:
                skipped.append((sub, str(exc)))
    return found, skipped


def _warn_once(folder: Path, problem: str) -> None:
    if (str(folder), problem) not in _warned:
        _warned.add((str(folder), problem))
        log.warning("Skipped the model folder %s: %s", folder, problem)


def find_bundle(model: Union[str, Path]) -> Path:
    """Resolve a model id or a bundle folder path to a folder. A bare name (no folder separator) that an
    installed model has as its id is that model, whatever folder of that name the working directory holds:
    a model trained as 'landsat' failed to load from QGIS started in a home folder with a 'landsat' folder
    (give './landsat' for the folder)."""
    candidate = Path(model).expanduser()
    bare = isinstance(model, str) and Path(model).name == model and model not in (".", "..")
    found = [folder for card, folder in list_bundles() if card.id == str(model)]
    if candidate.is_dir() and not (bare and found):
        return candidate
    if found and found[0].parent == BUNDLED_MODELS_DIR:
        return found[0]  # a bundled model is never hidden by a copy (new user models cannot take its id)
    if len(found) > 1:  # folders copied by hand: which one was meant cannot be told
        raise ModelError(
            f"{len(found)} installed models have the id '{model}' ({', '.join(str(f) for f in found)}): "
            "which one to use cannot be told. Remove one, or give it another id in its card.json."
        )
    if found:
        return found[0]
    known = ", ".join(card.id for card, _ in list_bundles()) or "none"
    raise ModelError(f"No model '{model}' found (known models: {known}).")


def load_model(model: Union[str, Path, LoadedModel]) -> LoadedModel:
    """Load by id, by folder path, or pass through an already loaded model."""
    if isinstance(model, LoadedModel):
        return model
    return load_bundle(find_bundle(model))
