"""Temporal modelling shared by the heads: frame-position embeddings and CLIP4Clip's seqTransf.

`temporal="none"`: frames are a set (MuMUR and X-Pool as published: order-blind).
`temporal="pos"`: a learned position embedding per frame index is added.
`temporal="transformer"`: CLIP4Clip seqTransf: position embeddings + a small pre-LN transformer
over the frames (CLIP's ResidualAttentionBlock, QuickGELU MLP), with a residual connection to the
input frames: out = frames + Transformer(frames + P). Padding frames are masked as keys.
Padding must be trailing (valid frames first), as everywhere in mumur.

Deviation: CLIP4Clip copies the first layers of CLIP's text transformer into seqTransf; here the
temporal transformer is trained from scratch with CLIP's initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TEMPORAL_MODES", "ResidualAttentionBlock", "TemporalEncoder"]

TEMPORAL_MODES = ("none", "pos", "transformer")


class QuickGELU(nn.Module):
    """CLIP's GELU approximation x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class ResidualAttentionBlock(nn.Module):
    """Pre-LN transformer block of CLIP (and CLIP4Clip's TransformerClip)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), QuickGELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, d); mask: (B, T) bool, True = valid frame. Returns (B, T, d)."""
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, key_padding_mask=~mask, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class TemporalEncoder(nn.Module):
    """Query-independent temporal context over projected frame embeddings.

    Args:
        mode: "none" | "pos" | "transformer".
        dim: embedding dimension d.
        max_frames: number of position embeddings (CLIP4Clip: 128).
        num_layers: transformer layers (CLIP4Clip seqTransf: 4).
        num_heads: transformer heads (CLIP4Clip: 8; must divide `dim`).
    """

    def __init__(self, mode: str, dim: int, max_frames: int = 128, num_layers: int = 4,
                 num_heads: int = 8):
        super().__init__()
        if mode not in TEMPORAL_MODES:
            raise ValueError(f"temporal={mode!r}; expected one of {TEMPORAL_MODES}")
        self.mode = mode
        self.max_frames = max_frames
        self.position = None
        self.blocks = None
        if mode in ("pos", "transformer"):
            self.position = nn.Parameter(torch.randn(max_frames, dim) * 0.02)  # (P, d)
        if mode == "transformer":
            self.blocks = nn.ModuleList(ResidualAttentionBlock(dim, num_heads)
                                        for _ in range(num_layers))
            self._init_clip(dim, num_layers)

    def _init_clip(self, dim: int, num_layers: int) -> None:
        # CLIP's Transformer initialisation (model.py initialize_parameters).
        attn_std = dim ** -0.5
        proj_std = dim ** -0.5 * (2 * num_layers) ** -0.5
        fc_std = (2 * dim) ** -0.5
        for block in self.blocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp[0].weight, std=fc_std)
            nn.init.normal_(block.mlp[2].weight, std=proj_std)

    def forward(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Add temporal context.

        Args:
            frames: (B, T, d) projected frame embeddings.
            mask: (B, T) bool, True = valid frame (padding trailing).

        Returns:
            (B, T, d).
        """
        if self.mode == "none":
            return frames
        n_frames = frames.shape[1]
        if n_frames > self.max_frames:
            raise ValueError(f"{n_frames} frames exceed max_frames={self.max_frames} of the "
                             "temporal position embeddings")
        x = frames + self.position[:n_frames]  # (B, T, d)
        if self.mode == "pos":
            return x
        for block in self.blocks:
            x = block(x, mask)
        return x + frames  # CLIP4Clip: residual to the frames before position embeddings
