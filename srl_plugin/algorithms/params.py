"""Parameters several algorithms share: the model to use, the device, precision and CPU threads to
run it on, and the Dask workers or scheduler to run it on instead of here.

The model is chosen from the installed bundles of the right kind (an enum holding their
ids, so saved graphical models and batch rows keep working when models are added), or
given as a bundle folder, e.g. the output of a training algorithm earlier in a model.
"""

from __future__ import annotations

from typing import Any, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from srl_core.errors import InputError, ModelError
from srl_core.names import PRECISIONS

from .. import settings

MODEL = "MODEL"
MODEL_FOLDER = "MODEL_FOLDER"
DEVICE = "DEVICE"
PRECISION = "PRECISION"
WORKERS = "WORKERS"
SCHEDULER = "SCHEDULER"
THREADS = "THREADS"
AUTO_TILE_MODEL = "auto"  # srl_core.training_free.AUTO_MODEL, not imported here: that module loads torch


def advanced(param: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    """Mark a parameter as advanced (folded away in the dialog) and return it."""
    param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return param


def installed_model_ids(kind: Optional[str] = None) -> list[str]:
    """Ids of the bundled and user models, optionally only those of ``kind``."""
    from srl_core.bundle import list_bundles

    return [card.id for card, _ in list_bundles() if kind is None or card.kind == kind]


def add_model_parameters(alg: QgsProcessingAlgorithm, kind: str) -> None:
    """Add MODEL (installed ids of ``kind``) and the advanced MODEL_FOLDER override."""
    ids = installed_model_ids(kind)
    alg.addParameter(
        QgsProcessingParameterEnum(
            MODEL,
            f"{kind.capitalize()} model",
            options=ids,
            defaultValue=ids[0] if ids else None,
            optional=not ids,
            usesStaticStrings=True,
        )
    )
    folder = QgsProcessingParameterFile(
        MODEL_FOLDER,
        "Model bundle folder (overrides the model above)",
        behavior=QgsProcessingParameterFile.Folder,
        optional=True,
    )
    advanced(folder)
    alg.addParameter(folder)


def add_tile_model_parameters(alg: QgsProcessingAlgorithm) -> None:
    """MODEL and MODEL_FOLDER for tile models, with ``auto`` first and the default: a learned model
    whose bands the raster has, else the training-free MOSAIKS features
    (:func:`srl_core.training_free.resolve_model`), not whichever id sorts first."""
    add_model_parameters(alg, "tile")
    model = alg.parameterDefinition(MODEL)
    model.setOptions([AUTO_TILE_MODEL, *model.options()])
    model.setDefaultValue(AUTO_TILE_MODEL)
    model.setFlags(model.flags() & ~QgsProcessingParameterDefinition.FlagOptional)


def tile_model_from_parameters(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
):
    """``"auto"`` (resolved against the raster by the engine), else the checked tile model."""
    chosen = alg.parameterAsEnumString(parameters, MODEL, context)
    if chosen == AUTO_TILE_MODEL and not parameters.get(MODEL_FOLDER):
        return AUTO_TILE_MODEL
    return load_checked_model(alg, parameters, context, "tile")


def model_from_parameters(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext, kind: str
) -> str:
    """The model id or bundle folder to pass to ``srl_core.bundle.load_model``."""
    folder = alg.parameterAsFile(parameters, MODEL_FOLDER, context)
    if folder:
        return folder
    chosen = alg.parameterAsEnumString(parameters, MODEL, context)
    if not chosen:
        raise ModelError(
            f"No {kind} model is installed. Train one, import a published checkpoint "
            "(Model manager) or give a model bundle folder."
        )
    return chosen


def load_checked_model(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext, kind: str
):
    """Load the chosen bundle and refuse one of the wrong kind with a clear message."""
    from srl_core.bundle import load_model

    loaded = load_model(model_from_parameters(alg, parameters, context, kind))
    if loaded.card.kind != kind:
        raise ModelError(
            f"Model '{loaded.id}' is a {loaded.card.kind} model; this tool needs a {kind} model."
        )
    return loaded


def add_device_parameter(alg: QgsProcessingAlgorithm) -> None:
    """Advanced DEVICE parameter defaulting to the device chosen in the model manager."""
    param = QgsProcessingParameterEnum(
        DEVICE,
        "Device",
        options=list(settings.DEVICE_CHOICES),
        defaultValue=settings.device(),
        usesStaticStrings=True,
    )
    advanced(param)
    alg.addParameter(param)


def device_from_parameters(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> str:
    return alg.parameterAsEnumString(parameters, DEVICE, context) or "auto"


def add_precision_parameter(alg: QgsProcessingAlgorithm) -> None:
    """Advanced PRECISION of a tile model run: fp32 (exact, the default) or mixed (float16, CUDA only)."""
    param = QgsProcessingParameterEnum(
        PRECISION,
        "Precision (mixed: float16 on a CUDA GPU; faster for large models only)",
        options=list(PRECISIONS),
        defaultValue=PRECISIONS[0],
        usesStaticStrings=True,
    )
    alg.addParameter(advanced(param))


def precision_from_parameters(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> str:
    return alg.parameterAsEnumString(parameters, PRECISION, context) or PRECISIONS[0]


def add_backend_parameters(alg: QgsProcessingAlgorithm) -> None:
    """Advanced WORKERS and SCHEDULER: run window by window on Dask (srl_core.backends) instead of here."""
    workers = QgsProcessingParameterNumber(
        WORKERS,
        "Dask workers on this computer (0 = run here, without Dask)",
        QgsProcessingParameterNumber.Integer,
        0,
        minValue=0,
    )
    scheduler = QgsProcessingParameterString(
        SCHEDULER, "Or a running Dask cluster's scheduler address (tcp://host:8786)", optional=True
    )
    alg.addParameter(advanced(workers))
    alg.addParameter(advanced(scheduler))


def backend_from_parameters(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> dict[str, Any]:
    """``workers`` and ``scheduler`` keyword arguments for srl_core (None: in this process)."""
    workers = alg.parameterAsInt(parameters, WORKERS, context) or None
    scheduler = (alg.parameterAsString(parameters, SCHEDULER, context) or "").strip() or None
    return {"workers": workers, "scheduler": scheduler}
def add_threads_parameter(alg: QgsProcessingAlgorithm) -> None:
    """Advanced THREADS parameter (0 = automatic) defaulting to the plugin setting."""
    param = QgsProcessingParameterNumber(
        THREADS,
        "CPU threads (0 = automatic: leaves cores to QGIS and the raster reader)",
        type=QgsProcessingParameterNumber.Integer,
        defaultValue=settings.threads(),
        minValue=0,
        maxValue=settings.MAX_THREADS,
    )
    alg.addParameter(advanced(param))


def threads_from_parameters(
    alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context: QgsProcessingContext
) -> int:
    return alg.parameterAsInt(parameters, THREADS, context)


def output_for_input(alg: QgsProcessingAlgorithm, parameters: dict[str, Any], context, raster_input: bool,
                     what: str, required: bool = True, or_else: str = "") -> tuple[str, str]:
    """(key, path) of the output matching the input's kind: OUTPUT for an embedding raster, OUTPUT_POINTS for
    embedding points. Without it (where ``required``), an error naming the field to fill (``or_else``: what
    else would do), and the one given for the other kind: "Give an output for the clusters" came when the
    analyst had given one, for the other kind of input."""
    key, other = ("OUTPUT", "OUTPUT_POINTS") if raster_input else ("OUTPUT_POINTS", "OUTPUT")
    path = alg.parameterAsOutputLayer(parameters, key, context)
    if path or not required:
        return key, path
    kind, other_kind = ("an embedding raster", "embedding points") if raster_input else (
        "embedding points", "an embedding raster")
    text = f"Give an output for {what} of {kind}: '{alg.parameterDefinition(key).description()}'"
    if parameters.get(other) and alg.parameterAsOutputLayer(parameters, other, context):
        text += f" ('{alg.parameterDefinition(other).description()}', given, is for {other_kind})"
    raise InputError(text + (f", or {or_else}." if or_else else "."))


def extent_in(alg: QgsProcessingAlgorithm, parameters: dict[str, Any], name: str,
              context: QgsProcessingContext, crs: QgsCoordinateReferenceSystem
              ) -> Optional[tuple[float, float, float, float]]:
    """The extent parameter ``name`` as (xmin, ymin, xmax, ymax) in ``crs``, or None when not given. An
    extent across 180° (drawn on a Pacific map) into a geographic CRS ran from -180 to 180, so a map of
    176-184° E came out round the globe, 96 % extrapolated: its east edge is taken past 180 instead."""
    if not parameters.get(name):
        return None
    rect = alg.parameterAsExtent(parameters, name, context)
    given = alg.parameterAsExtentCrs(parameters, name, context)
    xmax_shift = 0.0
    if given.isValid() and crs.isValid() and given != crs:
        transform = QgsCoordinateTransform(given, crs, context.transformContext())
        drawn, rect = rect, transform.transformBoundingBox(rect)
        if crs.isGeographic() and rect.width() > 180.0:  # round the globe: an extent across 180° may be
            # behind it; QGIS then says so by xmin > xmax (asked always, it took 0° for 180° too: -5..5°
            # came out 0..359.8°)
            crossing = transform.transformBoundingBox(drawn, QgsCoordinateTransform.ForwardTransform, True)
            if crossing.xMinimum() > crossing.xMaximum():
                rect, xmax_shift = crossing, 360.0
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum() + xmax_shift, rect.yMaximum())
