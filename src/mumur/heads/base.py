"""The head contract: what every retrieval method implements, and what it gets for free.

A head maps (possibly frozen) encoder outputs into a joint space of dimension d and declares:

* how it encodes text: `text_embed(text_features (N, Dt), branch) -> (N, d)` (default: projection);
* how it encodes media: `contextualize(frame_features (B, T, Dv), mask, extra) -> (B, T', d)`,
  query-independent per-item states (default: projection + optional temporal context, T' = T).
  A head that stores more than its frames per item (LECCR's semantic slots) appends rows and
  says how the mask grows in `state_mask`; per-item inputs beyond frames (visual descriptions)
  arrive in `extra` and are declared in `item_inputs` so that training, evaluation and the
  study engine supply them;
* how it scores: `similarity(text_emb, frames_ctx, mask, branch) -> (N, B)` (the one abstract
  method) and `attention(...) -> (N, B, T)` (which frames a text matches; default: softmax of the
  scaled text-frame cosines);
* which named loss terms it trains with: `loss_terms(inputs: HeadInputs) -> {name: scalar}`
  (default: the symmetric InfoNCE of every trained branch, MuMUR eq. 6-10, as ``en`` / ``ml``),
  declared in `loss_names`; `loss` sums them with `config.loss_weights` (1.0 when absent), and
  the trainer logs each as ``loss_<name>``. Anything a head needs beyond texts and frames
  (description features, audio, teacher outputs) arrives in `HeadInputs.extra`, straight from
  the batch, so a new head needs no edit of the model or the trainer;
* optionally, how the index precomputes and scores: `index_state` / `score_index_state` (default:
  store the frame states and call `similarity` / `attention`; DCM overrides them with its folded
  fast path) and `pooled` (the stage-1 vector; default: meanP); `compact_index_state` /
  `compact_scorer`, the form the search engine holds in memory and scores in blocks (default:
  the stored arrays; DCM: one pass over the keys, heads/dcm_fast.py).

A new head subclasses `RetrievalHead`, implements `similarity`, and registers itself with
`@register_head("name")`: one file, one registration (see tests/test_head_contract.py).

Input normalisation (a deviation, switchable with `normalize_inputs`): text and frame features are
L2-normalised before the projections, so features cached from `encoder.encode` (normalised) and
features from `encoder.forward` (raw) give identical results, and an identity-initialised head
reproduces zero-shot CLIP cosine scores.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import replace_config
from ..errors import ConfigError
from ..losses import ContrastiveLoss, LossOutput, weighted_loss
from .temporal import TEMPORAL_MODES, TemporalEncoder

__all__ = ["BRANCHES", "HeadConfig", "HeadInputs", "RetrievalHead", "check_branch", "check_mask",
           "masked_softmax"]

BRANCHES = ("en", "ml")


@dataclass(frozen=True)
class HeadConfig:
    """Options shared by every head.

    Args:
        embed_dim: joint space dimension d (MuMUR §4.3: 512).
        frame_dim: input frame feature dimension Dv (vision encoder output).
        text_dim_en: English text encoder output dimension.
        text_dim_ml: multilingual text encoder output dimension.
        temporal: "none" (as published, order-blind) | "pos" | "transformer" (CLIP4Clip seqTransf).
        max_frames: number of frame-position embeddings (CLIP4Clip: 128).
        temporal_layers: seqTransf layers (CLIP4Clip: 4).
        temporal_heads: seqTransf attention heads (CLIP4Clip: 8).
        train_branches: branches whose loss is used (("en",) = English-only ablation, §5.5.1).
        normalize_inputs: L2-normalise text and frame features before the projections.
        logit_scale_init: initial log temperature. Default log(1/0.07), CLIP's initialisation
            for training from scratch. Deviation: CLIP4Clip and X-Pool (the code MuMUR builds
            on) start from pretrained CLIP's learned scale, 100 (log 100 = 4.605); the paper
            presets set that value.
        logit_scale_max: clamp of the temperature (CLIP: 100).
        loss_weights: weight of each named loss term (`RetrievalHead.loss_names`); a term
            without an entry weighs 1.0 (MuMUR eq. 6: L = L_E + L_M).
    """

    embed_dim: int = 512
    frame_dim: int = 512
    text_dim_en: int = 512
    text_dim_ml: int = 512
    temporal: str = "none"
    max_frames: int = 128
    temporal_layers: int = 4
    temporal_heads: int = 8
    train_branches: tuple[str, ...] = ("en", "ml")
    normalize_inputs: bool = True
    logit_scale_init: float = math.log(1 / 0.07)
    logit_scale_max: float = 100.0
    loss_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.temporal not in TEMPORAL_MODES:
            raise ConfigError(f"temporal={self.temporal!r}; expected one of {TEMPORAL_MODES}")
        for name in ("embed_dim", "frame_dim", "text_dim_en", "text_dim_ml", "max_frames"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.temporal == "transformer" and self.embed_dim % self.temporal_heads:
            raise ConfigError(f"temporal_heads={self.temporal_heads} does not divide "
                              f"embed_dim={self.embed_dim}")
        bad = [b for b in self.train_branches if b not in BRANCHES]
        if bad or not self.train_branches:
            raise ConfigError(f"train_branches={self.train_branches!r}; use a non-empty subset of "
                              f"{BRANCHES}")


def check_branch(branch: str) -> str:
    """Return `branch` if it is "en" or "ml"; raise ValueError otherwise."""
    if branch not in BRANCHES:
        raise ValueError(f"branch={branch!r}; expected one of {BRANCHES}")
    return branch


def check_mask(mask: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Validate a (B, T) frame mask against (B, T, ...) frames; every item needs a valid frame.

    Returns:
        the mask as bool on the frames' device.
    """
    if mask.shape != frames.shape[:2]:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match frames "
                         f"{tuple(frames.shape[:2])}")
    mask = mask.to(device=frames.device, dtype=torch.bool)
    if mask.numel() and not bool(mask.any(dim=1).all()):
        empty = torch.nonzero(~mask.any(dim=1)).flatten().tolist()
        raise ValueError(f"items {empty[:10]} have no valid frame (mask all False)")
    return mask


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis with padding frames given zero weight.

    Args:
        logits: (..., B, [H,] T) scores; `mask` broadcasts against it.
        mask: bool, True = valid, broadcastable to `logits`.
    """
    return logits.masked_fill(~mask, float("-inf")).softmax(dim=-1)


def _projection(in_dim: int, out_dim: int) -> nn.Linear:
    # Identity-initialised when the dims match, so a fresh head keeps the encoder's geometry.
    layer = nn.Linear(in_dim, out_dim)
    if in_dim == out_dim:
        nn.init.eye_(layer.weight)
        nn.init.zeros_(layer.bias)
    return layer


@dataclass
class HeadInputs:
    """One training batch as a head sees it (B matching pairs).

    Attributes:
        frames_ctx: (B, T, d) frame states from `contextualize`.
        mask: (B, T) bool, True = valid frame.
        text: branch -> (B, d) text embeddings from `text_embed`, for the branches whose
            captions the batch carries.
        text_features: branch -> (B, Dt) the text encoders' outputs before `text_embed`.
        extra: every other batch entry, untouched (e.g. ``description_features``,
            ``audio_features``): what a head needs beyond texts and frames.
    """

    frames_ctx: torch.Tensor
    mask: torch.Tensor
    text: dict[str, torch.Tensor] = field(default_factory=dict)
    text_features: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class RetrievalHead(nn.Module, abc.ABC):
    """Base class of method heads (the contract is in the module docstring).

    Subclasses implement `similarity`; everything else has a default they may override.
    """

    config_class: ClassVar[type[HeadConfig]] = HeadConfig
    name: ClassVar[str] = ""
    loss_names: ClassVar[tuple[str, ...]] = BRANCHES

    @property
    def item_inputs(self) -> tuple[str, ...]:
        """Per-item inputs beyond frames that `contextualize` needs in `extra` (``"descriptions"``:
        ``description_features (B, U, Dt)`` and ``description_mask (B, U)``). Default: none."""
        return ()

    def __init__(self, config: HeadConfig | None = None):
        super().__init__()
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise ConfigError(f"{type(self).__name__} needs a {self.config_class.__name__}, got "
                              f"{type(config).__name__}")
        unknown = sorted(set(config.loss_weights) - set(self.loss_names))
        if unknown:
            raise ConfigError(f"loss_weights names unknown loss term(s) {unknown} of head "
                              f"{self.name!r}; its terms: {list(self.loss_names)}")
        self.config = config
        d = config.embed_dim
        self.frame_proj = _projection(config.frame_dim, d)
        self.text_proj = nn.ModuleDict({"en": _projection(config.text_dim_en, d),
                                        "ml": _projection(config.text_dim_ml, d)})
        self.temporal = TemporalEncoder(config.temporal, d, config.max_frames,
                                        config.temporal_layers, config.temporal_heads)
        self.criterion = ContrastiveLoss(config.logit_scale_init, config.logit_scale_max)

    @classmethod
    def from_config(cls, config: HeadConfig | None = None, **overrides) -> RetrievalHead:
        """Build the head from a config with `dataclasses.replace` overrides.

        Raises:
            ConfigError: unknown option names or invalid values.
        """
        config = config if config is not None else cls.config_class()
        if overrides:
            config = replace_config(config, context=f"head {cls.name!r}", **overrides)
        return cls(config)

    @property
    def embed_dim(self) -> int:
        """Joint space dimension d."""
        return self.config.embed_dim

    # -- encoding ------------------------------------------------------------------------------
    def text_embed(self, text_features: torch.Tensor, branch: str) -> torch.Tensor:
        """Project text-encoder outputs into the joint space.

        Args:
            text_features: (N, Dt) outputs of the branch's text encoder.
            branch: "en" or "ml".

        Returns:
            (N, d) L2-normalised text embeddings (R_E or R_M).
        """
        x = text_features.to(self.text_proj[check_branch(branch)].weight.dtype)
        if self.config.normalize_inputs:
            x = F.normalize(x, dim=-1)
        return F.normalize(self.text_proj[branch](x), dim=-1)  # (N, d)

    def contextualize(self, frame_features: torch.Tensor, mask: torch.Tensor,
                      extra: dict[str, Any] | None = None) -> torch.Tensor:
        """Query-independent per-item states (what the index stores).

        Args:
            frame_features: (B, T, Dv) raw frame features, padding trailing.
            mask: (B, T) bool, True = valid frame (an image has one).
            extra: the per-item inputs of `item_inputs` (unused by the default).

        Returns:
            (B, T, d) frame states F_v after projection and temporal context.
        """
        mask = check_mask(mask, frame_features)
        x = frame_features.to(self.frame_proj.weight.dtype)
        if self.config.normalize_inputs:
            x = F.normalize(x, dim=-1)
        x = self.frame_proj(x)  # (B, T, d)
        return self.temporal(x, mask)

    def state_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The (B, T') mask of `contextualize`'s output from the (B, T) frame mask (default: the
        same mask; a head that appends rows appends their validity)."""
        return mask

    def pooled(self, frames_ctx: torch.Tensor, mask: torch.Tensor,
               branch: str | None = None) -> torch.Tensor:
        """Query-independent pooled vector: CLIP4Clip meanP (mean of L2-normalised frames).

        Args:
            frames_ctx: (B, T, d); mask: (B, T) bool.
            branch: heads whose scores depend on the branch (DCM) may give a branch-specific
                vector closer to their score; meanP ignores it.

        Returns:
            (B, d) L2-normalised.
        """
        mask = check_mask(mask, frames_ctx)
        frames = F.normalize(frames_ctx, dim=-1) * mask.unsqueeze(-1)  # (B, T, d)
        mean = frames.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp(min=1)  # (B, d)
        return F.normalize(mean, dim=-1)

    def logit_scale(self) -> torch.Tensor:
        """The learnable temperature exp(logit_scale), clamped."""
        return self.criterion.scale()

    # -- scoring -------------------------------------------------------------------------------
    @abc.abstractmethod
    def similarity(self, text_emb: torch.Tensor, frames_ctx: torch.Tensor, mask: torch.Tensor,
                   branch: str) -> torch.Tensor:
        """Cosine scores of every text against every item: (N, d), (B, T, d), (B, T) -> (N, B)."""
        ...

    def attention(self, text_emb: torch.Tensor, frames_ctx: torch.Tensor, mask: torch.Tensor,
                  branch: str) -> torch.Tensor:
        """Per-frame relevance of every text on every item (the search timestamp): (N, B, T),
        zero on padding. Default: softmax over valid frames of the scaled text-frame cosines
        (it does not enter the score of heads that weigh frames equally)."""
        check_branch(branch)
        mask = check_mask(mask, frames_ctx)
        cos = torch.einsum("nd,btd->nbt", F.normalize(text_emb, dim=-1),
                           F.normalize(frames_ctx, dim=-1))  # (N, B, T)
        return masked_softmax(self.logit_scale().detach() * cos, mask.unsqueeze(0))

    # -- index (optional fast path) ---------------------------------------------------------------
    def index_state(self, frames_ctx: torch.Tensor, mask: torch.Tensor,
                    branch: str) -> dict[str, torch.Tensor]:
        """Query-independent per-frame arrays the index stores for `branch`, each (B, T, k).
        Default: the frame states themselves (``frames``)."""
        check_branch(branch)
        check_mask(mask, frames_ctx)
        return {"frames": frames_ctx}

    def score_index_state(self, text_emb: torch.Tensor, state: dict[str, torch.Tensor],
                          mask: torch.Tensor, branch: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (N, B) and attention (N, B, T) from `index_state`; must equal `similarity` /
        `attention` in eval mode. Default: call them on the stored frame states."""
        frames = state["frames"]
        return (self.similarity(text_emb, frames, mask, branch),
                self.attention(text_emb, frames, mask, branch))

    def compact_index_state(self, state: dict[str, torch.Tensor],
                            branch: str) -> dict[str, torch.Tensor]:
        """The in-memory search form of `index_state`'s arrays (B first on every array, any float
        dtype), built once when an index is loaded. Default: the arrays themselves."""
        check_branch(branch)
        return state

    def frame_vectors(self, state: dict[str, torch.Tensor], branch: str) -> torch.Tensor | None:
        """Per-frame stage-1 vectors (B, T, d) whose inner product with a query is the item's
        score with all attention on that frame (a second candidate source for heads whose score
        attends over frames); None: the head has none (default)."""
        check_branch(branch)
        return None

    def compact_scorer(self, text_emb: torch.Tensor, branch: str):
        """A scorer of `text_emb` (N, d) over blocks of `compact_index_state` arrays:
        ``fn(compact_block, mask_block) -> (scores (N, B), attention (N, B, T))``, equal to
        `score_index_state`. Query-only work is done here, once per query batch. Default: convert
        the block to float32 and call `score_index_state`."""

        def score(compact, mask):
            state = {key: value.float() for key, value in compact.items()}
            return self.score_index_state(text_emb, state, mask, branch)

        return score

    # -- training ------------------------------------------------------------------------------
    def loss_terms(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        """Named loss terms of a batch of matching (text, item) pairs; names from `loss_names`.

        Default: per trained branch b with text, the symmetric InfoNCE of eq. 7-10 on the
        (B, B) similarity matrix, named ``b`` (L_E = ``en``, L_M = ``ml``).
        """
        terms = {}
        for branch in BRANCHES:
            text = inputs.text.get(branch)
            if text is None or branch not in self.config.train_branches:
                continue
            if text.shape[0] != inputs.frames_ctx.shape[0]:
                raise ValueError(f"{branch} texts ({text.shape[0]}) and items "
                                 f"({inputs.frames_ctx.shape[0]}) must pair one to one")
            sim = self.similarity(text, inputs.frames_ctx, inputs.mask, branch)  # (B_t, B_v)
            terms[branch] = self.criterion(sim)
        return terms

    def loss(self, inputs: HeadInputs) -> LossOutput:
        """The weighted sum of `loss_terms` (eq. 6 for MuMUR: L = L_E + L_M).

        Raises:
            ValueError: no term (every branch switched off or without text).
        """
        return weighted_loss(self.loss_terms(inputs), self.config.loss_weights)
