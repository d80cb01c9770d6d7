"""Real data sets read from registry packages (see shared DATA.md), with provenance."""
