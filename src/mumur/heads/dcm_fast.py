"""Exact DCM scoring at memory speed: one pass over the stored keys per query.

`CrossModalBranch.fold` (dcm.py) stores per frame the keys f_t (the frame states) and per head the
values U_ht, affine in f_t: U_ht = A_h f_t + b_h with A_h = (I + W_fc) W_o[:, h] W_v,h and b_h
its bias (head 0 also carries (I + W_fc) b_o + b_fc). The score of MuMUR eq. (4)/(5) is
cos(t, LN(z)) with z = sum_ht a_ht U_ht. Writing LN(z) = gamma * c / s + beta with the centred
c = sum_ht a_ht u_ht (u_ht = U_ht - mean(U_ht)) and s = sqrt(|c|^2 / d + eps):

  t . LN(z)   = (sum_ht a_ht p_ht) / s + t . beta,   p_ht = (C (t * gamma)) . U_ht
              = (A_h^T g) . f_t + g . b_h             (g = C (t * gamma), C the centring)
  |c|^2       = a^T G a,          G_ij  = u_i . u_j                     (HT x HT per item)
  |LN(z)|^2   = a^T Gg a / s^2 + 2 a . hb / s + |beta|^2,
                Gg_ij = (gamma * u_i) . (gamma * u_j),  hb_i = (gamma * beta) . u_i

So per query both the attention logits q_h . f_t (eq. 3; the key bias cancels in the softmax) and
p_ht are linear functionals of the same stored keys: one (B T, d) x (d, 2H) product, read once;
the values are needed only once, at load time, to form G, Gg and hb ((HT)^2 floats per item
instead of H T d). The result equals `score_folded` up to floating-point rounding (tests).

With float16 keys the product runs in float16 (float32 accumulation inside the CPU kernel, the
output rounded to float16): relative error ~5e-4 on the logits, which is the order of the float16
storage itself (docs/index-storage.md).
"""

from __future__ import annotations

import math

import torch

from .base import masked_softmax

__all__ = ["compact_state", "frame_vectors", "score_compact"]


def _centred(values: torch.Tensor) -> torch.Tensor:
    return values - values.mean(dim=-1, keepdim=True)


def compact_state(branch, state: dict[str, torch.Tensor], block: int = 4096
                  ) -> dict[str, torch.Tensor]:
    """Query-independent arrays of the one-pass scorer from `fold`'s arrays.

    Args:
        branch: a `CrossModalBranch` (its LayerNorm gives gamma, beta).
        state: ``keys`` (B, T, d) and ``values_h`` (B, T, d) for each head, any float dtype.
        block: items per step (bounds the float32 temporaries).

    Returns:
        ``keys`` (B, T, d), unchanged dtype (contiguous); ``gram``, ``gram_gamma`` (B, HT, HT)
        and ``beta_proj`` (B, HT) float32, in (head, frame) order.
    """
    heads = branch.num_heads
    gamma, beta = _affine(branch)
    keys = state["keys"].contiguous()
    b, t, _ = keys.shape
    gram = torch.empty(b, heads * t, heads * t)
    gram_gamma = torch.empty_like(gram)
    beta_proj = torch.empty(b, heads * t)
    with torch.no_grad():
        for start in range(0, b, block):
            stop = min(start + block, b)
            u = torch.cat([_centred(state[f"values_{h}"][start:stop].float())
                           for h in range(heads)], dim=1)  # (b, HT, d)
            gram[start:stop] = u @ u.transpose(1, 2)
            ug = u * gamma
            gram_gamma[start:stop] = ug @ ug.transpose(1, 2)
            beta_proj[start:stop] = ug @ beta
    return {"keys": keys, "gram": gram, "gram_gamma": gram_gamma, "beta_proj": beta_proj}


def frame_vectors(branch, state: dict[str, torch.Tensor], block: int = 4096) -> torch.Tensor:
    """Per-frame search vectors: the normalised R_v of eq. (4) when every head attends to frame
    t alone, LN(sum_h U_ht) / |.|, so that ``text . v_t`` is the item's exact score with its
    attention on frame t (a frame mask of one). Their maximum over frames is the second stage-1
    candidate source (engine.py): it finds items whose match sits in a few frames, which the
    uniform-attention pooled vector dilutes.

    Returns:
        (B, T, d) in the keys' dtype.
    """
    keys = state["keys"]
    out = torch.empty(keys.shape, dtype=keys.dtype)
    with torch.no_grad():
        for start in range(0, keys.shape[0], block):
            stop = min(start + block, keys.shape[0])
            z = sum(state[f"values_{h}"][start:stop].float() for h in range(branch.num_heads))
            out[start:stop] = torch.nn.functional.normalize(branch.norm(z), dim=-1).to(out.dtype)
    return out


def _affine(branch) -> tuple[torch.Tensor, torch.Tensor]:
    norm = branch.norm
    d = branch.dim
    gamma = norm.weight.detach() if norm.weight is not None else torch.ones(d)
    beta = norm.bias.detach() if norm.bias is not None else torch.zeros(d)
    return gamma.float(), beta.float()


def query_weights(branch, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-query vectors of the one pass: (N, 2H, d) [logit vectors W_k,h^T q_h / sqrt(d_h);
    value vectors A_h^T g] and the per-head constants g . b_h (N, H)."""
    n, d = text.shape
    heads, dh = branch.num_heads, branch.head_dim
    gamma, _ = _affine(branch)
    q = branch.q_proj(text).view(n, heads, dh)  # eq. (3) query, (N, H, dh)
    w_key = branch.k_proj.weight.view(heads, dh, d)
    q_frame = torch.einsum("nhc,hcd->nhd", q, w_key) / math.sqrt(dh)  # (N, H, d)
    g = _centred(text * gamma)  # (N, d)
    mg = g + g @ branch.fc.weight  # (I + W_fc)^T g
    w_out = branch.out_proj.weight.view(d, heads, dh)
    y = torch.einsum("nd,dhc->nhc", mg, w_out)  # W_o[:, h]^T (I + W_fc)^T g, (N, H, dh)
    w_val = branch.v_proj.weight.view(heads, dh, d)
    p_vec = torch.einsum("nhc,hcd->nhd", y, w_val)  # A_h^T g, (N, H, d)
    const = torch.einsum("nhc,hc->nh", y, branch.v_proj.bias.view(heads, dh)).clone()
    const[:, 0] += mg @ branch.out_proj.bias + g @ branch.fc.bias  # head 0's bias (fold)
    return torch.cat([q_frame, p_vec], dim=1), const


def score_compact(branch, text: torch.Tensor, compact: dict[str, torch.Tensor],
                  mask: torch.Tensor, weights: tuple[torch.Tensor, torch.Tensor] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (N, B) and head-averaged attention (N, B, T) from `compact_state`'s arrays.

    Args:
        branch: the `CrossModalBranch` the arrays were folded with (eval mode).
        text: (N, d) L2-normalised queries.
        compact: `compact_state` arrays of B items (or a row subset of them).
        mask: (B, T) bool.
        weights: `query_weights(branch, text)`, when the caller scores many blocks.
    """
    keys = compact["keys"]
    b, t, d = keys.shape
    n, heads = text.shape[0], branch.num_heads
    vecs, const = weights if weights is not None else query_weights(branch, text)
    w = vecs.reshape(n * 2 * heads, d).to(keys.dtype)
    out = torch.nn.functional.linear(keys.reshape(b * t, d), w).float()  # the one pass
    out = out.view(b, t, n, 2, heads).permute(3, 2, 0, 4, 1)  # (2, N, B, H, T)
    attn = masked_softmax(out[0], mask[None, :, None, :])  # eq. (3), (N, B, H, T)
    p = out[1] + const[:, None, :, None]
    a = attn.reshape(n, b, heads * t)  # (head, frame) order, as the grams
    numer = (a * p.reshape(n, b, heads * t)).sum(-1)  # (N, B)
    sq = torch.einsum("nbi,bij,nbj->nb", a, compact["gram"], a)
    s = torch.sqrt(sq / d + branch.norm.eps)
    gamma, beta = _affine(branch)
    quad = torch.einsum("nbi,bij,nbj->nb", a, compact["gram_gamma"], a)
    lin = torch.einsum("nbi,bi->nb", a, compact["beta_proj"])
    norm_sq = quad / s**2 + 2 * lin / s + beta.dot(beta)
    scores = (numer / s + (text @ beta)[:, None]) / norm_sq.clamp_min(1e-12).sqrt()
    return scores, attn.mean(dim=2)
