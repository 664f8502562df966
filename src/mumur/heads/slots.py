"""LECCR's building blocks (Wang et al., MM 2024, §3.2-3.3): multi-view semantic slots from the
description embeddings (eq. 5-7) and the multi-view visual-semantic interaction (eq. 8-11).

MHCA / MHSA: the paper's modules "employ a transformer structure" (§4.4) without further detail;
here each is `torch.nn.MultiheadAttention` plus the residual of its query (the transformer
block's skip connection). Without that residual eq. 9 would rebuild the visual features from the
slots alone (Z_bar_v = MHCA(Z_v, M, M) is a mixture of slot vectors), and the pixels' own
information would reach the score only through the attention weights.
"""

from __future__ import annotations

import re

import torch
from torch import nn

__all__ = ["DIRECTIONS", "INTERACTIONS", "CrossAttention", "SemanticSlots",
           "VisualSemanticInteraction", "description_units"]

INTERACTIONS = ("dual", "co")
DIRECTIONS = ("both", "v2c", "c2v")

_CLAUSE_END = re.compile(r"(?<=[.!?;:,])\s+")


def description_units(text: str, whole: bool = False, max_units: int = 16) -> list[str]:
    """The description as the units whose embeddings form Z_c (eq. 5).

    Deviation (stated in docs/deviations.md): LECCR embeds the description's tokens with its
    mBERT; here a unit is a clause (text split after . ! ? ; : ,), embedded by the shared text
    tower's pooled output. A CLIP-style tower truncates at 77 tokens (long MLLM descriptions
    exceed it) and only its pooled token is trained to carry meaning.

    Args:
        text: the description.
        whole: one unit, the whole text (LECCR Table 7's "CLS" row).
        max_units: keep the first `max_units` clauses.

    Returns:
        At least one non-empty unit.
    """
    text = " ".join(text.split())
    if whole or not text:
        return [text or "."]
    units = [u for u in _CLAUSE_END.split(text) if u.strip(" .,;:")]
    return units[:max_units] or [text]


class CrossAttention(nn.Module):
    """MHCA(q, kv, kv) + q (module docstring); `key_mask` (B, K) True = valid key."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)

    def forward(self, query: torch.Tensor, keys: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        pad = None if key_mask is None else ~key_mask
        out, _ = self.attn(query, keys, keys, key_padding_mask=pad, need_weights=False)
        return query + out

    def weights(self, query: torch.Tensor, keys: torch.Tensor,
                key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Head-averaged attention weights (B, Q, K) (LECCR Figure 6)."""
        pad = None if key_mask is None else ~key_mask
        _, w = self.attn(query, keys, keys, key_padding_mask=pad, need_weights=True)
        return w


class _ProjectNorm(nn.Module):
    """x -> LN(phi(x)) + x, the output step of eq. 7, 9 and 11."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x)) + x


class SemanticSlots(nn.Module):
    """N_q learnable queries aggregate the description embeddings into slots M (eq. 6-7).

    Args:
        dim: d. num_slots: N_q. num_heads: attention heads.
    """

    def __init__(self, dim: int, num_slots: int, num_heads: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_slots, dim) * 0.02)  # Q, randomly initialised
        self.attend = CrossAttention(dim, num_heads)
        self.out = _ProjectNorm(dim)

    def forward(self, desc: torch.Tensor, desc_mask: torch.Tensor) -> torch.Tensor:
        """(B, U, d) description embeddings Z_c, (B, U) mask -> (B, N_q, d) slots M."""
        q = self.queries.unsqueeze(0).expand(desc.shape[0], -1, -1)  # (B, N_q, d)
        q_bar = self.attend(q, desc, desc_mask)  # eq. (6)
        return self.out(q_bar)  # eq. (7)


class VisualSemanticInteraction(nn.Module):
    """Slots <-> frames: semantic-enhanced frames Z_hat_v and local visual semantics M_hat.

    Args:
        dim: d. num_heads: attention heads.
        interaction: ``dual`` (two cross-attentions, eq. 8-9) or ``co`` (self-attention over
            [Z_v; M], eq. 10-11).
        direction: ``both``; ``v2c`` (only the slots gather visual information: Z_hat_v = Z_v) or
            ``c2v`` (only the frames gather slot semantics: M_hat = M) (LECCR Table 5).
    """

    def __init__(self, dim: int, num_heads: int, interaction: str = "dual",
                 direction: str = "both"):
        super().__init__()
        if interaction not in INTERACTIONS or direction not in DIRECTIONS:
            raise ValueError(f"interaction={interaction!r} (one of {INTERACTIONS}), "
                             f"direction={direction!r} (one of {DIRECTIONS})")
        self.interaction, self.direction = interaction, direction
        if interaction == "dual":
            self.c2v = CrossAttention(dim, num_heads)  # frames query the slots
            self.v2c = CrossAttention(dim, num_heads)  # slots query the frames
        else:
            self.joint = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.frames_out = _ProjectNorm(dim)  # phi_z + LN
        self.slots_out = _ProjectNorm(dim)  # phi_m + LN

    def forward(self, frames: torch.Tensor, mask: torch.Tensor, slots: torch.Tensor,
                slot_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: frames Z_v (B, T, d), mask (B, T), slots M (B, K, d), slot_mask (B, K).

        Returns:
            Z_hat_v (B, T, d) and M_hat (B, K, d).
        """
        if self.interaction == "dual":
            frames_bar = self.c2v(frames, slots, slot_mask)  # eq. (8), Z_bar_v
            slots_bar = self.v2c(slots, frames, mask)  # eq. (8), M_bar
        else:
            joint = torch.cat([frames, slots], dim=1)  # [Z_v; M]  (B, T + K, d)
            pad = ~torch.cat([mask, slot_mask], dim=1)
            out, _ = self.joint(joint, joint, joint, key_padding_mask=pad, need_weights=False)
            out = joint + out  # eq. (10)
            frames_bar, slots_bar = out[:, :frames.shape[1]], out[:, frames.shape[1]:]
        z_hat = self.frames_out(frames_bar) if self.direction != "v2c" else frames  # eq. (9)/(11)
        m_hat = self.slots_out(slots_bar) if self.direction != "c2v" else slots
        return z_hat, m_hat

    def slot_attention(self, frames: torch.Tensor, mask: torch.Tensor,
                       slots: torch.Tensor) -> torch.Tensor:
        """Each slot's attention over the frames (V2C, Figure 6): (B, K, T); dual only."""
        if self.interaction != "dual":
            raise ValueError("slot attention maps are defined for the dual cross-attention")
        return self.v2c.weights(slots, frames, mask)
