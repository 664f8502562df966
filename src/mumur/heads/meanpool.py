"""`meanP`: CLIP4Clip's parameter-free mean pooling of frame embeddings (with optional temporal
context), scored by cosine similarity. With both text branches this is also MuMUR's "without DCM"
ablation (§5.5.3): the loss is computed directly between R_v and R_E / R_M.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..registry import register_model
from .base import HeadConfig, RetrievalHead, check_branch, check_mask, masked_softmax

__all__ = ["MeanPoolConfig", "MeanPoolHead"]


@dataclass(frozen=True)
class MeanPoolConfig(HeadConfig):
    """Options of `meanP` (all shared with `HeadConfig`)."""


@register_model("meanP")
class MeanPoolHead(RetrievalHead):
    """Mean pooling (CLIP4Clip meanP / seqTransf when `temporal="transformer"`)."""

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

    def attention(self, text_emb: torch.Tensor, frames_ctx: torch.Tensor, mask: torch.Tensor,
                  branch: str) -> torch.Tensor:
        """Per-frame relevance for the best timestamp (not used by the score, which weighs frames
        equally): softmax over valid frames of the scaled text-frame cosines.

        Returns:
            (N, B, T), zero on padding.
        """
        check_branch(branch)
        mask = check_mask(mask, frames_ctx)
        frames = F.normalize(frames_ctx, dim=-1)  # (B, T, d)
        return self._frame_relevance(F.normalize(text_emb, dim=-1), frames, mask)

    def _frame_relevance(self, text: torch.Tensor, frames: torch.Tensor,
                         mask: torch.Tensor) -> torch.Tensor:
        cos = torch.einsum("nd,btd->nbt", text, frames)  # (N, B, T)
        return masked_softmax(self.logit_scale().detach() * cos, mask.unsqueeze(0))

    def index_state(self, frames_ctx: torch.Tensor, mask: torch.Tensor,
                    branch: str) -> dict[str, torch.Tensor]:
        """Query-independent arrays: ``frames`` (B, T, d), the L2-normalised frames (the same for
        both branches); the mean-pooled vector is rebuilt from them at scoring time."""
        check_branch(branch)
        check_mask(mask, frames_ctx)
        return {"frames": F.normalize(frames_ctx, dim=-1)}

    def score_index_state(self, text_emb: torch.Tensor, state: dict[str, torch.Tensor],
                          mask: torch.Tensor, branch: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (N, B) and attention (N, B, T), O(T d) per (query, item)."""
        check_branch(branch)
        text = F.normalize(text_emb, dim=-1)
        mask = check_mask(mask, state["frames"])
        scores = text @ self.pooled(state["frames"], mask).t()  # (N, B)
        return scores, self._frame_relevance(text, state["frames"], mask)
