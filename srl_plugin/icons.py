"""Icons are plain SVG files in ``resources/icons`` beside this package (no compiled Qt resources)."""

from __future__ import annotations

from pathlib import Path

from qgis.PyQt.QtGui import QIcon

ICONS_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"


def icon_path(name: str) -> str:
    """Path of ``resources/icons/<name>.svg``."""
    return str(ICONS_DIR / f"{name}.svg")


def icon(name: str) -> QIcon:
    """The QIcon for ``resources/icons/<name>.svg``."""
    return QIcon(icon_path(name))
