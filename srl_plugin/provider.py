"""The Processing provider: every srl_core capability as a Processing algorithm."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import algorithms
from .core_log import forward_core_log
from .icons import icon

PROVIDER_ID = "srl"


class SrlProvider(QgsProcessingProvider):
    """Provider ``srl``: "Spatial representation learning"."""

    def id(self) -> str:
        return PROVIDER_ID

    def name(self) -> str:
        return "Spatial representation learning"

    def longName(self) -> str:  # noqa: N802
        return "Spatial representation learning (tile and location embeddings)"

    def icon(self) -> QIcon:
        return icon("srl")

    def versionInfo(self) -> str:  # noqa: N802 (qgis_process --json reported null)
        from srl_core import __version__

        return __version__

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["tif"]  # srl_core writes tiled GeoTIFF

    def supportedOutputVectorLayerExtensions(self) -> list[str]:  # noqa: N802
        return ["gpkg"]  # embedding points carry their model id as GeoPackage metadata

    def supportsNonFileBasedOutput(self) -> bool:  # noqa: N802
        """No "Save to GeoPackage..." (a layer added to a GeoPackage) or "Save to Database Table...":
        srl_core writes each output as a file of its own, atomically; such a destination reached it
        as a path and failed with a message about a folder."""
        return False

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:  # noqa: N802, N803
        return "gpkg"

    def defaultRasterFileExtension(self) -> str:  # noqa: N802
        return "tif"

    def loadAlgorithms(self) -> None:  # noqa: N802
        forward_core_log()  # a model folder skipped while the algorithms list models shows in the log
        for algorithm in algorithms():
            self.addAlgorithm(algorithm())
