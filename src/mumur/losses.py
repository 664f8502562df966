"""Contrastive losses of MuMUR §3.2.4: symmetric InfoNCE per branch, L = L_E + L_M.

Deviation from the paper: eq. (7)-(10) write a plain dot product between the text and visual
embeddings; we use cosine similarity times a learnable temperature (CLIP init 1/0.07, scale clamped
at 100), as CLIP, CLIP4Clip and X-Pool (the code MuMUR builds on) do. Each direction is the mean
over the batch, and L_E = L^{t2v} + L^{v2t} is a sum, as eq. (6) writes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ContrastiveLoss",
    "LossOutput",
    "gather_batch",
    "symmetric_infonce",
    "training_world_size",
    "weighted_loss",
]


@dataclass
class LossOutput:
    """Training loss of a head: the weighted total and every named term.

    Attributes:
        loss: the scalar to back-propagate, sum_k w_k * terms[k] (weights from the head config).
        terms: each named loss term, unweighted (MuMUR: ``en`` = L_E, eq. 7 + 8, and
            ``ml`` = L_M, eq. 9 + 10; other heads name their own). The trainer logs each one as
            ``loss_<name>``.
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def loss_en(self) -> torch.Tensor | None:
        """L_E, or None when the English branch was not trained."""
        return self.terms.get("en")

    @property
    def loss_ml(self) -> torch.Tensor | None:
        """L_M, or None when the multilingual branch was not trained."""
        return self.terms.get("ml")


def weighted_loss(terms: dict[str, torch.Tensor],
                  weights: dict[str, float] | None = None) -> LossOutput:
    """Sum named loss terms with weights (1.0 for a term without one), e.g. L = L_E + L_M (eq. 6).

    Args:
        terms: name -> scalar tensor; at least one.
        weights: name -> weight.

    Raises:
        ValueError: when there is no term (every branch switched off or without text).
    """
    if not terms:
        raise ValueError("no branch to train (no loss term): every branch is switched off or "
                         "has no text")
    weights = weights or {}
    parts = [float(weights.get(name, 1.0)) * value for name, value in terms.items()]
    return LossOutput(loss=sum(parts[1:], parts[0]), terms=dict(terms))


def symmetric_infonce(logits: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE on a square logits matrix whose diagonal holds the matching pairs.

    Args:
        logits: (B_text, B_video) with ``logits[i, j]`` the scaled similarity of text i and
            visual item j (for DCM: item j pooled under text i's attention).

    Returns:
        scalar: mean_i CE over row i (eq. 7 / 9) + mean_j CE over column j (eq. 8 / 10).
    """
    if logits.ndim != 2 or logits.shape[0] != logits.shape[1]:
        raise ValueError(f"symmetric_infonce needs a square (B, B) matrix, got {tuple(logits.shape)}")
    target = torch.arange(logits.shape[0], device=logits.device)
    text_to_visual = F.cross_entropy(logits, target)  # eq. (7): text i against every item j
    visual_to_text = F.cross_entropy(logits.t(), target)  # eq. (8): item i against every text j
    return text_to_visual + visual_to_text


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE with a learnable logit scale (CLIP: init log(1/0.07), clamp at 100).

    Args:
        logit_scale_init: initial value of the log-scale parameter.
        logit_scale_max: upper clamp of the (exponentiated) scale.
    """

    def __init__(self, logit_scale_init: float = math.log(1 / 0.07),
                 logit_scale_max: float = 100.0):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))
        self.logit_scale_max = float(logit_scale_max)

    def scale(self) -> torch.Tensor:
        """The current temperature exp(logit_scale), clamped at `logit_scale_max`."""
        return self.logit_scale.exp().clamp(max=self.logit_scale_max)

    def forward(self, similarity: torch.Tensor) -> torch.Tensor:
        """Loss of one branch.

        Args:
            similarity: (B, B) cosine similarities, text rows x visual columns.

        Returns:
            scalar loss.
        """
        return symmetric_infonce(self.scale() * similarity)


def training_world_size() -> int:
    """Processes of the initialised `torch.distributed` group (1 when there is none)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_batch(x: torch.Tensor) -> torch.Tensor:
    """The global batch of a per-rank tensor under `torch.distributed`: ranks' rows concatenated in
    rank order, `(B_local, ...)` -> `(world * B_local, ...)`.

    Tensors that need gradients go through `torch.distributed.nn.functional.all_gather`, whose
    backward returns to each rank the sum over ranks of the gradients of its rows (open_clip's
    `gather_features(..., gather_with_grad=True)`): with every rank computing the loss of the whole
    global batch and DDP averaging the parameter gradients, the update equals single-process
    training on the global batch. Other tensors (masks, frozen features) use a plain all-gather.
    Without a process group (or with one process) `x` is returned unchanged.
    """
    world = training_world_size()
    if world == 1:
        return x
    import torch.distributed as dist

    if x.requires_grad:
        import warnings

        import torch.distributed.nn.functional as dist_fn

        with warnings.catch_warnings():  # deprecated for a private API; the autograd op stays
            warnings.simplefilter("ignore", FutureWarning)
            return torch.cat(dist_fn.all_gather(x), dim=0)
    # gloo has no bool collectives: gather as uint8
    src = x.to(torch.uint8) if x.dtype == torch.bool else x.contiguous()
    parts = [torch.empty_like(src) for _ in range(world)]
    dist.all_gather(parts, src)
    out = torch.cat(parts, dim=0)
    return out.bool() if x.dtype == torch.bool else out
