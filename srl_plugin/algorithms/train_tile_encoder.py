"""Train a Tile2Vec tile encoder on the analyst's rasters and install it as a model bundle."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from qgis.core import (
    QgsProcessing,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingUtils,
)

from srl_core.errors import InputError
from srl_core.model_ids import check_model_id
from srl_core.names import TILE_OBJECTIVES, TILE_TRAINING_NORMALISATIONS, TILE_VARIANTS

from .base import SrlAlgorithm
from .layers import dataset_spec, mask_spec
from .params import (
    add_device_parameter,
    add_threads_parameter,
    advanced,
    device_from_parameters,
    threads_from_parameters,
)

# The dialog's words for srl_core.names.TILE_OBJECTIVES, in that order (Processing stores the index).
OBJECTIVE_LABELS = ("Triplet margin loss (Tile2Vec)",
                    "InfoNCE: each tile picks its neighbour among all tiles of the batch",
                    "VICReg: neighbours pulled together, no negatives")
# ... and for srl_core.names.TILE_TRAINING_NORMALISATIONS
NORMALISATION_LABELS = ("Automatic: each raster by its own statistics when their band means differ widely",
                        "All rasters by their pooled statistics (one sensor and scaling)",
                        "Each raster by its own statistics (several sensors or scalings)")


def bundle_folder(alg, parameters, context, model_id: str) -> str:
    """The chosen output folder, or ``<user models>/<model id>`` so the model is listed at once.

    Checked before training (srl_core.model_ids.check_new_bundle): a folder holding anything but
    an older bundle is refused, and an older bundle is only replaced with OVERWRITE.
    """
    from srl_core.model_ids import check_new_bundle

    folder = alg.parameterAsString(parameters, "OUTPUT", context)
    chosen = folder if folder and not _temporary(folder) else None
    overwrite = alg.parameterAsBool(parameters, "OVERWRITE", context)
    return str(check_new_bundle(model_id, chosen, overwrite))


def _temporary(folder: str) -> bool:
    """True for QGIS's temporary output: chosen as such, or the folder in Processing's temporary folder
    that a model gives a step's output it does not keep. A model whose next step read the trained model
    from this output's folder trained it into that folder, deleted when QGIS closed."""
    if folder == QgsProcessing.TEMPORARY_OUTPUT:
        return True
    temporary = Path(QgsProcessingUtils.tempFolder()).resolve()
    return Path(folder).resolve().is_relative_to(temporary)


def training_command(alg, parameters, context) -> str:
    """What the card records as the training command: the Processing call with its parameter values, as
    QGIS's history gives it (the card said only the algorithm's name, so the run could not be repeated)."""
    return alg.asPythonCommand(parameters, context) or f"QGIS Processing srl:{alg.ALG_ID}"


def add_bundle_output(alg) -> None:
    """OUTPUT (bundle folder; default: the user model folder, see :func:`bundle_folder`), OVERWRITE and
    OUTPUT_ID."""
    alg.addParameter(
        QgsProcessingParameterFolderDestination(
            "OUTPUT", "Model bundle folder (default: your model folder)", optional=True, createByDefault=False
        )
    )
    alg.addParameter(
        QgsProcessingParameterBoolean("OVERWRITE", "Overwrite a model of the same id or folder", False)
    )
    alg.addOutput(QgsProcessingOutputString("OUTPUT_ID", "Model id"))


class TrainTileEncoderAlgorithm(SrlAlgorithm):
    ALG_ID = "train_tile_encoder"
    DISPLAY_NAME = "Train a tile encoder (Tile2Vec)"
    GROUP = "Models"
    GROUP_ID = "models"
    ICON = "train"
    HELP = (
        "Learns a tile encoder from your own unlabelled rasters (same bands in each), with the "
        "Tile2Vec triplet loss (Jean et al. 2019, 'Tile2Vec: Unsupervised representation "
        "learning for spatially distributed data', AAAI): an anchor tile is pulled towards a "
        "neighbouring tile and pushed away from a distant one, so tiles that are near (and "
        "usually alike) get close embeddings.\n\n"
        "The model is written as a bundle (safetensors weights + a card with the band "
        "normalisation, tile and pixel size, the training settings and loss curve) into your "
        "model folder, so 'Embed raster tiles' lists it at once, or into the folder you choose "
        "(use it through the model-folder parameter, e.g. in a graphical model).\n\n"
        "Compact (default) trains and runs fast on a CPU; 'tilenet' is the paper's ResNet-18 "
        "and wants a GPU. By default the embedding is 16 learned values followed by each band's "
        "mean and standard deviation over the tile and over its centred half and quarter, trained "
        "with them, so the network adds what band statistics miss (texture, context) instead of "
        "relearning them. Measured over three training seeds (README): statistics over the whole "
        "tile beat 64 learned values alone on every land-cover score, and the centred statistics "
        "beat the whole tile's on every score when trained on the scene itself. A mask (raster, "
        "non-zero = inside, or polygons, e.g. land only) limits the training tiles and the band "
        "statistics the model standardises by to the area inside it. The objective (advanced) can be "
        "InfoNCE or VICReg instead of the triplet loss; VICReg uses no distant tiles, so tiles of the "
        "same land cover are never pushed apart, and its results vary less from seed to seed (README). "
        "Rasters of different sensors or scalings (an 8-bit image beside 16-bit Landsat) are each "
        "standardised by their own band statistics, found automatically (advanced: Standardise); the "
        "model then standardises every raster it embeds by its own statistics too. Bands named alike "
        "but in another order are refused. A no-data value (advanced) is a "
        "fill value the files do not declare: it applies to bands that declare none (a declared one stays, "
        "as the engines read it); it is kept on the model's card, and the model then takes it as no-data in "
        "rasters whose bands declare none. "
        "The log gives an estimate of "
        "the training time after the first steps. Cancelling stops the training and writes no "
        "bundle."
    )

    INPUT = "INPUT"
    MODEL_ID = "MODEL_ID"
    DESCRIPTION = "DESCRIPTION"
    TILE_SIZE = "TILE_SIZE"
    VARIANT = "VARIANT"
    Z_DIM = "Z_DIM"
    STEPS = "STEPS"
    BATCH_SIZE = "BATCH_SIZE"
    RADIUS = "RADIUS"
    SEED = "SEED"
    SPECTRAL_STATS = "SPECTRAL_STATS"
    SPECTRAL_CENTRE = "SPECTRAL_CENTRE"
    PIXEL_FEATURES = "PIXEL_FEATURES"
    RADIOMETRIC = "RADIOMETRIC"
    OBJECTIVE = "OBJECTIVE"
    NORMALISATION = "NORMALISATION"
    NODATA = "NODATA"
    MASK = "MASK"
    OUTPUT = "OUTPUT"
    OUTPUT_ID = "OUTPUT_ID"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.INPUT, "Rasters to learn from (same bands)", layerType=QgsProcessing.TypeRaster
            )
        )
        self.addParameter(
            QgsProcessingParameterMapLayer(
                self.MASK,
                "Train inside this mask only (raster, non-zero = inside; or polygons)",
                optional=True,
                types=[QgsProcessing.TypeRaster, QgsProcessing.TypeVectorPolygon],
            )
        )
        self.addParameter(QgsProcessingParameterString(self.MODEL_ID, "Model id", defaultValue="my-tile2vec"))
        self.addParameter(QgsProcessingParameterString(self.DESCRIPTION, "Description", optional=True))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.TILE_SIZE, "Tile size in pixels", QgsProcessingParameterNumber.Integer, 17, minValue=8
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(self.VARIANT, "Network", options=list(TILE_VARIANTS), defaultValue=0)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.Z_DIM,
                "Learned values (the band statistics below come on top)",
                QgsProcessingParameterNumber.Integer,
                16,
                minValue=2,
                maxValue=2048,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.STEPS, "Training steps", QgsProcessingParameterNumber.Integer, 2000, minValue=1
            )
        )
        for name, text, kind, default, low in (
            (self.BATCH_SIZE, "Triplets per step", QgsProcessingParameterNumber.Integer, 64, 2),
            (self.RADIUS, "Neighbour radius (pixels)", QgsProcessingParameterNumber.Double, 8.0, 1.0),
            (self.SEED, "Random seed", QgsProcessingParameterNumber.Integer, 0, 0),
        ):
            param = QgsProcessingParameterNumber(name, text, kind, default, minValue=low)
            self.addParameter(advanced(param))
        self.addParameter(advanced(QgsProcessingParameterBoolean(
            self.SPECTRAL_STATS, "Append each band's mean and std over the tile to the embedding", True)))
        self.addParameter(advanced(QgsProcessingParameterBoolean(
            self.SPECTRAL_CENTRE, "... and over the tile's centred half and quarter", True)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.PIXEL_FEATURES, "Learned per-pixel spectral features averaged over the tile (0 = none)",
            QgsProcessingParameterNumber.Integer, 0, minValue=0, maxValue=1024)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.RADIOMETRIC, "Radiometric jitter: sd of a random gain (log) and offset per tile and band "
            "(0 = none)", QgsProcessingParameterNumber.Double, 0.0, minValue=0.0, maxValue=2.0)))
        self.addParameter(advanced(QgsProcessingParameterEnum(
            self.OBJECTIVE, "Objective", options=list(OBJECTIVE_LABELS), defaultValue=0)))
        self.addParameter(advanced(QgsProcessingParameterEnum(
            self.NORMALISATION, "Standardise the rasters' bands", options=list(NORMALISATION_LABELS),
            defaultValue=0)))
        self.addParameter(advanced(QgsProcessingParameterNumber(
            self.NODATA, "No-data value of bands that declare none (kept on the model's card)",
            QgsProcessingParameterNumber.Double, optional=True)))
        add_device_parameter(self)
        add_threads_parameter(self)
        add_bundle_output(self)

    def _spectral_scales(self, parameters, context) -> tuple[float, ...]:
        """Whole tile, or the tile and its centred half and quarter (unused without the statistics)."""
        from srl_core.models.training_free import DEFAULT_SCALES

        return DEFAULT_SCALES if self.parameterAsBool(parameters, self.SPECTRAL_CENTRE, context) else (1.0,)

    def _nodata(self, parameters, context) -> Optional[float]:
        """The NODATA value, or None when the field is left empty (the rasters' own no-data values)."""
        if parameters.get(self.NODATA) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, self.NODATA, context)

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.threads import limit_threads
        from training.tile2vec import Tile2VecConfig, export_bundle, train_tile2vec

        started = datetime.now(timezone.utc).isoformat(timespec="seconds")

        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        if not layers:
            raise InputError("Give at least one raster to learn from.")
        rasters = [dataset_spec(layer) for layer in layers]
        model_id = check_model_id(self.parameterAsString(parameters, self.MODEL_ID, context))
        folder = bundle_folder(self, parameters, context, model_id)
        config = Tile2VecConfig(
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context),
            variant=TILE_VARIANTS[self.parameterAsEnum(parameters, self.VARIANT, context)],
            z_dim=self.parameterAsInt(parameters, self.Z_DIM, context),
            neighbour_radius=self.parameterAsDouble(parameters, self.RADIUS, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            steps=self.parameterAsInt(parameters, self.STEPS, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            spectral_stats=self.parameterAsBool(parameters, self.SPECTRAL_STATS, context),
            spectral_scales=self._spectral_scales(parameters, context),
            pixel_features=self.parameterAsInt(parameters, self.PIXEL_FEATURES, context),
            radiometric=self.parameterAsDouble(parameters, self.RADIOMETRIC, context),
            objective=TILE_OBJECTIVES[self.parameterAsEnum(parameters, self.OBJECTIVE, context)],
            normalisation=TILE_TRAINING_NORMALISATIONS[self.parameterAsEnum(parameters, self.NORMALISATION,
                                                                             context)],
            nodata=self._nodata(parameters, context),
        )
        mask = mask_spec(self, parameters, self.MASK, context)
        # torch's default (a thread per core) collapses on a shared desktop: see srl_core.threads
        with limit_threads(threads_from_parameters(self, parameters, context)):
            result = train_tile2vec(
                rasters,
                config,
                device=device_from_parameters(self, parameters, context),
                mask=mask,
                progress=progress.sub(0.0, 0.98),
            )
            export_bundle(
                result,
                folder,
                model_id,
                description=self.parameterAsString(parameters, self.DESCRIPTION, context)
                or f"Tile2Vec encoder trained in QGIS on {', '.join(layer.name() for layer in layers)}.",
                command=training_command(self, parameters, context),
                started_utc=started,
                overwrite=self.parameterAsBool(parameters, "OVERWRITE", context),
            )
        for warning in [*result.data_warnings, *result.warnings]:  # the data's were in the log as progress
            feedback.pushWarning(warning)
        feedback.pushInfo(
            f"Trained {result.steps_done} steps in {result.elapsed_s:.0f} s on {result.device}; "
            f"final loss {result.final_loss:.4f}. Bundle: {folder}"
        )
        return {self.OUTPUT: folder, self.OUTPUT_ID: model_id}
