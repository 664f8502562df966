"""MLMM (../shared/seeds/mlmm-mclip-mla-clip4vla.md §3.1): a single-stream multilingual multimodal
transformer over visual tokens and multilingual text tokens, used as a cross-encoder.

§3.1.1: the input is the concatenated sequence [R; W]: visual embeddings R (projected region
features plus location embeddings, UNITER) followed by word embeddings W (shared multilingual
sub-word table plus learned positions); self-attention is unrestricted, so every token of one
modality attends to every token of the other. The pair is represented by the output at the text's
<CLS> token (the tokenizer's ``<s>``), which the ITM head turns into a matching logit (eq. 1).

Deviations (docs/deviations.md):
* visual tokens are frames, not detector regions: the frozen vision tower's per-frame features
  (the feature store's rows, T frames per video) with a learned frame-position embedding standing
  in for UNITER's box-location embedding;
* the size is tiny (a BERT of 2 x 128, not BERT-large 24 x 1024) so it trains in CPU minutes;
  its text embedder may start from the `world-m-clip` student's word embeddings (the paper
  initialises from XLM-R, `init_word_embeddings`);
* frame features are L2-normalised before the projection (as the heads' `normalize_inputs`), and
  MRFR regresses the normalised features.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import config_from_dict, config_to_dict
from ..errors import ConfigError
from ..fsutil import atomic_directory
from ..losses import LossOutput, weighted_loss
from .objectives import OBJECTIVES, itm_loss, mlm_loss, mrc_loss, mrfr_loss

__all__ = ["MLMM", "MLMMConfig", "MLMMOutput", "load_mlmm"]

CONFIG_FILE = "mlmm_config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"


@dataclass(frozen=True)
class MLMMConfig:
    """Architecture and objective options.

    Args:
        vocab_size: sub-word vocabulary (the multilingual tokenizer's).
        frame_dim: visual feature dimension Dv (the frozen vision tower's output).
        hidden_size, layers, heads, intermediate_size, dropout: the transformer (§3.1.4 uses
            BERT-large: 1024, 24, 16, 4096).
        max_frames: visual positions; max_text_len: text positions (longer texts are cut).
        num_classes: MRC categories (the soft-label distribution's size, eq. 4).
        pad_id, cls_id, sep_id, mask_id: the tokenizer's special ids.
        text_mask_prob: MLM masking rate (BERT: 15%); region_mask_prob: MRFR / MRC rate (15%).
        vision: the frozen vision tower the visual tokens come from (its name; the re-ranker
            loads it to fill the feature store); vision_identity: that tower's identity when
            the model was trained ("" = not recorded): a re-ranker refuses another tower (a
            retrained `world-clip` makes other features); num_frames: frames sampled per video.
        loss_weights: weight of each named objective (1.0 when absent).
    """

    vocab_size: int = 4000
    frame_dim: int = 192
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 512
    dropout: float = 0.1
    max_frames: int = 12
    max_text_len: int = 40
    num_classes: int = 40
    pad_id: int = 0
    cls_id: int = 2
    sep_id: int = 3
    mask_id: int = 4
    text_mask_prob: float = 0.15
    region_mask_prob: float = 0.15
    vision: str = "world-clip"
    vision_identity: str = ""
    num_frames: int = 12
    loss_weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.hidden_size % self.heads:
            raise ConfigError(f"heads={self.heads} does not divide hidden_size={self.hidden_size}")
        unknown = sorted(set(self.loss_weights) - set(OBJECTIVES))
        if unknown:
            raise ConfigError(f"loss_weights names unknown objective(s) {unknown}; MLMM's: "
                              f"{list(OBJECTIVES)}")
        if self.num_frames > self.max_frames:
            raise ConfigError(f"num_frames={self.num_frames} exceeds max_frames={self.max_frames}")


@dataclass
class MLMMOutput:
    """Transformer outputs: ``frames`` (B, T, H), ``text`` (B, L, H), ``cls`` (B, H)."""

    frames: torch.Tensor
    text: torch.Tensor
    cls: torch.Tensor


def _head(hidden: int, out: int) -> nn.Sequential:
    # UNITER's prediction heads: dense + GELU + LayerNorm, then the output layer.
    return nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.LayerNorm(hidden),
                         nn.Linear(hidden, out))


class MLMM(nn.Module):
    """The single-stream cross-encoder with its four pre-training heads (module docstring)."""

    loss_names = OBJECTIVES

    def __init__(self, config: MLMMConfig | None = None):
        super().__init__()
        self.config = config = config or MLMMConfig()
        h = config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, h, padding_idx=config.pad_id)
        self.text_positions = nn.Embedding(config.max_text_len, h)
        self.frame_proj = nn.Linear(config.frame_dim, h)
        self.frame_norm = nn.LayerNorm(h)  # UNITER normalises projected visual features
        self.frame_positions = nn.Embedding(config.max_frames, h)
        self.modality = nn.Embedding(2, h)  # 0 = visual token, 1 = text token
        self.norm = nn.LayerNorm(h)
        self.drop = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(h, config.heads, config.intermediate_size,
                                           config.dropout, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.itm_head = nn.Linear(h, 1)  # eq. (1): linear + sigmoid on <CLS>
        self.mlm_head = _head(h, config.vocab_size)
        self.mrfr_head = _head(h, config.frame_dim)
        self.mrc_head = _head(h, config.num_classes)
        for emb in (self.word_embeddings, self.text_positions, self.frame_positions,
                    self.modality):
            nn.init.normal_(emb.weight, std=0.02)  # BERT's initialiser: embeddings do not drown
            # the (unit-scale, normalised) visual features at the start

    # -- encoding ---------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, text_mask: torch.Tensor, frames: torch.Tensor,
                frame_mask: torch.Tensor, masked_frames: torch.Tensor | None = None
                ) -> MLMMOutput:
        """Encode the sequence [R; W].

        Args:
            input_ids: (B, L) token ids starting with <CLS>; text_mask: (B, L) bool, valid.
            frames: (B, T, Dv) raw frame features; frame_mask: (B, T) bool, valid frames.
            masked_frames: (B, T) bool, frames whose input is replaced by zeros (MRFR / MRC).

        Returns:
            `MLMMOutput`.
        """
        t = frames.shape[1]
        length = input_ids.shape[1]
        if t > self.config.max_frames or length > self.config.max_text_len:
            raise ValueError(f"{t} frames / {length} tokens exceed the model's "
                             f"{self.config.max_frames} / {self.config.max_text_len}")
        x = F.normalize(frames.to(self.frame_proj.weight.dtype), dim=-1)
        if masked_frames is not None:
            x = x.masked_fill(masked_frames.unsqueeze(-1), 0.0)  # §3.1.2 MRFR: zero vectors
        pos_v = torch.arange(t, device=frames.device)
        pos_w = torch.arange(length, device=frames.device)
        visual = (self.frame_norm(self.frame_proj(x)) + self.frame_positions(pos_v)
                  + self.modality.weight[0])  # (B, T, H)
        words = (self.word_embeddings(input_ids) + self.text_positions(pos_w)
                 + self.modality.weight[1])  # (B, L, H)
        seq = self.drop(self.norm(torch.cat([visual, words], dim=1)))  # (B, T + L, H)
        valid = torch.cat([frame_mask.bool(), text_mask.bool()], dim=1)  # (B, T + L)
        out = self.encoder(seq, src_key_padding_mask=~valid)
        return MLMMOutput(frames=out[:, :t], text=out[:, t:], cls=out[:, t])

    def itm_logits(self, input_ids, text_mask, frames, frame_mask) -> torch.Tensor:
        """Matching logits (B,): f(I, T) of eq. (1) before the sigmoid (the re-ranking score)."""
        return self.itm_head(self(input_ids, text_mask, frames, frame_mask).cls).squeeze(-1)

    # -- objectives -------------------------------------------------------------------------------
    def loss_terms(self, batch: dict[str, torch.Tensor], objective: str) -> dict[str, torch.Tensor]:
        """One objective's named loss term on a prepared batch (`objectives.prepare_*`).

        ``itm``: ``input_ids, text_mask, frames, frame_mask, itm_labels``; ``mlm``: the same with
        ``mlm_input_ids`` and ``mlm_labels``; ``mrfr`` / ``mrc``: ``masked_frames`` and, for
        ``mrc``, ``region_classes`` (B, T, C) soft labels.
        """
        if objective not in OBJECTIVES:
            raise ValueError(f"objective {objective!r}; expected one of {OBJECTIVES}")
        if objective == "itm":
            logits = self.itm_logits(batch["input_ids"], batch["text_mask"], batch["frames"],
                                     batch["frame_mask"])
            return {"itm": itm_loss(logits, batch["itm_labels"])}
        if objective == "mlm":
            out = self(batch["mlm_input_ids"], batch["text_mask"], batch["frames"],
                       batch["frame_mask"])
            return {"mlm": mlm_loss(self.mlm_head(out.text), batch["mlm_labels"])}
        masked = batch["masked_frames"]
        out = self(batch["input_ids"], batch["text_mask"], batch["frames"], batch["frame_mask"],
                   masked_frames=masked)
        if objective == "mrfr":
            target = F.normalize(batch["frames"].float(), dim=-1)
            return {"mrfr": mrfr_loss(self.mrfr_head(out.frames), target, masked)}
        return {"mrc": mrc_loss(self.mrc_head(out.frames), batch["region_classes"], masked)}

    def loss(self, batch: dict[str, torch.Tensor], objectives: tuple[str, ...]) -> LossOutput:
        """Weighted sum of the named terms of `objectives` (UNITER samples one per step)."""
        terms: dict[str, torch.Tensor] = {}
        for name in objectives:
            terms.update(self.loss_terms(batch, name))
        return weighted_loss(terms, self.config.loss_weights)

    # -- files ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, tokenizer_file: str | os.PathLike,
             extra: list[Path] = ()) -> Path:
        """Write ``mlmm_config.json``, ``model.safetensors``, the tokenizer (no pickle) and copies
        of the `extra` files (e.g. ``fusion.json``), all at once."""
        path = Path(path)
        with atomic_directory(path) as tmp:
            for file in extra:
                (tmp / Path(file).name).write_bytes(Path(file).read_bytes())
            (tmp / CONFIG_FILE).write_text(json.dumps(config_to_dict(self.config), indent=2))
            save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()},
                      str(tmp / WEIGHTS_FILE))
            (tmp / TOKENIZER_FILE).write_bytes(Path(tokenizer_file).read_bytes())
        return path


def load_mlmm(path: str | os.PathLike) -> MLMM:
    """An MLMM folder written by `MLMM.save`, in eval mode.

    Raises:
        ConfigError: not an MLMM folder.
    """
    path = Path(path)
    if not (path / CONFIG_FILE).is_file():
        raise ConfigError(f"{path} is not an MLMM model folder (no {CONFIG_FILE})")
    data = json.loads((path / CONFIG_FILE).read_text())
    model = MLMM(config_from_dict(MLMMConfig, data, context=f"MLMM {path}"))
    model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
    return model.eval()
