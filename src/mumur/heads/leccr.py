"""`leccr`: Multimodal-LLM-enhanced cross-lingual cross-modal retrieval (Wang et al., MM 2024).

Per item: the frames Z_v (the base projection, `contextualize`) and the MLLM description, given as
unit embeddings of the frozen English text tower (`extra["description_features"] (B, U, Dt)`,
`extra["description_mask"] (B, U)`; units: `slots.description_units`). The description is
projected (eq. 5, through the caption projection when `description_encoder="shared"`),
aggregated into N_q slots M (eq. 6-7), and slots and frames interact (eq. 8-11) into semantic-
enhanced frames Z_hat_v and local visual semantics M_hat. The global visual vector is
h_hat_v = phi_v(mean of Z_hat_v) (eq. 17; a video has no [CLS] frame, so its valid frames are
averaged, CLIP4Clip meanP).

Per item the head stores [Z_hat_v; M_hat] (B, T + K, d): slots depend on the item only, never on
the query, so the index stores them and a query costs one dot product per frame-mean and slot.

Scores: S_g = cos(h, h_hat_v) (eq. 4), S_l = max_k cos(h, m_hat_k) (eq. 13), and at inference
S_final = beta S_g + (1 - beta) S_l (eq. 25) for both query branches. Training (eq. 24):
L = L_ts + L_v + lambda_1 L_c + mu L_reg, L_v = (L_vs + L_hat_vt) / 2 (eq. 18), L_hat_vt =
lambda_2 L_vt + (1 - lambda_2) L_rkt (eq. 23). The English branch is the paper's h_s, the
multilingual one h_t.

Switches reproducing the ablations (Tables 4-8, Figure 5): `use_slots` (False = the Baseline of
§3.1: L_base, S_g on meanP frames, no description), `multi_level` (L_c and S_l), `guidance`
(``both`` / ``global`` / ``local`` / ``none``), `interaction` (``dual`` / ``co``),
`interaction_direction` (``both`` / ``v2c`` / ``c2v``), `description_pooling` (``slots`` /
``cls`` / ``mean`` / ``all``), `description_encoder` (``shared`` / ``separate`` / ``frozen``),
`num_slots`.

Values the seed text does not give (alpha, tau, lambda_1, lambda_2, mu) are options with the
defaults below; docs/deviations.md lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..losses import LossOutput, weighted_loss
from ..registry import register_head
from .base import HeadConfig, HeadInputs, RetrievalHead, _projection, check_branch, check_mask
from .slots import DIRECTIONS, INTERACTIONS, SemanticSlots, VisualSemanticInteraction

__all__ = ["LECCRConfig", "LECCRHead"]

POOLINGS = ("slots", "cls", "mean", "all")
ENCODINGS = ("shared", "separate", "frozen")
GUIDANCE = ("both", "global", "local", "none")


@dataclass(frozen=True)
class LECCRConfig(HeadConfig):
    """Options of `leccr` (plus those of `HeadConfig`).

    Args:
        num_slots: N_q learnable queries (§4.4, Figure 5: 4 is best).
        num_heads: attention heads of MHCA / MHSA (not stated in the paper).
        use_slots: MVSS on (False = the Baseline of Table 4: no description, L_base).
        multi_level: MM on: caption-slot matching L_c (eq. 14-16) and S_l in eq. 25.
        guidance: SMEG: softened targets from S_g and S_l (``both``, eq. 19), S_g only
            (``global``), S_l only (``local``), or off (``none``: L_hat_vt = L_vt) (Table 6).
        interaction: ``dual`` cross-attention (eq. 8-9) or ``co``-attention (eq. 10-11).
        interaction_direction: ``both``, ``v2c`` or ``c2v`` (Table 5).
        description_pooling: ``slots`` (eq. 6-7), or Table 7's ``cls`` (the whole description's
            pooled embedding), ``mean`` (mean of the unit embeddings) or ``all`` (every unit).
        description_encoder: ``shared`` (the caption encoder's trainable projection, Table 8's
            best), ``separate`` (its own trainable copy) or ``frozen`` (a fixed copy).
        max_units: description units kept (the padded width U of ``all``).
        description_source: the describer that gives the items' descriptions wherever the model
            meets media (training, evaluation, the index): a `mumur.describe.load_describer`
            spec; the head itself only sees the embedded units.
        tau: temperature of eq. 4, 14-15, 20-21 (the world recipe's 1/20).
        alpha: eq. 19 weight of S_g in the softened target.
        beta: eq. 25 weight of S_g at inference (§3.6: 0.8).
        lambda_1: weight of L_c in L_ml (§3.4).
        lambda_2: eq. 23 weight of the hard L_vt against L_rkt.
        mu: eq. 24 weight of L_reg.
    """

    num_slots: int = 4
    num_heads: int = 4
    use_slots: bool = True
    multi_level: bool = True
    guidance: str = "both"
    interaction: str = "dual"
    interaction_direction: str = "both"
    description_pooling: str = "slots"
    description_encoder: str = "shared"
    max_units: int = 16
    description_source: str = "world-descriptions"
    tau: float = 0.05
    alpha: float = 0.5
    beta: float = 0.8
    lambda_1: float = 1.0
    lambda_2: float = 0.5
    mu: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        for name, allowed in (("guidance", GUIDANCE), ("interaction", INTERACTIONS),
                              ("interaction_direction", DIRECTIONS),
                              ("description_pooling", POOLINGS),
                              ("description_encoder", ENCODINGS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}; expected one of {allowed}")
        if self.num_slots <= 0 or self.max_units <= 0 or self.tau <= 0:
            raise ConfigError("num_slots, max_units and tau must be positive")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"num_heads={self.num_heads} must divide embed_dim={self.embed_dim}")
        for name in ("alpha", "beta", "lambda_2"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}={getattr(self, name)} must be in [0, 1]")


def _ctra(sim: torch.Tensor, tau: float) -> torch.Tensor:
    """L_ctra of eq. 4: half the sum of both directions' cross-entropy on (B, B) cosines."""
    target = torch.arange(sim.shape[0], device=sim.device)
    return 0.5 * (F.cross_entropy(sim / tau, target) + F.cross_entropy(sim.t() / tau, target))


def _rows_ce(sim: torch.Tensor, tau: float) -> torch.Tensor:
    """Caption -> slots cross-entropy of eq. 14/15 (captions are rows)."""
    return F.cross_entropy(sim / tau, torch.arange(sim.shape[0], device=sim.device))


@register_head("leccr")
class LECCRHead(RetrievalHead):
    """LECCR (module docstring)."""

    config_class = LECCRConfig
    name = "leccr"
    loss_names = ("ts", "vs", "vt", "c", "reg")

    def __init__(self, config: LECCRConfig | None = None):
        super().__init__(config)
        cfg, d = self.config, self.config.embed_dim
        self.visual_proj = _projection(d, d)  # phi_v (eq. 2, 17)
        if cfg.use_slots:
            if cfg.description_encoder != "shared":
                self.desc_encoder = _projection(cfg.text_dim_en, d)
                self.desc_encoder.requires_grad_(cfg.description_encoder == "separate")
            self.desc_proj = nn.Linear(d, d)  # phi_c (eq. 5)
            if cfg.description_pooling == "slots":
                self.slots = SemanticSlots(d, cfg.num_slots, cfg.num_heads)
            self.interaction = VisualSemanticInteraction(d, cfg.num_heads, cfg.interaction,
                                                         cfg.interaction_direction)

    # -- item side ----------------------------------------------------------------------------
    @property
    def item_inputs(self) -> tuple[str, ...]:
        return ("descriptions",) if self.config.use_slots else ()

    @property
    def num_state_slots(self) -> int:
        """K, the slot rows stored after the frames (0 for the Baseline)."""
        cfg = self.config
        if not cfg.use_slots:
            return 0
        return {"slots": cfg.num_slots, "cls": 1, "mean": 1, "all": cfg.max_units}[
            cfg.description_pooling]

    def state_mask(self, mask: torch.Tensor) -> torch.Tensor:
        k = self.num_state_slots
        return torch.cat([mask, mask.new_ones(mask.shape[0], k)], dim=1) if k else mask

    def _description(self, extra: dict | None, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Z_c (B, U, d) (eq. 5) and its mask from the description unit features."""
        if not extra or "description_features" not in extra:
            raise ValueError("leccr needs extra['description_features'] (B, U, Dt) and "
                             "extra['description_mask'] (B, U): visual descriptions of the items "
                             "(mumur describe)")
        feats = torch.as_tensor(extra["description_features"]).to(self.desc_proj.weight)
        dmask = torch.as_tensor(extra["description_mask"], dtype=torch.bool).to(feats.device)
        if feats.shape[0] != batch or dmask.shape != feats.shape[:2]:
            raise ValueError(f"description features {tuple(feats.shape)} / mask "
                             f"{tuple(dmask.shape)} do not match {batch} items")
        if not bool(dmask.any(dim=1).all()):
            raise ValueError("every item needs at least one description unit")
        if self.config.normalize_inputs:
            feats = F.normalize(feats, dim=-1)
        encoder = (self.text_proj["en"] if self.config.description_encoder == "shared"
                   else self.desc_encoder)
        return self.desc_proj(encoder(feats)), dmask  # phi_c(F_c(C))  (B, U, d)

    def _slots(self, desc: torch.Tensor, dmask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Slots M (B, K, d) and their mask (Table 7 rows for the other poolings)."""
        pooling = self.config.description_pooling
        if pooling == "slots":
            m = self.slots(desc, dmask)  # eq. (6)-(7)
            return m, dmask.new_ones(m.shape[:2])
        if pooling == "cls":
            return desc[:, :1], dmask[:, :1]
        if pooling == "mean":
            w = dmask.unsqueeze(-1).to(desc.dtype)
            return (desc * w).sum(1, keepdim=True) / w.sum(1, keepdim=True), dmask[:, :1]
        k = self.config.max_units  # "all": pad to a fixed width
        desc, dmask = desc[:, :k], dmask[:, :k]
        pad = k - desc.shape[1]
        return F.pad(desc, (0, 0, 0, pad)), F.pad(dmask, (0, pad), value=False)

    def contextualize(self, frame_features: torch.Tensor, mask: torch.Tensor,
                      extra: dict | None = None) -> torch.Tensor:
        """[Z_hat_v; M_hat] (B, T + K, d); the Baseline stores Z_v (B, T, d)."""
        frames = super().contextualize(frame_features, mask)  # Z_v  (B, T, d)
        if not self.config.use_slots:
            return frames
        mask = check_mask(mask, frames)
        desc, dmask = self._description(extra, frames.shape[0])
        slots, slot_mask = self._slots(desc, dmask)
        z_hat, m_hat = self.interaction(frames, mask, slots, slot_mask)  # eq. (8)-(11)
        # Padding slots ("all") repeat the first slot, so the max of eq. 13 ignores them.
        m_hat = torch.where(slot_mask.unsqueeze(-1), m_hat, m_hat[:, :1].expand_as(m_hat))
        return torch.cat([z_hat, m_hat], dim=1)

    def split_state(self, frames_ctx: torch.Tensor, mask: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(frames (B, T, d), frame mask (B, T), slots (B, K, d)) of a stored state."""
        mask = check_mask(mask, frames_ctx)
        t = frames_ctx.shape[1] - self.num_state_slots
        return frames_ctx[:, :t], mask[:, :t], frames_ctx[:, t:]

    def visual_global(self, frames_ctx: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h_hat_v = phi_v(mean of the valid Z_hat_v) (eq. 17), (B, d) L2-normalised."""
        frames, fmask, _ = self.split_state(frames_ctx, mask)
        w = fmask.unsqueeze(-1).to(frames.dtype)
        mean = (frames * w).sum(dim=1) / w.sum(dim=1).clamp(min=1)
        return F.normalize(self.visual_proj(mean), dim=-1)

    def pooled(self, frames_ctx: torch.Tensor, mask: torch.Tensor,
               branch: str | None = None) -> torch.Tensor:
        """The stage-1 vector: h_hat_v (the S_g part of the score)."""
        return self.visual_global(frames_ctx, mask)

    # -- scores -------------------------------------------------------------------------------
    def global_score(self, text_emb, frames_ctx, mask) -> torch.Tensor:
        """S_g(h, h_hat_v) (eq. 4): (N, B)."""
        return F.normalize(text_emb, dim=-1) @ self.visual_global(frames_ctx, mask).t()

    def local_score(self, text_emb, frames_ctx, mask) -> torch.Tensor:
        """S_l(h, M_hat) = max_k cos(h, m_hat_k) (eq. 13): (N, B)."""
        _, _, slots = self.split_state(frames_ctx, mask)
        cos = torch.einsum("nd,bkd->nbk", F.normalize(text_emb, dim=-1),
                           F.normalize(slots, dim=-1))
        return cos.amax(dim=-1)

    def similarity(self, text_emb: torch.Tensor, frames_ctx: torch.Tensor, mask: torch.Tensor,
                   branch: str) -> torch.Tensor:
        """S_final = beta S_g + (1 - beta) S_l (eq. 25), or S_g without multi-level matching."""
        check_branch(branch)
        s_g = self.global_score(text_emb, frames_ctx, mask)
        if not (self.config.use_slots and self.config.multi_level):
            return s_g
        beta = self.config.beta
        return beta * s_g + (1 - beta) * self.local_score(text_emb, frames_ctx, mask)

    def attention(self, text_emb: torch.Tensor, frames_ctx: torch.Tensor, mask: torch.Tensor,
                  branch: str) -> torch.Tensor:
        """The search timestamp: softmax of the scaled text-frame cosines over the valid
        semantic-enhanced frames, zero on the slot rows: (N, B, T + K)."""
        frames, fmask, slots = self.split_state(frames_ctx, mask)
        att = super().attention(text_emb, frames, fmask, branch)  # (N, B, T)
        return F.pad(att, (0, slots.shape[1]))

    # -- index -------------------------------------------------------------------------------
    def index_state(self, frames_ctx: torch.Tensor, mask: torch.Tensor,
                    branch: str) -> dict[str, torch.Tensor]:
        """Per-frame arrays for the index: ``frames`` Z_hat_v (B, T, d) (the timestamp) and
        ``item`` [h_hat_v; M_hat] flattened (B, T, (1 + K) d), the same on every frame row (the
        index stores rows per valid frame; the score reads row 0). Both branches share them."""
        check_branch(branch)
        frames, _, slots = self.split_state(frames_ctx, mask)
        item = torch.cat([self.visual_global(frames_ctx, mask).unsqueeze(1), slots], dim=1)
        item = item.flatten(1).unsqueeze(1).expand(-1, frames.shape[1], -1)
        return {"frames": frames, "item": item}

    def score_index_state(self, text_emb: torch.Tensor, state: dict[str, torch.Tensor],
                          mask: torch.Tensor, branch: str) -> tuple[torch.Tensor, torch.Tensor]:
        """S_final (eq. 25) and the frame attention from `index_state`; equal to `similarity`
        / `attention`. `mask` is the frame mask or the state mask (its frame columns are used;
        the attention is zero-padded to its width)."""
        check_branch(branch)
        frames, item = state["frames"], state["item"]
        b, t, d = frames.shape
        item = item[:, 0].reshape(b, -1, d)  # (B, 1 + K, d)
        text = F.normalize(text_emb, dim=-1)
        scores = text @ item[:, 0].t()  # S_g
        if self.config.use_slots and self.config.multi_level:
            s_l = torch.einsum("nd,bkd->nbk", text, F.normalize(item[:, 1:], dim=-1)).amax(-1)
            scores = self.config.beta * scores + (1 - self.config.beta) * s_l
        att = RetrievalHead.attention(self, text_emb, frames, mask[:, :t], branch)
        return scores, F.pad(att, (0, mask.shape[1] - t))

    # -- training -----------------------------------------------------------------------------
    def loss_terms(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        """Unweighted terms: ``ts`` (L_ts, eq. 3), ``vs`` (L_vs, eq. 17), ``vt`` (L_hat_vt,
        eq. 23), ``c`` (L_c, eq. 16) and ``reg`` (L_reg, eq. 12), those that apply."""
        cfg, tau = self.config, self.config.tau
        h_s, h_t = inputs.text.get("en"), inputs.text.get("ml")
        if h_s is None or h_t is None:
            raise ValueError("leccr trains on English (h_s) and non-English (h_t) captions of "
                             "the same items: the batch needs both branches")
        ctx, mask = inputs.frames_ctx, inputs.mask
        s_vs = self.global_score(h_s, ctx, mask)  # (B, B) captions x items
        s_vt = self.global_score(h_t, ctx, mask)
        terms = {"ts": _ctra(F.normalize(h_t, dim=-1) @ F.normalize(h_s, dim=-1).t(), tau),
                 "vs": _ctra(s_vs, tau), "vt": _ctra(s_vt, tau)}
        if not cfg.use_slots:
            return terms  # L_base (eq. 3)
        l_s = self.local_score(h_s, ctx, mask)
        if cfg.multi_level:
            terms["c"] = 0.5 * (_rows_ce(l_s, tau)
                                + _rows_ce(self.local_score(h_t, ctx, mask), tau))  # eq. (16)
        if cfg.guidance != "none":
            alpha = {"both": cfg.alpha, "global": 1.0, "local": 0.0}[cfg.guidance]
            soft = alpha * s_vs + (1 - alpha) * l_s  # eq. (19)
            target = F.softmax(soft.detach() / tau, dim=1)  # eq. (20), a teacher: no gradient
            log_pred = F.log_softmax(s_vt / tau, dim=1)  # eq. (21)
            rkt = F.kl_div(log_pred, target, reduction="batchmean")  # eq. (22)
            terms["vt"] = cfg.lambda_2 * terms["vt"] + (1 - cfg.lambda_2) * rkt  # eq. (23)
        if self.config.description_pooling == "slots" and cfg.num_slots > 1:
            _, _, slots = self.split_state(ctx, mask)
            gram = slots @ slots.transpose(1, 2)  # (B, N_q, N_q), m_hat^T m_hat
            terms["reg"] = -torch.diagonal(gram.log_softmax(dim=-1), dim1=1, dim2=2).mean()
        return terms

    def loss(self, inputs: HeadInputs) -> LossOutput:
        """Eq. 24: L = L_ts + (L_vs + L_hat_vt) / 2 + lambda_1 L_c + mu L_reg (times any
        `loss_weights`)."""
        cfg = self.config
        paper = {"ts": 1.0, "vs": 0.5, "vt": 0.5, "c": cfg.lambda_1, "reg": cfg.mu}
        if not cfg.use_slots:
            paper.update(vs=1.0, vt=1.0)  # L_base = L_vs + L_ts + L_vt (§3.1)
        weights = {k: w * float(cfg.loss_weights.get(k, 1.0)) for k, w in paper.items()}
        return weighted_loss(self.loss_terms(inputs), weights)
