"""Evaluation harnesses: score embeddings on real, labelled tasks against untrained baselines."""
