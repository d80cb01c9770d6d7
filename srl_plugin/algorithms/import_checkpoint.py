"""Import a published location-encoder checkpoint (GeoCLIP, SatCLIP) as a model bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from qgis.core import (
    QgsProcessingOutputFolder,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from .base import SrlAlgorithm

# Published checkpoints the plugin offers: label -> srl_core.importers kind.
IMPORTERS = {"GeoCLIP": "geoclip", "SatCLIP": "satclip"}


def import_checkpoint(
    kind: str, checkpoint: str, model_id: Optional[str] = None, progress=None, overwrite: bool = False
) -> Path:
    """Convert ``checkpoint`` with srl_core's importer and install it in the user model folder.

    An installed model of the same id is only replaced with ``overwrite``.
    """
    from srl_core.importers import import_checkpoint as convert
    from srl_core.importers import install

    loaded = convert(IMPORTERS[kind], checkpoint, model_id or None)
    if progress is not None:
        progress.check()
    return Path(install(loaded, overwrite=overwrite).path)


class ImportCheckpointAlgorithm(SrlAlgorithm):
    ALG_ID = "import_checkpoint"
    DISPLAY_NAME = "Import a GeoCLIP or SatCLIP checkpoint"
    GROUP = "Models"
    GROUP_ID = "models"
    ICON = "location"
    HELP = (
        "Converts the published weights of a pretrained location encoder into a model bundle "
        "(safetensors + card) in your model folder, so 'Embed point locations' and the other "
        "tools can use it.\n\n"
        "GeoCLIP (Vivanco Cepeda, Nayak & Shah 2023, 'GeoCLIP: Clip-inspired alignment between "
        "locations and images for effective worldwide geo-localization', NeurIPS): an "
        "equal-earth projection, random Fourier features at three scales and three MLP "
        "branches, trained to match photo embeddings; the file is "
        "location_encoder_weights.pth of the geoclip package.\n\n"
        "SatCLIP (Klemmer et al. 2023, 'SatCLIP: Global, general-purpose location embeddings "
        "with satellite imagery'): spherical-harmonics positional encoding and a SIREN network, "
        "trained against Sentinel-2 images; the file is a SatCLIP Lightning checkpoint (.ckpt).\n\n"
        "Checkpoints are read with torch.load(weights_only=True): no code in them is run."
    )

    FORMAT = "FORMAT"
    CHECKPOINT = "CHECKPOINT"
    NEW_ID = "NEW_ID"
    OVERWRITE = "OVERWRITE"
    OUTPUT = "OUTPUT"
    MODEL_ID = "MODEL_ID"

    def initAlgorithm(self, config: Optional[dict] = None) -> None:  # noqa: N802
        self.addParameter(
            QgsProcessingParameterEnum(self.FORMAT, "Checkpoint of", options=list(IMPORTERS), defaultValue=0)
        )
        self.addParameter(
            QgsProcessingParameterFile(
                self.CHECKPOINT,
                "Checkpoint file",
                fileFilter="Checkpoints (*.pth *.pt *.ckpt);;All files (*)",
            )
        )
        self.addParameter(
            QgsProcessingParameterString(
                self.NEW_ID, "Model id (default: geoclip / the file name)", optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterBoolean(self.OVERWRITE, "Replace an installed model of the same id", False)
        )
        self.addOutput(QgsProcessingOutputFolder(self.OUTPUT, "Model bundle folder"))
        self.addOutput(QgsProcessingOutputString(self.MODEL_ID, "Model id"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        kind = list(IMPORTERS)[self.parameterAsEnum(parameters, self.FORMAT, context)]
        checkpoint = self.parameterAsFile(parameters, self.CHECKPOINT, context)
        progress.report(0.1, f"Reading the {kind} checkpoint")
        new_id = self.parameterAsString(parameters, self.NEW_ID, context).strip()
        overwrite = self.parameterAsBool(parameters, self.OVERWRITE, context)
        folder = import_checkpoint(kind, checkpoint, new_id, progress, overwrite)
        feedback.pushInfo(f"{kind} checkpoint imported as model '{folder.name}' in {folder}")
        progress.report(1.0, "Done")
        return {self.OUTPUT: str(folder), self.MODEL_ID: folder.name}
