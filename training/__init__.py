"""training: retrain SRL's models on real data (Tile2Vec, contrastive location pretraining) and evaluate them.

Imports srl_core, never srl_plugin. Command line: ``python -m training <command> ...``.
"""
