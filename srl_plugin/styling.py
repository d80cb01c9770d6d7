"""How SRL outputs look when they reach the map, so an analyst can read them at once.

Classes get a paletted renderer with one legend entry per cluster, similarity a
pseudocolour ramp stretched over its informative range, predictions a diverging ramp with
their uncertainty in a sequential one, the embedding view a multiband colour composite.
Processing algorithms attach these through :func:`style_on_load`, a layer post-processor
that runs when Processing adds the output to the project (dialog, batch, model or
``runAndLoadResults``); the map tool and tasks call the functions directly.
"""

from __future__ import annotations

import json
from typing import Callable, Optional, Sequence

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsClassificationQuantile,
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsGradientColorRamp,
    QgsGraduatedSymbolRenderer,
    QgsMapLayer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingLayerPostProcessorInterface,
    QgsProperty,
    QgsRasterBandStats,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRendererCategory,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsStyle,
    QgsSymbol,
    QgsSymbolLayer,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

from srl_core.names import CLASSES_KEY, CLUSTERS_KEY

SIMILARITY_RAMP = "Viridis"
PREDICTION_RAMP = "Spectral"
UNCERTAINTY_RAMP = "Reds"
# Cumulative cut used for stretches: ignores the extreme 2 % at each end, like QGIS's default.
CUT = (0.02, 0.98)
LEGEND_CLASSES = 6


def _ramp(name: str, invert: bool = False):
    ramp = QgsStyle.defaultStyle().colorRamp(name)
    if ramp is None:  # a profile without the default ramps: a plain two-colour gradient
        ramp = QgsGradientColorRamp(QColor(68, 1, 84), QColor(253, 231, 37))
    if invert:
        ramp.invert()
    return ramp


def class_colour(value: int) -> QColor:
    """The colour of class ``value`` (1..n), the same srl_core writes into class rasters."""
    from srl_core.analysis.clustering import class_colours

    r, g, b, a = class_colours(int(value))[int(value)]
    return QColor(r, g, b, a)


def _band_range(layer: QgsRasterLayer, band: int = 1) -> tuple[float, float]:
    """The 2–98 % cumulative-cut range of a band (min/max when the histogram is flat)."""
    provider = layer.dataProvider()
    low, high = provider.cumulativeCut(band, CUT[0], CUT[1])
    if not (high > low):
        stats = provider.bandStatistics(band, QgsRasterBandStats.Min | QgsRasterBandStats.Max)
        low, high = stats.minimumValue, stats.maximumValue
    if not (high > low):
        high = low + 1.0
    return float(low), float(high)


def legend_decimals(low: float, high: float) -> int:
    """Decimal places that show a range to about 3 significant digits (1,675.73 over 100-1,800: 0)."""
    import math

    span = abs(high - low) or abs(high) or 1.0
    return max(0, 2 - int(math.floor(math.log10(span))))


def _legend_format(shader_function: QgsColorRampShader, low: float, high: float) -> None:
    """The continuous legend's min/max labels rounded like the class labels, with thousands separators."""
    from qgis.core import QgsBasicNumericFormat

    number = QgsBasicNumericFormat()
    number.setNumberDecimalPlaces(legend_decimals(low, high))
    number.setShowThousandsSeparator(True)
    settings = shader_function.legendSettings()
    settings.setNumericFormat(number)
    shader_function.setLegendSettings(settings)


def style_pseudocolor(
    layer: QgsRasterLayer,
    ramp_name: str,
    *,
    invert: bool = False,
    value_range: Optional[tuple[float, float]] = None,
    band: int = 1,
) -> None:
    """A continuous single-band ramp stretched over ``value_range`` (default: 2–98 % cut)."""
    low, high = value_range or _band_range(layer, band)
    shader_function = QgsColorRampShader(low, high, _ramp(ramp_name, invert))
    shader_function.setColorRampType(QgsColorRampShader.Interpolated)
    shader_function.setClassificationMode(QgsColorRampShader.EqualInterval)
    shader_function.classifyColorRamp(LEGEND_CLASSES, band, layer.extent(), layer.dataProvider())
    items = shader_function.colorRampItemList()
    decimals = legend_decimals(low, high)
    for item in items:
        item.label = f"{item.value:,.{decimals}f}"
    shader_function.setColorRampItemList(items)
    _legend_format(shader_function, low, high)
    shader = QgsRasterShader(low, high)
    shader.setRasterShaderFunction(shader_function)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), band, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def style_similarity(layer: QgsRasterLayer) -> None:
    """Similarity: Viridis from the 2 % cut up to the best match, so look-alikes glow yellow."""
    low, high = _band_range(layer)
    stats = layer.dataProvider().bandStatistics(1, QgsRasterBandStats.Max)
    style_pseudocolor(layer, SIMILARITY_RAMP, value_range=(low, max(high, stats.maximumValue)))


def style_prediction(layer: QgsRasterLayer) -> None:
    """Predicted values: a diverging ramp (blue low, red high) over the 2–98 % range."""
    style_pseudocolor(layer, PREDICTION_RAMP, invert=True)


def style_uncertainty(layer: QgsRasterLayer) -> None:
    """Uncertainty: white (certain) to red (uncertain)."""
    style_pseudocolor(layer, UNCERTAINTY_RAMP)


def style_classes(layer: QgsRasterLayer, label: str = "Cluster") -> None:
    """Paletted renderer with one legend entry per class 1..k (0 is nodata, left out).

    Class names come from the raster's SRL_CLASSES metadata (predicted classes) when it has
    them, else "<label> <value>" (clusters).
    """
    provider = layer.dataProvider()
    names = metadata_item(layer, CLASSES_KEY)
    names = json.loads(names) if names else None
    count = len(names) if names else class_count(layer)
    table = provider.colorTable(1)
    known = (
        {int(c.value): c.color for c in QgsPalettedRasterRenderer.colorTableToClassData(table)}
        if table
        else {}
    )
    classes = [
        QgsPalettedRasterRenderer.Class(
            value, known.get(value, class_colour(value)), names[value - 1] if names else f"{label} {value}"
        )
        for value in range(1, count + 1)
    ]
    layer.setRenderer(QgsPalettedRasterRenderer(provider, 1, classes))
    layer.triggerRepaint()


def metadata_item(layer: QgsRasterLayer, key: str) -> Optional[str]:
    """A GDAL metadata item srl_core wrote into a raster output (None when absent)."""
    from osgeo import gdal

    try:  # runs on QGIS's main thread, outside SRL's calls: GDAL may answer None or raise
        ds = gdal.Open(layer.source())
    except RuntimeError:
        return None
    return (ds.GetMetadataItem(key) or None) if ds is not None else None


def class_count(layer: QgsRasterLayer) -> int:
    """k of a class raster: its SRL_CLUSTERS metadata item, else its largest value."""
    value = metadata_item(layer, CLUSTERS_KEY)
    if value:
        return int(value)
    stats = layer.dataProvider().bandStatistics(1, QgsRasterBandStats.Max)
    return max(1, int(stats.maximumValue))


def stretched_rgb(layer: QgsRasterLayer, bands: Sequence[int], ranges: Sequence[tuple[float, float]]) -> None:
    """Three bands as red, green, blue, each stretched linearly over its (low, high) range."""
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, *bands)
    setters = (renderer.setRedContrastEnhancement, renderer.setGreenContrastEnhancement,
               renderer.setBlueContrastEnhancement)  # fmt: skip
    for band, (low, high), setter in zip(bands, ranges, setters):
        enhancement = QgsContrastEnhancement(provider.dataType(band))
        enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum, False)
        enhancement.setMinimumValue(low)
        enhancement.setMaximumValue(high)
        setter(enhancement)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def style_rgb(layer: QgsRasterLayer, stretch: bool = True) -> None:
    """Bands 1, 2, 3 as red, green, blue; a 4th band is alpha.

    ``stretch``: each band over its 2–98 % range (raw embeddings); off for the embedding
    view, whose bytes are already stretched by srl_core.
    """
    if stretch:
        stretched_rgb(layer, (1, 2, 3), [_band_range(layer, band) for band in (1, 2, 3)])
        return
    provider = layer.dataProvider()
    renderer = QgsMultiBandColorRenderer(provider, 1, 2, 3)
    if provider.bandCount() >= 4:
        renderer.setAlphaBand(4)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def style_embeddings(layer: QgsRasterLayer) -> None:
    """An embedding raster: its three most informative dimensions as red, green and blue, each
    stretched over its 2–98 % range (:mod:`srl_core.analysis.display_bands`); bands 1–3 of sparse
    embeddings are mostly 0, i.e. black."""
    from srl_core.analysis.display_bands import display_bands
    from srl_core.embedding_quality import raster_sample
    from srl_core.errors import SRLError

    if layer.dataProvider().bandCount() < 3:
        style_pseudocolor(layer, SIMILARITY_RAMP)
        return
    try:
        shown = display_bands(raster_sample(layer.source()))
    except SRLError:  # the decimated sample missed every valid tile (a small mask in a large scene)
        style_rgb(layer)
        return
    stretched_rgb(layer, shown.bands, shown.ranges)


def style_embedding_view(layer: QgsRasterLayer) -> None:
    """The PCA colour view: its RGBA bytes as they are."""
    style_rgb(layer, stretch=False)


def style_point_colours(layer: QgsVectorLayer, field: str = "colour") -> None:
    """Each point filled with the #rrggbb colour in ``field`` (the embedding view of points)."""
    symbol = QgsSymbol.defaultSymbol(layer.geometryType())
    symbol.symbolLayer(0).setDataDefinedProperty(
        QgsSymbolLayer.PropertyFillColor, QgsProperty.fromField(field)
    )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))
    layer.triggerRepaint()


def style_point_classes(layer: QgsVectorLayer, field: str, label: str = "Cluster") -> None:
    """Categorised point symbols, one colour per class value of ``field``."""
    index = layer.fields().indexOf(field)
    values = sorted(v for v in layer.uniqueValues(index) if v is not None)
    categories = []
    for value in values:
        symbol = QgsSymbol.defaultSymbol(layer.geometryType())
        symbol.setColor(class_colour(int(value)) if int(value) > 0 else QColor(160, 160, 160))
        name = f"{label} {value}" if int(value) > 0 else "Noise"
        categories.append(QgsRendererCategory(value, symbol, name))
    layer.setRenderer(QgsCategorizedSymbolRenderer(field, categories))
    layer.triggerRepaint()


def style_point_values(
    layer: QgsVectorLayer,
    field: str,
    ramp_name: str = SIMILARITY_RAMP,
    classes: int = 7,
    invert: bool = False,
) -> None:
    """Graduated point symbols over ``field`` (quantiles) with a colour ramp."""
    renderer = QgsGraduatedSymbolRenderer(field)
    renderer.setSourceSymbol(QgsSymbol.defaultSymbol(layer.geometryType()))
    renderer.setSourceColorRamp(_ramp(ramp_name, invert))
    renderer.setClassificationMethod(QgsClassificationQuantile())  # updateClasses(mode): deprecated, 3.10
    renderer.updateClasses(layer, classes)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


StyleFn = Callable[[QgsMapLayer], None]


class _StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Names and styles one output layer once Processing has added it to the project."""

    # Processing keeps only a raw pointer: the Python objects must outlive the algorithm run.
    _alive: list[_StylePostProcessor] = []

    def __init__(self, name: str, style: Optional[StyleFn]) -> None:
        super().__init__()
        self.name = name
        self.style = style

    @classmethod
    def create(cls, name: str, style: Optional[StyleFn]) -> _StylePostProcessor:
        instance = cls(name, style)
        cls._alive = cls._alive[-63:] + [instance]
        return instance

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802
        if self.name:
            layer.setName(self.name)
        if self.style is not None:
            try:
                self.style(layer)
            except Exception as exc:  # noqa: BLE001 - a style is a nicety: the layer and its warnings stay
                feedback.pushWarning(f"'{layer.name()}' keeps QGIS's default style: {exc}")
        from .algorithms.layers import is_points

        project = context.project()
        if project is not None and isinstance(layer, QgsRasterLayer):
            points_above_rasters(project)
        elif project is not None and is_points(layer):  # a new point result over the points it came
            _to_top(project, layer)  # from: classes drawn under plain sample points showed nothing
        warn_in_message_bar(layer, duration=WARNING_SECONDS)


def _quality_warning(layer: QgsMapLayer) -> Optional[str]:
    """The SRL_QUALITY_WARNING srl_core wrote into a raster or a point layer output (None when absent)."""
    from srl_core.names import QUALITY_WARNING_KEY

    if isinstance(layer, QgsRasterLayer):
        return metadata_item(layer, QUALITY_WARNING_KEY)
    if not isinstance(layer, QgsVectorLayer):
        return None
    from srl_core.errors import SRLError
    from srl_core.vector.points import embedding_origin

    try:  # the layer as QGIS shows it: FILE|layername=LAYER
        return embedding_origin(layer.source()).warning or None
    except (SRLError, RuntimeError):
        return None


WARNING_SECONDS = 15  # how long a result's quality warning stays in the message bar


def warn_in_message_bar(layer: QgsMapLayer, iface=None, duration: int = 0) -> None:
    """Show an output's SRL_QUALITY_WARNING (degenerate embeddings, a result that means little) in
    the message bar of ``iface`` (default: QGIS's), if any, for ``duration`` seconds (0: until closed);
    not again while the bar shows it (an interpolation's map and uncertainty pushed it twice, for good)."""
    warning = _quality_warning(layer)
    if not warning:
        return
    from qgis.core import Qgis

    if iface is None:
        from qgis.utils import iface
    if iface is None or not hasattr(iface, "messageBar"):
        return
    bar = iface.messageBar()
    shown = [item.text() for item in bar.items()] if hasattr(bar, "items") else []
    if not any(text.endswith(warning) for text in shown):
        bar.pushMessage("SRL", f"{layer.name()}: {warning}", level=Qgis.Warning, duration=duration)


def _move(root, node, position: int) -> None:
    """Move a top-level node of the layer tree ``root`` to ``position``."""
    root.insertChildNode(position, node.clone())
    root.removeChildNode(node)


def _to_top(project, layer: QgsMapLayer) -> None:
    """Move ``layer``'s node, where it is a top-level one, to the top of the layer tree."""
    root = project.layerTreeRoot()
    node = root.findLayer(layer.id())
    if node is not None and node.parent() is root and root.children().index(node) > 0:
        _move(root, node, 0)


def points_above_rasters(project) -> None:
    """Move top-level point layers that lie under a raster to the top, keeping their order: sample
    points stay visible over the maps made from them."""
    from qgis.core import QgsLayerTreeLayer

    from .algorithms.layers import is_points

    root = project.layerTreeRoot()
    nodes = [n for n in root.children() if isinstance(n, QgsLayerTreeLayer) and n.layer() is not None]
    first_raster = next((i for i, n in enumerate(nodes) if isinstance(n.layer(), QgsRasterLayer)), None)
    if first_raster is None:
        return
    below = [n for n in nodes[first_raster:] if is_points(n.layer())]
    for position, node in enumerate(below):
        _move(root, node, position)


def style_on_load(alg: QgsProcessingAlgorithm, context: QgsProcessingContext, output: str, name: str,
                  style: Optional[StyleFn]) -> None:
    """If Processing will add ``output`` to the project, name it ``name`` and apply ``style``.

    Only where the layer would carry the output parameter's own description: a name the analyst gave
    (a graphical model's output, "clusters") is kept; it was replaced by ours, which named the model's
    intermediate file ("Clusters (k=3) of OUTPUT")."""
    if not output or not context.willLoadLayerOnCompletion(output):
        return
    details = context.layerToLoadOnCompletionDetails(output)
    parameter = alg.parameterDefinition(details.outputName) if details.outputName else None
    if details.name and parameter is not None and details.name != parameter.description():
        name = details.name
    details.name = name
    details.setPostProcessor(_StylePostProcessor.create(name, style))
