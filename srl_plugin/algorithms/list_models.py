"""List and describe the installed models (bundled, trained and imported)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterString,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from .base import SrlAlgorithm

HTML_SUFFIXES = (".html", ".htm")
_COLUMNS = (
    ("id", QVariant.String),
    ("kind", QVariant.String),
    ("architecture", QVariant.String),
    ("embedding_size", QVariant.Int),
    ("description", QVariant.String),
    ("licence", QVariant.String),
    ("path", QVariant.String),
)


def card_html(card, path) -> str:
    """One model card as a small HTML section (used here and by the model manager)."""
    rows = [
        ("Kind", card.kind),
        ("Architecture", card.architecture),
        ("Embedding size", card.size_text),
        ("Licence", card.licence),
        ("Folder", path),
    ]
    parts = [f"<h3>{html.escape(card.id)}</h3>", f"<p>{html.escape(card.description or '')}</p>", "<table>"]
    parts += [f"<tr><th align='left'>{k}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows]
    parts.append("</table>")
    for title, section in (("Inputs", card.inputs), ("Training", card.training), ("Metrics", card.metrics)):
        if section:
            text = html.escape(json.dumps(section, indent=1))
            parts.append(f"<h4>{title}</h4><pre>{text}</pre>")
    return "\n".join(parts)


def _require_html_name(path: str) -> None:
    """A name that says HTML, checked before any output is written: a raster named as the output was
    overwritten with HTML."""
    from srl_core.errors import OutputError

    if path and Path(path).suffix.lower() not in HTML_SUFFIXES:
        raise OutputError(f"The model cards are written as HTML: name the output {Path(path).stem}.html, "
                          f"not {Path(path).name}.")


def _write_html(path: str, text: str) -> None:
    """Write the cards' page atomically (a folder that cannot be written ended in "a bug in SRL")."""
    from srl_core.atomic import atomic_output
    from srl_core.errors import OutputError

    try:
        with atomic_output(path) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"Could not write {path}: {exc.strerror or exc}.") from exc


class ListModelsAlgorithm(SrlAlgorithm):
    ALG_ID = "list_models"
    DISPLAY_NAME = "List and describe models"
    GROUP = "Models"
    GROUP_ID = "models"
    ICON = "models"
    HELP = (
        "Lists every model this plugin can use: the bundled ones, models you trained and "
        "published checkpoints you imported (GeoCLIP, SatCLIP). Each model is a bundle folder "
        "with safetensors weights and a JSON card saying what it was trained on, its inputs "
        "(bands, normalisation, tile size, or lon/lat), its embedding size, metrics and licence.\n\n"
        "Give a model id to describe only that model. The table output has one row per model; "
        "the optional HTML report shows the full cards."
    )

    MODEL_ID = "MODEL_ID"
    OUTPUT = "OUTPUT"
    OUTPUT_HTML = "OUTPUT_HTML"
    COUNT = "COUNT"
    CARDS = "CARDS"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterString(self.MODEL_ID, "Only this model id", optional=True))
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, "Models", type=QgsProcessing.TypeVector, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_HTML,
                "Model cards (HTML)",
                fileFilter="HTML files (*.html)",
                optional=True,
                createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.COUNT, "Number of models"))
        self.addOutput(QgsProcessingOutputString(self.CARDS, "Model cards (JSON)"))

    def compute(self, parameters, context, feedback, progress) -> dict[str, Any]:
        from srl_core.bundle import find_bundle, list_bundles, read_card

        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        _require_html_name(html_path)
        only = self.parameterAsString(parameters, self.MODEL_ID, context).strip()
        if only:
            folder = find_bundle(only)
            models = [(read_card(folder), folder)]
        else:
            models = list_bundles()
        fields = QgsFields()
        for name, kind in _COLUMNS:
            fields.append(QgsField(name, kind))
        sink, sink_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields, QgsWkbTypes.NoGeometry)
        cards = []
        for i, (card, path) in enumerate(models):
            progress.check()
            cards.append({**json.loads(card.to_json()), "path": str(path)})
            size = f"{card.embedding_size}-d" if card.embedding_size else f"size {card.size_text}"
            feedback.pushInfo(f"{card.id} ({card.kind}, {size}): {card.description}")
            if sink is not None:
                feature = QgsFeature(fields)
                feature.setAttributes(
                    [
                        card.id,
                        card.kind,
                        card.architecture,
                        int(card.embedding_size) or None,  # NULL: set by the raster, not 0
                        card.description,
                        card.licence,
                        str(path),
                    ]
                )
                sink.addFeature(feature, QgsFeatureSink.FastInsert)
            progress.report((i + 1) / max(len(models), 1))
        if not models:
            feedback.pushInfo("No models installed yet.")
        results: dict[str, Any] = {self.COUNT: len(models), self.CARDS: json.dumps(cards, indent=1)}
        if sink is not None:
            results[self.OUTPUT] = sink_id
        if html_path:
            body = "\n<hr/>\n".join(card_html(c, p) for c, p in models) or "<p>No models installed.</p>"
            _write_html(html_path, f"<html><body>{body}</body></html>")
            results[self.OUTPUT_HTML] = html_path
        return results
