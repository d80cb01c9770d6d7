"""Plugin settings kept in QGIS's own settings store (per user profile)."""

from __future__ import annotations

from qgis.core import QgsSettings

from srl_core.names import DEVICE_CHOICES

DEVICE_KEY = "srl/device"


def device() -> str:
    """The device the analyst chose in the model manager ("auto" until they choose)."""
    value = str(QgsSettings().value(DEVICE_KEY, "auto"))
    return value if value in DEVICE_CHOICES else "auto"


def set_device(name: str) -> None:
    """Remember the device for the next runs (the Processing algorithms default to it)."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}")
    QgsSettings().setValue(DEVICE_KEY, name)
