"""Plugin settings kept in QGIS's own settings store (per user profile)."""

from __future__ import annotations

from qgis.core import QgsSettings

DEVICE_KEY = "srl/device"
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
THREADS_KEY = "srl/threads"
MAX_THREADS = 256


def device() -> str:
    """The device the analyst chose in the model manager ("auto" until they choose)."""
    value = str(QgsSettings().value(DEVICE_KEY, "auto"))
    return value if value in DEVICE_CHOICES else "auto"


def set_device(name: str) -> None:
    """Remember the device for the next runs (the Processing algorithms default to it)."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {name!r}")
    QgsSettings().setValue(DEVICE_KEY, name)


def threads() -> int:
    """CPU threads for the models and analyses; 0 (until the analyst chooses) = srl_core's default,
    which leaves cores to QGIS and the raster reader (see ``srl_core.threads``)."""
    try:
        value = int(QgsSettings().value(THREADS_KEY, 0))
    except (TypeError, ValueError):
        return 0
    return value if 0 <= value <= MAX_THREADS else 0


def set_threads(count: int) -> None:
    """Remember the thread count (0 = automatic) for the next runs and the similarity tool."""
    if not 0 <= int(count) <= MAX_THREADS:
        raise ValueError(f"thread count {count!r} outside 0..{MAX_THREADS}")
    QgsSettings().setValue(THREADS_KEY, int(count))
