"""Entry point QGIS imports for the packaged plugin folder ``srl_qgis``.

The plugin folder holds ``srl_plugin`` (QGIS side), ``srl_core`` (library) and
``resources`` side by side; putting the folder on ``sys.path`` lets both packages
import each other by their own names, exactly as in the source tree.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def classFactory(iface):  # noqa: N802 (name fixed by QGIS)
    from srl_plugin import classFactory as factory

    return factory(iface)
