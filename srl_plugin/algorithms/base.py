"""What every SRL Processing algorithm shares: identity, help, errors, progress and cancel.

Each algorithm subclasses :class:`SrlAlgorithm`, declares its parameters in
``initAlgorithm`` and does its work in :meth:`SrlAlgorithm.compute`, calling srl_core with a
:class:`~srl_core.progress.Progress` bound to the Processing feedback. srl_core's own
errors reach the analyst as their message (a QgsProcessingException), never a traceback.
Each run is one srl_core output run: the file outputs the user named are checked before any
work (writable, none of the input layers' files, no two the same).
"""

from __future__ import annotations

import math
import re
import traceback
from pathlib import Path
from typing import Any

from qgis.core import (
    Qgis,
    QgsMapLayer,
    QgsMessageLog,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeatureSourceDefinition,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
    QgsProcessingUtils,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

from srl_core.atomic import output_run, same_file
from srl_core.errors import CancelledError, InputError, SRLError
from srl_core.gdal_exceptions import gdal_exceptions
from srl_core.progress import Progress
from srl_core.signals import cancel_outcome

from ..deps import check as dependency_check
from ..deps import import_failure, missing_module_message
from ..icons import icon
from ..tasks import LOG_TAG
from .layers import decoded_source


def feedback_progress(feedback: QgsProcessingFeedback | None) -> Progress:
    """A srl_core Progress that drives ``feedback``'s bar and honours its cancel button."""
    if feedback is None:
        return Progress()
    last = [""]

    def report(fraction: float, message: str) -> None:
        feedback.setProgress(100.0 * fraction)
        if message and message != last[0]:
            last[0] = message
            feedback.setProgressText(message)

    return Progress(report, feedback.isCanceled)


_LAYER_DESTINATIONS = (QgsProcessingParameterRasterDestination, QgsProcessingParameterVectorDestination)
_LAYER_PARAMETERS = (
    QgsProcessingParameterMapLayer,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterVectorLayer,
    QgsProcessingParameterFeatureSource,
)


def _file_output(destination: str, description: str) -> str:
    """``destination`` when it is a file; a layer in a GeoPackage or a database table
    (``ogr:dbname=...``, ``postgres:...``: possible from scripts and models, which the dialog no
    longer offers, see the provider) is refused by name, not taken for a path."""
    if re.match(r"^[A-Za-z][A-Za-z0-9_]+:(?![\\/])", destination):
        raise InputError(f"'{description}' must be a file (.tif or .gpkg), not a layer in a GeoPackage or a "
                         f"database table ({destination[:60]}): SRL writes each output as a file of its own.")
    return destination


def _file_of(layer: QgsMapLayer) -> str:
    """The file behind a layer (a GeoPackage layer's, a delimited-text layer's), as best QGIS says; '' for a
    memory layer, whose source names its fields and CRS, not a file (a model step's temporary output of a
    dozen fields was taken for a file name too long to look at)."""
    if layer.providerType() == "memory":
        return ""
    return decoded_source(layer).get("path") or layer.source().split("|")[0]


def _refuse_files_read_before(outputs: list, inputs: list, context: QgsProcessingContext) -> None:
    """Refuse an output that is the file of a layer read earlier with this context: an earlier step of the
    same model (a model's last step, given the model's input raster as its output, wrote a cluster map over
    it, while each step alone refused that), or an earlier call of a script that shares its context. This
    run's own ``inputs`` are left to :func:`srl_core.atomic.output_run`, which says so."""
    own = [Path(file).resolve() for file in inputs if file]
    for layer in context.temporaryLayerStore().mapLayers().values():
        read = _file_of(layer)
        if not read or any(same_file(Path(read).resolve(), file) for file in own):
            continue
        for output in outputs:
            if same_file(Path(output).resolve(), Path(read).resolve()):
                raise InputError(
                    f"The output {output} is the file of layer '{layer.name()}', which an earlier step of "
                    "this model read (or an earlier call of a script with the same Processing context): "
                    "choose another output path (or, in a script, a new QgsProcessingContext for each call).")


INT_RANGE = (-(2**31), 2**31 - 1)  # what a QGIS integer parameter holds


class SrlAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set the class attributes and implement :meth:`compute`."""

    ALG_ID = ""
    DISPLAY_NAME = ""
    GROUP = ""
    GROUP_ID = ""
    ICON = "srl"
    HELP = ""

    def name(self) -> str:
        return self.ALG_ID

    def displayName(self) -> str:  # noqa: N802
        return self.tr(self.DISPLAY_NAME)

    def group(self) -> str:
        return self.tr(self.GROUP)

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP_ID

    def shortHelpString(self) -> str:  # noqa: N802
        return self.tr(self.HELP)

    def icon(self) -> QIcon:
        return icon(self.ICON)

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("SrlAlgorithm", text)

    def createInstance(self) -> SrlAlgorithm:  # noqa: N802
        return type(self)()

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Refuse before any work, with the install command, when srl_core's dependencies are missing."""
        report = dependency_check()
        if not report.ok:
            return False, report.message()
        return super().checkParameterValues(parameters, context)

    def processAlgorithm(  # noqa: N802
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        report = dependency_check()
        if not report.ok:
            raise QgsProcessingException(report.message())
        broken = import_failure()
        if broken:
            raise QgsProcessingException(broken)
        progress = feedback_progress(feedback)
        try:
            outputs, inputs = self.named_files(parameters, context)
            _refuse_files_read_before(outputs, inputs, context)
            # all outputs of the run appear together, or none; GDAL raises inside this run only
            with output_run(outputs, inputs), gdal_exceptions():
                return self.compute(parameters, context, feedback, progress)
        except CancelledError as exc:
            raise QgsProcessingException(self.tr(f"Cancelled; {cancel_outcome(exc)}")) from exc
        except SRLError as exc:
            raise QgsProcessingException(str(exc)) from exc
        except ImportError as exc:  # an optional dependency (e.g. of training) absent in QGIS's Python
            raise QgsProcessingException(missing_module_message(exc.name or "", exc)) from exc
        except Exception as exc:  # a bug, not the user's doing: one sentence here, the details in the log
            QgsMessageLog.logMessage(traceback.format_exc(), LOG_TAG, Qgis.Critical)
            raise QgsProcessingException(self.tr(
                f"Internal error in {self.displayName()}: {type(exc).__name__}: {exc}. This is a bug in SRL, "
                f"not in your data; the details are in the Log Messages panel, tab '{LOG_TAG}'."
            )) from exc

    def parameterAsInt(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext) -> int:  # noqa: N802
        """QGIS's whole number, refused when it is not one an integer holds: QGIS checks the value given
        against the parameter's minimum and then converts it, so 1e12 became 0 (the default, or a division
        by zero) and NaN -2147483648, without a word, or in a message quoting a number the user never typed.
        The value is evaluated once (an expression such as rand() must be checked and used as one value)
        and rounded half away from zero, as QGIS does."""
        value = super().parameterAsDouble(parameters, name, context)
        if not math.isfinite(value) or not INT_RANGE[0] <= round(value) <= INT_RANGE[1]:
            definition = self.parameterDefinition(name)
            label = definition.description() if definition is not None else name
            raise InputError(f"'{label}' must be a whole number from {INT_RANGE[0]:,} to {INT_RANGE[1]:,}, "
                             f"not {value:g}.")
        return int(math.copysign(math.floor(abs(value) + 0.5), value))

    def named_files(self, parameters: dict[str, Any], context: QgsProcessingContext) -> tuple[list, list]:
        """(file outputs the user named, files of the input layers and file parameters)."""
        outputs, inputs = [], []
        for param in self.parameterDefinitions():
            name = param.name()
            value = parameters.get(name)
            if isinstance(value, QgsProcessingOutputLayerDefinition):
                value = value.sink.staticValue()
            if value in (None, "", QgsProcessing.TEMPORARY_OUTPUT):
                continue
            if isinstance(param, QgsProcessingParameterFileDestination):
                outputs.append(self.parameterAsFileOutput(parameters, name, context))
            elif isinstance(param, _LAYER_DESTINATIONS):
                outputs.append(_file_output(self.parameterAsOutputLayer(parameters, name, context),
                                            param.description()))
            elif isinstance(param, QgsProcessingParameterFile):
                inputs.append(self.parameterAsFile(parameters, name, context))
            elif isinstance(param, QgsProcessingParameterMultipleLayers):
                inputs += [_file_of(layer) for layer in self.parameterAsLayerList(parameters, name, context)]
            elif isinstance(param, _LAYER_PARAMETERS):
                layer = self.input_layer(parameters, name, context)
                inputs += [_file_of(layer)] if layer is not None else []
        return outputs, inputs

    def input_layer(self, parameters: dict[str, Any], name: str, context: QgsProcessingContext
                     ) -> QgsMapLayer | None:
        """The layer of an input parameter, also when it comes as "selected features only" (a feature
        source definition, which ``parameterAsLayer`` does not resolve): its file must still count as
        an input, or the output could be written over it."""
        value = parameters.get(name)
        if isinstance(value, QgsProcessingFeatureSourceDefinition):
            value = value.source.staticValue()
        if isinstance(value, QgsMapLayer):
            return value
        if isinstance(value, str) and value:
            return QgsProcessingUtils.mapLayerFromString(value, context)
        return self.parameterAsLayer(parameters, name, context)

    def compute(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
        progress: Progress,
    ) -> dict[str, Any]:
        """Do the work; raise srl_core errors freely, they are shown as messages."""
        raise NotImplementedError
