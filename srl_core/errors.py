"""One exception family for everything srl_core refuses to do.

The plugin catches :class:`SRLError` and shows its message to the analyst as it is,
so every message must say what was wrong and what to do, in words a GIS user knows.
"""


class SRLError(Exception):
    """Base of all errors srl_core raises on purpose."""


class InputError(SRLError):
    """The data given (raster, layer, coordinates, parameters) cannot be used."""


class ModelError(SRLError):
    """A model bundle or checkpoint is missing, corrupt or does not fit the data."""


class OutputError(SRLError):
    """An output cannot be written (path not writable, disk full, ...)."""


class BundleExistsError(OutputError):
    """A model bundle is already at the destination and the caller did not ask to overwrite it."""


class ClusterLostError(SRLError):
    """The run's Dask workers or scheduler were lost (killed, out of memory, disconnected): not the data's
    fault nor the disk's; running it again is the remedy, and goes on from the windows kept."""


class CancelledError(SRLError):
    """The caller asked to stop; partial outputs have been removed."""
