"""The Tile2Vec triplet loss: a margin on distances plus an L2 penalty on the embeddings.

For anchor a, neighbour n and distant d embeddings,
``max(0, |a - n| - |a - d| + margin) + l2_weight * (|a| + |n| + |d|)``, averaged over the
batch (Euclidean norms). Without the penalty the encoder could satisfy any margin by
scaling every embedding up; the penalty keeps the scale fixed, so the margin means something.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TripletLossParts:
    """Batch means of the loss and its pieces, as floats for logging and the model card."""

    loss: float
    hinge: float
    neighbour_distance: float
    distant_distance: float
    embedding_norm: float


def triplet_loss(
    anchor: torch.Tensor,
    neighbour: torch.Tensor,
    distant: torch.Tensor,
    margin: float = 1.0,
    l2_weight: float = 0.01,
) -> tuple[torch.Tensor, TripletLossParts]:
    """Return the scalar loss (for backward) and its parts. Inputs: (N, D) embeddings."""
    anchor, neighbour, distant = anchor.float(), neighbour.float(), distant.float()
    near = torch.linalg.vector_norm(anchor - neighbour, dim=1)
    far = torch.linalg.vector_norm(anchor - distant, dim=1)
    hinge = torch.relu(near - far + margin).mean()
    norms = (
        torch.linalg.vector_norm(anchor, dim=1)
        + torch.linalg.vector_norm(neighbour, dim=1)
        + torch.linalg.vector_norm(distant, dim=1)
    ).mean()
    loss = hinge + l2_weight * norms
    parts = TripletLossParts(
        loss=float(loss.detach()),
        hinge=float(hinge.detach()),
        neighbour_distance=float(near.detach().mean()),
        distant_distance=float(far.detach().mean()),
        embedding_norm=float(norms.detach() / 3),
    )
    return loss, parts
