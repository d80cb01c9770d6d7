"""Training objectives on (anchor, neighbour, distant) tile embeddings.

``triplet``, Tile2Vec's own: for anchor a, neighbour n and distant d embeddings,
``max(0, |a - n| - |a - d| + margin) + l2_weight * (|a| + |n| + |d|)``, averaged over the
batch (Euclidean norms). Without the penalty the encoder could satisfy any margin by
scaling every embedding up; the penalty keeps the scale fixed, so the margin means something.

``infonce``, the contrastive objective of SimCLR/CPC with spatial positives: each anchor
must pick its own neighbour among every neighbour and distant tile of the batch (cosine
similarity over a temperature, cross-entropy). One distant tile per anchor gives the
triplet loss one negative; here every tile of the batch is one, and the embedding's scale
does not matter (cosine), so no penalty is needed.

``vicreg``, VICReg (Bardes, Ponce and LeCun, ICLR 2022) with spatial positives: anchor and
neighbour embeddings are pulled together (mean squared difference), while every dimension
keeps a standard deviation of at least 1 over the batch and dimensions are decorrelated. It
uses no negatives, so distant tiles of the same land cover are never pushed apart; the
distant tiles only add samples to the variance and covariance terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from srl_core.names import TILE_OBJECTIVES

OBJECTIVES = TILE_OBJECTIVES  # what the trainer and the command line accept


@dataclass(frozen=True)
class LossParts:
    """Batch means of the loss and its pieces, as floats for logging and the model card.

    ``term`` is the objective's own term: the hinge (triplet), the cross-entropy (infonce) or the
    invariance (vicreg).
    """

    loss: float
    term: float
    neighbour_distance: float
    distant_distance: float
    embedding_norm: float


def _distances(anchor: torch.Tensor, neighbour: torch.Tensor,
               distant: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row |a - n|, |a - d| and the mean of the three embeddings' norms."""
    near = torch.linalg.vector_norm(anchor - neighbour, dim=1)
    far = torch.linalg.vector_norm(anchor - distant, dim=1)
    norms = (
        torch.linalg.vector_norm(anchor, dim=1)
        + torch.linalg.vector_norm(neighbour, dim=1)
        + torch.linalg.vector_norm(distant, dim=1)
    ).mean()
    return near, far, norms


def _parts(loss: torch.Tensor, term: torch.Tensor, near: torch.Tensor, far: torch.Tensor,
           norms: torch.Tensor) -> LossParts:
    return LossParts(loss=float(loss.detach()), term=float(term.detach()),
                     neighbour_distance=float(near.detach().mean()),
                     distant_distance=float(far.detach().mean()), embedding_norm=float(norms.detach() / 3))


def triplet_loss(
    anchor: torch.Tensor,
    neighbour: torch.Tensor,
    distant: torch.Tensor,
    margin: float = 1.0,
    l2_weight: float = 0.01,
) -> tuple[torch.Tensor, LossParts]:
    """Return the scalar loss (for backward) and its parts. Inputs: (N, D) embeddings."""
    anchor, neighbour, distant = anchor.float(), neighbour.float(), distant.float()
    near, far, norms = _distances(anchor, neighbour, distant)
    hinge = torch.relu(near - far + margin).mean()
    loss = hinge + l2_weight * norms
    return loss, _parts(loss, hinge, near, far, norms)


def infonce_loss(
    anchor: torch.Tensor,
    neighbour: torch.Tensor,
    distant: torch.Tensor,
    temperature: float = 0.1,
) -> tuple[torch.Tensor, LossParts]:
    """Return the scalar loss (for backward) and its parts. Inputs: (N, D) embeddings.

    Candidates for anchor i are the N neighbours and N distant tiles; the right one is neighbour i.
    """
    anchor, neighbour, distant = anchor.float(), neighbour.float(), distant.float()
    candidates = F.normalize(torch.cat([neighbour, distant]), dim=1)
    logits = F.normalize(anchor, dim=1) @ candidates.T / temperature
    loss = F.cross_entropy(logits, torch.arange(len(anchor), device=anchor.device))
    near, far, norms = _distances(anchor, neighbour, distant)
    return loss, _parts(loss, loss, near, far, norms)


VICREG_WEIGHTS = (25.0, 25.0, 1.0)  # invariance, variance, covariance: the paper's defaults


def _variance_and_covariance(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hinge on each dimension's standard deviation (target 1) and the off-diagonal covariance."""
    centred = z - z.mean(dim=0)
    std = torch.sqrt(centred.var(dim=0) + 1e-4)
    variance = torch.relu(1.0 - std).mean()
    cov = centred.T @ centred / max(len(z) - 1, 1)
    off = cov - torch.diag(torch.diag(cov))
    return variance, off.pow(2).sum() / z.shape[1]


def vicreg_loss(
    anchor: torch.Tensor,
    neighbour: torch.Tensor,
    distant: torch.Tensor,
) -> tuple[torch.Tensor, LossParts]:
    """Return the scalar loss (for backward) and its parts. Inputs: (N, D) embeddings."""
    anchor, neighbour, distant = anchor.float(), neighbour.float(), distant.float()
    invariance = F.mse_loss(anchor, neighbour)
    variance, covariance = _variance_and_covariance(torch.cat([anchor, neighbour, distant]))
    wi, wv, wc = VICREG_WEIGHTS
    loss = wi * invariance + wv * variance + wc * covariance
    near, far, norms = _distances(anchor, neighbour, distant)
    return loss, _parts(loss, invariance, near, far, norms)
