"""What the `Trainer` trains in the two MLA stages: the language acquisition encoder Psi' with
the native-language-transfer loss (eq. 6) or the language-exposure loss (eq. 7-8)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ...losses import LossOutput, symmetric_infonce
from ..distill.model import DistillLoss

__all__ = ["LanguageExposureLoss", "MlaStageModule", "init_multilingual_embedding"]


class LanguageExposureLoss(nn.Module):
    """Eq. (7)-(8): the mean of NCE(Phi(V), Psi'(T)) and NCE(Psi'(T), Phi(V)) over a batch of
    (media, caption) pairs, cosine similarities divided by `temperature`.

    Args:
        temperature: NCE temperature (eq. 8 has none; without one cosines in [-1, 1] give
            almost flat softmaxes).
    """

    def __init__(self, temperature: float = 0.05):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, media: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Args: media (B, D) frozen Phi(V), text (B, D) Psi'(T), row i a pair. Returns: scalar."""
        logits = F.normalize(media.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T
        # symmetric_infonce sums the two directions; eq. (7) averages them
        return symmetric_infonce(logits / self.temperature) / 2  # (B, B) -> scalar


class MlaStageModule(nn.Module):
    """Psi' and one stage's loss; batches hold one language each (survey §3.2.3).

    `compute_loss(batch)`: `batch["language"]` (one code), `batch["target"]` (B sentences in it)
    and either `batch["teacher"]` (B, D) Psi(S) of their English sources (stage `nlt`, eq. 6,
    squared L2 averaged as M-CLIP's MSE) or `batch["media"]` (B, D) Phi(V) of their items (stage
    `le`, eq. 7). `save` writes the encoder folder.

    Args:
        encoder: the `MlaTextEncoder`.
        stage: `nlt` or `le`.
        temperature: NCE temperature (stage `le`).
    """

    def __init__(self, encoder: nn.Module, stage: str, temperature: float = 0.05):
        super().__init__()
        if stage not in ("nlt", "le"):
            raise ValueError(f"MLA stage must be 'nlt' or 'le' (got {stage!r})")
        self.encoder, self.stage = encoder, stage
        self.loss = DistillLoss() if stage == "nlt" else LanguageExposureLoss(temperature)

    def compute_loss(self, batch: dict) -> LossOutput:
        language = batch["language"]
        pred = self.encoder.forward_language(batch["target"], language)  # (B, D)
        if self.stage == "nlt":
            loss = self.loss(pred, batch["teacher"])  # eq. (6)
        else:
            loss = self.loss(batch["media"], pred)  # eq. (7)
        return LossOutput(loss, {f"{self.stage}_{language}": loss.detach()})

    def save(self, path) -> Path:
        return self.encoder.save(path)


@torch.no_grad()
def init_multilingual_embedding(encoder, seed: int = 0) -> int:
    """Initialise theta_emb from CLIP's own token embeddings: each multilingual sub-word gets the
    mean of CLIP's embeddings of its BPE pieces; `<s>`, `</s>` and `<pad>` take CLIP's BOS, EOS
    and padding rows (CLIP pools the EOS state). Sub-words CLIP cannot spell keep a small random
    row. Returns the number of rows copied from CLIP.

    (MLA initialises theta_emb from mBERT's embeddings; there is no mBERT offline.)
    """
    clip_tok = encoder.clip.tokenizer
    clip_rows = encoder.clip.model.text_model.embeddings.token_embedding.weight  # (V_clip, H)
    table = encoder.embedding.weight  # (V, H)
    generator = torch.Generator().manual_seed(seed)
    table.copy_(torch.randn(table.shape, generator=generator) * 0.02)
    tok = encoder.tokenizer
    special = {tok.bos_token_id: clip_tok.bos_token_id, tok.eos_token_id: clip_tok.eos_token_id,
               tok.pad_token_id: clip_tok.pad_token_id}
    copied = 0
    for token_id, piece in enumerate(tok.convert_ids_to_tokens(list(range(len(tok))))):
        if token_id in special and special[token_id] is not None:
            table[token_id] = clip_rows[special[token_id]]
            copied += 1
            continue
        text = piece.replace("\u2581", " ").strip()
        ids = clip_tok(text, add_special_tokens=False)["input_ids"] if text else []
        if ids:
            table[token_id] = clip_rows[ids].mean(dim=0)
            copied += 1
    return copied
