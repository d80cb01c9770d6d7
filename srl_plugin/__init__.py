"""SRL for QGIS: spatial representation learning as a QGIS plugin.

QGIS calls :func:`classFactory` with its interface object. Nothing heavy is imported
here so that a missing dependency can be reported instead of breaking plugin loading.
"""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    """Create the plugin object QGIS will call ``initGui`` / ``unload`` on."""
    from .plugin import SrlPlugin

    return SrlPlugin(iface)
