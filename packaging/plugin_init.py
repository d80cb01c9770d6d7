"""Entry point QGIS imports for the packaged plugin folder ``srl_qgis``.

The plugin folder holds ``srl_plugin`` (QGIS side), ``srl_core`` (library) and
``resources`` side by side; putting the folder on ``sys.path`` lets both packages
import each other by their own names, exactly as in the source tree.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGES = ("srl_plugin", "srl_core", "training")


def _forget_stale_modules() -> None:
    """Drop this folder's packages left in memory by an earlier load of the plugin.

    When QGIS upgrades or reloads a plugin it forgets only the modules named after its folder
    (``srl_qgis...``); ours are top-level packages found on ``sys.path``, so an upgraded plugin kept
    running the old srl_core until QGIS restarted, and modules imported later came from the new files
    beside the old ones. QGIS imports this file afresh on each load, before any of them."""
    for name, module in list(sys.modules.items()):
        where = os.path.abspath(getattr(module, "__file__", None) or "")
        if name.split(".")[0] in _PACKAGES and where.startswith(_HERE + os.sep):
            del sys.modules[name]


_forget_stale_modules()
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def classFactory(iface):  # noqa: N802 (name fixed by QGIS)
    from srl_plugin import classFactory as factory

    return factory(iface)
