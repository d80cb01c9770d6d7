"""Raster I/O: GeoTIFF creation, block-aligned streaming reads, tile grids."""
