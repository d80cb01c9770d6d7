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

import importlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from .errors import ModelError

if TYPE_CHECKING:  # torch is imported where weights are read or written: listing cards stays light
    import torch

CARD_NAME = "card.json"
WEIGHTS_NAME = "weights.safetensors"
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


def user_models_dir() -> Path:
    """Where imported and user-trained bundles go."""
    env = os.environ.get("SRL_MODELS_DIR")
    return Path(env).expanduser() if env else Path.home() / ".local" / "share" / "srl" / "models"


@dataclass
class ModelCard:
    """The JSON card stored beside the weights.

    ``inputs`` for a tile model: ``bands`` (list of {name, description}), ``normalisation``
    ({mean: [...], std: [...]} per band, applied as (x - mean) / std), ``tile_size`` (px),
    ``pixel_size_m``, ``sensor``. For a location model: ``coordinates`` ("lon/lat WGS84").
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

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "card") -> ModelCard:
        required = ("id", "kind", "architecture", "config", "embedding_size")
        missing = [k for k in required if k not in data]
        if missing:
            raise ModelError(f"{source}: model card is missing {', '.join(missing)}.")
        known = {f for f in cls.__dataclass_fields__}
        card = cls(**{k: v for k, v in data.items() if k in known})
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
    """Rebuild the (untrained) torch module a card describes."""
    module = importlib.import_module(ARCHITECTURES[card.architecture])
    try:
        return module.build_from_config(dict(card.config))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"Model '{card.id}': invalid architecture config: {exc}") from exc


def read_card(folder: Union[str, Path]) -> ModelCard:
    """Read and validate ``card.json`` of a bundle folder."""
    path = Path(folder) / CARD_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"No {CARD_NAME} in {folder}: not a model bundle.") from exc
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path} is not valid JSON: {exc}") from exc
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
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append("missing: " + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
        if extra:
            parts.append("unexpected: " + ", ".join(extra[:8]) + (" ..." if len(extra) > 8 else ""))
        if shapes:
            parts.append("wrong shape: " + ", ".join(shapes[:8]))
        raise ModelError(f"{what}: weights do not match the architecture ({'; '.join(parts)}).")
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


def save_bundle(module: torch.nn.Module, card: ModelCard, folder: Union[str, Path]) -> Path:
    """Write a bundle atomically: a complete folder appears, or nothing does."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.partial-", dir=folder.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"id": card.id})
        (tmp / CARD_NAME).write_text(card.to_json(), encoding="utf-8")
        # mkdtemp and safetensors make private files (0700/0600); a bundle is shared, as any file
        mask = _current_umask()
        os.chmod(tmp, 0o777 & ~mask)
        for path in tmp.iterdir():
            os.chmod(path, 0o666 & ~mask)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def model_dirs() -> list[Path]:
    """Folders searched for bundles by id: bundled first, then the user's."""
    return [BUNDLED_MODELS_DIR, user_models_dir()]


def list_bundles() -> list[tuple[ModelCard, Path]]:
    """Every readable bundle in the model folders (unreadable ones are skipped)."""
    found = []
    for root in model_dirs():
        if not root.is_dir():
            continue
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                found.append((read_card(sub), sub))
            except ModelError:
                continue
    return found


def find_bundle(model: Union[str, Path]) -> Path:
    """Resolve a model id or a bundle folder path to a folder."""
    candidate = Path(model).expanduser()
    if candidate.is_dir():
        return candidate
    for card, folder in list_bundles():
        if card.id == str(model):
            return folder
    known = ", ".join(card.id for card, _ in list_bundles()) or "none"
    raise ModelError(f"No model '{model}' found (known models: {known}).")


def load_model(model: Union[str, Path, LoadedModel]) -> LoadedModel:
    """Load by id, by folder path, or pass through an already loaded model."""
    if isinstance(model, LoadedModel):
        return model
    return load_bundle(find_bundle(model))
