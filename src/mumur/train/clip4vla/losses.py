"""CLIP4VLA pretraining objectives (seed paper, section 3.3.1; the section numbers no
equations, so the comments quote its text): inter-modal contrastive learning (audio-text and
audio-vision) and intra-modal contrastive learning (SimCLR on masked spectrograms).

Each objective is a named loss term (`mumur.losses.weighted_loss`):

* ``audio_text``: "the audio-text similarity matrix in B x B ... maximizing the similarity scores
  of B corresponding pairs while minimizing the other B x (B - 1) pairs": symmetric InfoNCE
  (`mumur.losses.symmetric_infonce`) on cosine similarities times a learnable scale;
* ``audio_vision``: "Similarly, the audio-vision similarity matrix": the same, against the frozen
  vision tower's global video embedding y_i^g (mean of frame embeddings);
* ``audio_intra``: "the augmented audio embedding a^_i^g is treated as the positive sample of
  a_i^g and the other masked audios within a batch are negative samples": cross-entropy of each
  original clip against the batch of masked clips (one direction, as the text states).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...losses import LossOutput, symmetric_infonce, weighted_loss

__all__ = ["LOSS_TERMS", "clip4vla_loss", "mask_spectrogram"]

LOSS_TERMS = ("audio_text", "audio_vision", "audio_intra")


def _cosines(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T  # (B, B)


def clip4vla_loss(audio: torch.Tensor, masked_audio: torch.Tensor | None,
                  text: torch.Tensor | None, vision: torch.Tensor | None, scale: torch.Tensor,
                  weights: dict[str, float] | None = None) -> LossOutput:
    """The CLIP4VLA terms of one batch; a term whose inputs are None (or weight 0) is left out.

    Args:
        audio: ``(B, D)`` global audio embeddings a_i^g (pre-normalisation).
        masked_audio: ``(B, D)`` embeddings of the masked spectrograms a^_i^g, or None.
        text: ``(B, D)`` caption embeddings x_i^g (already in the audio-text comparison space).
        vision: ``(B, D)`` global visual embeddings y_i^g, or None.
        scale: the logit scale (exp of the learnable log-scale, clamped by the caller).
        weights: term name -> weight (1.0 when absent).

    Returns:
        `LossOutput` with the weighted sum and each term unweighted.
    """
    weights = weights or {}
    inputs = {"audio_text": text, "audio_vision": vision, "audio_intra": masked_audio}
    terms: dict[str, torch.Tensor] = {}
    for name, other in inputs.items():
        if other is None or float(weights.get(name, 1.0)) == 0.0:
            continue
        logits = _cosines(audio, other, scale)
        if name == "audio_intra":
            target = torch.arange(logits.shape[0], device=logits.device)
            terms[name] = F.cross_entropy(logits, target)
        else:
            terms[name] = symmetric_infonce(logits)
    return weighted_loss(terms, weights)


def mask_spectrogram(chunks: torch.Tensor, mask: torch.Tensor, generator: torch.Generator,
                     mel_fraction: float = 0.2, time_fraction: float = 0.2) -> torch.Tensor:
    """SimCLR view of a batch of chunked spectrograms: "randomly mask the original audio
    spectrogram a_i to a^_i along both the channel and temporal dimensions" (3.3.1).

    One band of mel channels (width uniform in [0, mel_fraction * n_mels]) and one span of time
    frames (width uniform in [0, time_fraction * filled frames]) per clip are set to 0, the
    normalised value of silence. The time axis is the clip's, across its chunks.

    Args:
        chunks: ``(n, k, n_mels, W)``.
        mask: ``(n, k)`` filled chunks.
        generator: the random source (seeded by the caller).

    Returns:
        A masked copy, same shape.
    """
    n, k, n_mels, width = chunks.shape
    out = chunks.permute(0, 2, 1, 3).reshape(n, n_mels, k * width).clone()  # (n, M, k*W)
    filled = mask.sum(1).clamp(min=1) * width  # (n,) frames in filled chunks
    for i in range(n):
        band = int(torch.randint(0, int(mel_fraction * n_mels) + 1, (1,), generator=generator))
        low = int(torch.randint(0, n_mels - band + 1, (1,), generator=generator))
        out[i, low:low + band] = 0.0
        total = int(filled[i])
        span = int(torch.randint(0, int(time_fraction * total) + 1, (1,), generator=generator))
        start = int(torch.randint(0, total - span + 1, (1,), generator=generator))
        out[i, :, start:start + span] = 0.0
    return out.reshape(n, n_mels, k, width).permute(0, 2, 1, 3).contiguous()
