"""Analyses on embeddings: clustering, similarity search, interpolation and the PCA colour view.

Each works on embedding rasters (streamed block by block) and on embedding points alike,
and refuses to mix embeddings of different models.
"""
