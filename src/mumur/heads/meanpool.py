"""`meanP`: CLIP4Clip's parameter-free mean pooling of frame embeddings (with optional temporal
context), scored by cosine similarity. With both text branches this is also MuMUR's "without DCM"
ablation (§5.5.3): the loss is computed directly between R_v and R_E / R_M.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..registry import register_head
from .base import HeadConfig, RetrievalHead, check_branch

__all__ = ["MeanPoolConfig", "MeanPoolHead"]


@dataclass(frozen=True)
class MeanPoolConfig(HeadConfig):
    """Options of `meanP` (all shared with `HeadConfig`)."""


@register_head("meanP")
class MeanPoolHead(RetrievalHead):
    """Mean pooling (CLIP4Clip meanP / seqTransf when `temporal="transformer"`).

    Everything but the score comes from the base contract: the InfoNCE loss terms, the
    attention used for the best timestamp (softmax of scaled text-frame cosines; not part of the
    score), and the index path (stored frame states, scored by `similarity`).
    """

    config_class = MeanPoolConfig
    name = "meanP"

    def similarity(self, text_emb: torch.Tensor, frames_ctx: torch.Tensor, mask: torch.Tensor,
                   branch: str) -> torch.Tensor:
        """Cosine of each text with each item's mean-pooled frames.

        Args:
            text_emb: (N, d); frames_ctx: (B, T, d); mask: (B, T) bool; branch: "en" | "ml"
                (meanP pools the same way for both branches).

        Returns:
            (N, B) cosine similarities.
        """
        check_branch(branch)
        return F.normalize(text_emb, dim=-1) @ self.pooled(frames_ctx, mask).t()  # (N, B)
