"""`mumur-dcm`: MuMUR's dual cross-modal encoder (§3.2.3, eq. 1-5).

Per branch b in {E, M}: the text embedding is the single query, the frame embeddings are keys and
values: r_vb = Attention(T_b, F_v, F_v) (eq. 1-3, multi-head with query/key/value/output
projections of size d), then R_vb = LN(FC(r_vb) + r_vb) (eq. 4-5) with dropout 0.4 on the FC
output (§4.3). The score is cos(R_b, R_vb). English and multilingual branches are separate modules
by default (`share_branches=True` ties them, an ablation).

`num_heads=1` by default: X-Pool, whose pooling MuMUR builds on, uses one head; the paper says
"multi-head" without a number. Deviations from X-Pool that follow the MuMUR equations: no
LayerNorm on the attention inputs or output before the FC, random initialisation (§4.3:
"initialized randomly"; `identity_init=True` gives X-Pool's identity initialisation).

Fast search path (`index_state` / `score_index_state`), exact in eval mode:
  * keys: q.(W_k f + b_k) = (W_k^T q).f + q.b_k; the last term is the same for every frame and
    cancels in the softmax, so only the raw frame states are stored and each query is folded once
    into W_k^T q.
  * values: since the weights of a head sum to 1, everything after the softmax up to the LayerNorm
    is affine and can be pushed into the frames:
    FC(r) + r = (I + W_fc) r + b_fc with r = sum_h W_o[:, h] sum_j a_hj (W_v,h f_j + b_v,h) + b_o,
    so U_hj = (I + W_fc) W_o[:, h] (W_v,h f_j + b_v,h) (+ (I + W_fc) b_o + b_fc on head 0) and
    R_v = LN(sum_h sum_j a_hj U_hj).
  Per (query, item) this costs O(H T d). Storage: keys (B, T, d) shared by the branches, plus
  H value arrays (B, T, d) per branch (so 1 + 2H arrays of frames_ctx's size with separate
  branches and both in the index; 1 + H with `share_branches`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_head
from . import dcm_fast
from .base import HeadConfig, RetrievalHead, check_branch, check_mask, masked_softmax

__all__ = ["CrossModalBranch", "DCMConfig", "DCMHead"]


@dataclass(frozen=True)
class DCMConfig(HeadConfig):
    """Options of `mumur-dcm` (plus those of `HeadConfig`).

    Args:
        num_heads: attention heads of the cross-modal attention (X-Pool: 1).
        dropout: dropout on the FC output (MuMUR §4.3: 0.4).
        share_branches: one DCM module for both branches (ablation) instead of R_vE / R_vM.
        identity_init: X-Pool's identity initialisation of the projections and the FC
            (default False: random, as MuMUR §4.3).
    """

    num_heads: int = 1
    dropout: float = 0.4
    share_branches: bool = False
    identity_init: bool = False

    def __post_init__(self):
        super().__post_init__()
        if self.num_heads <= 0 or self.embed_dim % self.num_heads:
            raise ConfigError(f"num_heads={self.num_heads} must divide embed_dim={self.embed_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout={self.dropout} must be in [0, 1)")


class CrossModalBranch(nn.Module):
    """One DCM branch: text-queried attention over frames (eq. 1-3) + FC/residual/LN (eq. 4-5).

    Args:
        dim: d. num_heads: H (d divisible by H). dropout: on the FC output.
        identity_init: initialise the projections and FC as identity (X-Pool).
    """

    def __init__(self, dim: int, num_heads: int = 1, dropout: float = 0.4,
                 identity_init: bool = False):
        super().__init__()
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.fc = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)
        if identity_init:
            for layer in (self.q_proj, self.k_proj, self.v_proj, self.out_proj, self.fc):
                nn.init.eye_(layer.weight)
                nn.init.zeros_(layer.bias)

    def attention_weights(self, text: torch.Tensor, frames: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
        """Softmax(QK^T / sqrt(d_h)) of eq. (3): (N, d), (B, T, d), (B, T) -> (N, B, H, T)."""
        n, (b, t, _) = text.shape[0], frames.shape
        q = self.q_proj(text).view(n, self.num_heads, self.head_dim)  # (N, H, dh)
        k = self.k_proj(frames).view(b, t, self.num_heads, self.head_dim)  # (B, T, H, dh)
        logits = torch.einsum("nhc,bthc->nbht", q, k) / math.sqrt(self.head_dim)
        return masked_softmax(logits, mask[None, :, None, :])  # (N, B, H, T)

    def forward(self, text: torch.Tensor, frames: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Text-conditioned pooled visual embedding of every item under every text.

        Args:
            text: (N, d) queries; frames: (B, T, d) keys/values; mask: (B, T) bool.

        Returns:
            R_v (N, B, d) of eq. (4)/(5), attention weights (N, B, H, T).
        """
        b, t, d = frames.shape
        weights = self.attention_weights(text, frames, mask)  # (N, B, H, T)
        v = self.v_proj(frames).view(b, t, self.num_heads, self.head_dim)  # (B, T, H, dh)
        # The output projection is linear, so it is applied per frame before the weighted sum:
        # W_o concat_h(sum_j a_hj v_hj) = sum_h sum_j a_hj (W_o[:, h] v_hj), O(B T d^2) instead
        # of O(N B d^2) (exact; a 2x faster training step at N = B = 128, T = 12).
        w_out = self.out_proj.weight.view(d, self.num_heads, self.head_dim)  # (d, H, dh)
        u = torch.einsum("bthc,ehc->bthe", v, w_out)  # (B, T, H, d)
        r = torch.einsum("nbht,bthe->nbe", weights, u) + self.out_proj.bias  # r_v, eq. (1)/(2)
        # FC is affine and each head's weights sum to 1, so FC(r) = sum a (W_fc u) + FC(b_o):
        # the d x d product runs per frame, O(B T d^2), not per (text, item) pair, O(N B d^2).
        # Exact, dropout included (it still acts on each pair's FC output).
        fc_u = u @ self.fc.weight.t()  # (B, T, H, d)
        fc_r = torch.einsum("nbht,bthe->nbe", weights, fc_u) + self.fc(self.out_proj.bias)
        return self.norm(self.dropout(fc_r) + r), weights  # eq. (4)/(5)

    def uniform_pool(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """R_v of eq. (4)/(5) with uniform attention over the valid frames: (B, T, d) -> (B, d).
        """
        v = self.v_proj(frames) * mask.unsqueeze(-1)  # (B, T, d)
        r = self.out_proj(v.sum(dim=1) / mask.sum(dim=1, keepdim=True))  # (B, d)
        return self.norm(self.dropout(self.fc(r)) + r)

    def fold(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Query-independent arrays of the fast path (module docstring): ``keys`` (B, T, d) and
        ``values_h`` (B, T, d) for each head h. Valid in eval mode (dropout off)."""
        b, t, d = frames.shape
        v = self.v_proj(frames).view(b, t, self.num_heads, self.head_dim)  # (B, T, H, dh)
        w_out = self.out_proj.weight.view(d, self.num_heads, self.head_dim)  # (d, H, dh)
        o = torch.einsum("bthc,ehc->bthe", v, w_out)  # W_o[:, h] (W_v,h f + b_v,h): (B,T,H,d)
        u = o + o @ self.fc.weight.t()  # (I + W_fc) o
        bias = self.out_proj.bias + self.fc(self.out_proj.bias)  # (I + W_fc) b_o + b_fc
        u[:, :, 0] += bias  # head 0's weights sum to 1, so the constant can ride on it
        state = {"keys": frames}
        state.update({f"values_{h}": u[:, :, h] for h in range(self.num_heads)})
        return state

    def score_folded(self, text: torch.Tensor, state: dict[str, torch.Tensor],
                     mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """R_v and attention from `fold`'s arrays: (N, d) -> (N, B, d), (N, B, H, T)."""
        n, d = text.shape
        q = self.q_proj(text).view(n, self.num_heads, self.head_dim)  # (N, H, dh)
        w_key = self.k_proj.weight.view(self.num_heads, self.head_dim, d)  # (H, dh, d)
        q_frame = torch.einsum("nhc,hcd->nhd", q, w_key) / math.sqrt(self.head_dim)  # W_k^T q
        logits = torch.einsum("nhd,btd->nbht", q_frame, state["keys"])  # (N, B, H, T)
        weights = masked_softmax(logits, mask[None, :, None, :])
        if self.num_heads == 1:
            values = state["values_0"].unsqueeze(2)  # (B, T, 1, d)
        else:
            values = torch.stack([state[f"values_{h}"] for h in range(self.num_heads)], dim=2)
        z = torch.einsum("nbht,bthd->nbd", weights, values)  # (N, B, d)
        return self.norm(z), weights


@register_head("mumur-dcm")
class DCMHead(RetrievalHead):
    """MuMUR's dual cross-modal encoder head (module docstring)."""

    config_class = DCMConfig
    name = "mumur-dcm"

    def __init__(self, config: DCMConfig | None = None):
        super().__init__(config)
        cfg = self.config
        names = ("shared",) if cfg.share_branches else ("en", "ml")
        self.branches = nn.ModuleDict({
            name: CrossModalBranch(cfg.embed_dim, cfg.num_heads, cfg.dropout, cfg.identity_init)
            for name in names})

    def branch_module(self, branch: str) -> CrossModalBranch:
        """The DCM module of `branch` (R_vE for "en", R_vM for "ml", or the shared one)."""
        check_branch(branch)
        return self.branches["shared" if self.config.share_branches else branch]

    def _conditioned(self, text_emb, frames_ctx, mask, branch):
        mask = check_mask(mask, frames_ctx)
        text = F.normalize(text_emb, dim=-1)  # the score is invariant to the text's scale
        pooled, weights = self.branch_module(branch)(text, frames_ctx, mask)
        return text, pooled, weights

    def similarity(self, text_emb: torch.Tensor, frames_ctx: torch.Tensor, mask: torch.Tensor,
                   branch: str) -> torch.Tensor:
        """cos(R_b, R_vb) with R_vb pooled under each text's attention.

        Args:
            text_emb: (N, d); frames_ctx: (B, T, d); mask: (B, T) bool; branch: "en" | "ml".

        Returns:
            (N, B) cosine similarities. Memory O(N B d).
        """
        text, pooled, _ = self._conditioned(text_emb, frames_ctx, mask, branch)
        return torch.einsum("nd,nbd->nb", text, F.normalize(pooled, dim=-1))

    def pooled(self, frames_ctx: torch.Tensor, mask: torch.Tensor,
               branch: str | None = None) -> torch.Tensor:
        """Query-independent vector for stage-1 search, (B, d) L2-normalised.

        With `branch`: the branch's DCM output under uniform attention (the score's R_v when the
        text attends to every frame equally), which lives in the space the score compares texts
        with. Without: meanP pooling of the frame states.
        """
        if branch is None:
            return super().pooled(frames_ctx, mask)
        mask = check_mask(mask, frames_ctx)
        return F.normalize(self.branch_module(branch).uniform_pool(frames_ctx, mask), dim=-1)

    def attention(self, text_emb: torch.Tensor, frames_ctx: torch.Tensor, mask: torch.Tensor,
                  branch: str) -> torch.Tensor:
        """Attention of each text on each item's frames, averaged over heads: (N, B, T)."""
        mask = check_mask(mask, frames_ctx)
        text = F.normalize(text_emb, dim=-1)
        return self.branch_module(branch).attention_weights(text, frames_ctx, mask).mean(dim=2)

    def index_state(self, frames_ctx: torch.Tensor, mask: torch.Tensor,
                    branch: str) -> dict[str, torch.Tensor]:
        """Fast-path arrays: ``keys`` (B, T, d) (= frames_ctx, branch-independent) and
        ``values_0`` .. ``values_{H-1}`` (B, T, d) (branch-specific; module docstring).
        Computed with dropout off, whatever the module's mode."""
        check_mask(mask, frames_ctx)
        return self.branch_module(branch).fold(frames_ctx)

    def score_index_state(self, text_emb: torch.Tensor, state: dict[str, torch.Tensor],
                          mask: torch.Tensor, branch: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (N, B) and head-averaged attention (N, B, T) from `index_state`; equal to
        `similarity` / `attention` in eval mode. O(H T d) per (query, item)."""
        mask = check_mask(mask, state["keys"])
        text = F.normalize(text_emb, dim=-1)
        pooled, weights = self.branch_module(branch).score_folded(text, state, mask)
        scores = torch.einsum("nd,nbd->nb", text, F.normalize(pooled, dim=-1))  # (N, B)
        return scores, weights.mean(dim=2)

    def compact_index_state(self, state: dict[str, torch.Tensor],
                            branch: str) -> dict[str, torch.Tensor]:
        """The keys plus per-item Gram matrices of the centred values (heads/dcm_fast.py): the
        one-pass form of `index_state`'s arrays."""
        return dcm_fast.compact_state(self.branch_module(branch), state)

    def frame_vectors(self, state: dict[str, torch.Tensor], branch: str) -> torch.Tensor:
        """LN(sum_h U_ht), normalised, per frame (heads/dcm_fast.py `frame_vectors`)."""
        return dcm_fast.frame_vectors(self.branch_module(branch), state)

    def compact_scorer(self, text_emb: torch.Tensor, branch: str):
        """One pass over the keys per query block (heads/dcm_fast.py); equal to
        `score_index_state` up to rounding."""
        module = self.branch_module(branch)
        text = F.normalize(text_emb, dim=-1)
        weights = dcm_fast.query_weights(module, text)

        def score(compact, mask):
            return dcm_fast.score_compact(module, text, compact, mask, weights)

        return score
