"""CLIP4VLA audio encoder (seed paper, section 3.3.1): a spectrogram cut into images, encoded by a
ViT that starts as a copy of the CLIP visual encoder.

"we first transfer the audio into a continuous spectrogram of t x H, and then cut it into images
of k x W x H along the time dimension without overlapping" (3.3.1): :func:`chunk_spectrogram`.
Each chunk goes through the vision architecture (same weights at initialisation, 3.3.3: "initialize
the audio backbone with the vision backbone"), and "by average pooling ... Z_i, we obtain the
global ... audio embedding z_i^g" (3.3.1): ``forward`` averages the projected chunk embeddings over
the chunks the clip actually fills.

Deviations (docs/deviations.md): the chunk is ``n_mels x chunk_frames`` log-mel values, resized to
the vision tower's input side when they differ (world-CLIP: 64 x 64, no resize) and repeated over
the 3 colour channels (the paper does not say how a one-channel spectrogram enters the RGB patch
embedding); log-mel values use a fixed normalisation that maps digital silence to 0, so silence is
a state the encoder sees rather than noise blown up by per-clip standardisation.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mumur.encoders.audio import log_mel_spectrogram, mel_filterbank
from mumur.encoders.base import Encoder, load_clip_tower, read_json_file, write_encoder_file
from mumur.errors import EncoderLoadError

__all__ = ["AUDIO_DEFAULTS", "Clip4VLAAudioEncoder", "chunk_spectrogram", "load_clip4vla_audio",
           "normalised_log_mel"]

#: Spectrogram settings of a CLIP4VLA audio encoder (stored in ``mumur_encoder.json``).
AUDIO_DEFAULTS: dict[str, Any] = {
    "sample_rate": 16000, "n_mels": 64, "n_fft": 400, "hop_length": 160,
    "chunk_frames": 64,  # W: 64 hops of 10 ms = 0.64 s per image
    "max_chunks": 16,  # k at most: the first ~10 s of a clip
}
_LOG_FLOOR = float(np.log(1e-6))  # log-mel of digital silence (log_mel_spectrogram's epsilon)
_LOG_SCALE = 10.0


def normalised_log_mel(waveform, settings: dict | None = None) -> np.ndarray:
    """Log-mel spectrogram ``(n_mels, t)`` scaled so that silence is 0 and a loud tone about 2.

    Args:
        waveform: ``(n_samples,)`` mono float32 at ``settings["sample_rate"]``; empty gives
            ``t = 0``.
        settings: :data:`AUDIO_DEFAULTS` overrides.

    Returns:
        float32 ``(n_mels, t)`` with ``t = n_samples // hop_length + 1``, cut to
        ``max_chunks * chunk_frames`` frames.
    """
    s = {**AUDIO_DEFAULTS, **(settings or {})}
    wav = torch.as_tensor(np.asarray(waveform, dtype=np.float32)).reshape(-1)
    if wav.numel() == 0:
        return np.zeros((s["n_mels"], 0), np.float32)
    wav = wav[: s["max_chunks"] * s["chunk_frames"] * s["hop_length"]]
    fb = mel_filterbank(s["n_fft"] // 2 + 1, s["n_mels"], s["sample_rate"])
    logmel = log_mel_spectrogram(wav, fb, s["n_fft"], s["hop_length"])  # (M, t)
    logmel = (logmel - _LOG_FLOOR) / _LOG_SCALE
    return logmel[:, : s["max_chunks"] * s["chunk_frames"]].numpy().astype(np.float32)


def chunk_spectrogram(logmel, chunk_frames: int, max_chunks: int) -> tuple[torch.Tensor,
                                                                            torch.Tensor]:
    """Cut a ``t x H`` spectrogram into ``k`` non-overlapping ``W x H`` images (3.3.1).

    Args:
        logmel: ``(n_mels, t)`` array or tensor.
        chunk_frames: W, frames per image.
        max_chunks: images returned (k); frames past ``max_chunks * W`` are dropped.

    Returns:
        ``chunks (max_chunks, n_mels, W)`` float32 (the last filled chunk zero-padded, unfilled
        chunks all zero) and ``mask (max_chunks,)`` bool, True for chunks holding frames. A clip
        with ``t = 0`` has one chunk of zeros marked valid (silence), so every clip has an
        embedding.
    """
    logmel = torch.as_tensor(np.asarray(logmel, dtype=np.float32))
    n_mels, t = logmel.shape
    t = min(t, chunk_frames * max_chunks)
    chunks = torch.zeros(max_chunks, n_mels, chunk_frames)
    mask = torch.zeros(max_chunks, dtype=torch.bool)
    k = max(1, -(-t // chunk_frames))  # ceil(t / W), at least one image
    padded = torch.zeros(n_mels, k * chunk_frames)
    padded[:, :t] = logmel[:, :t]
    chunks[:k] = padded.reshape(n_mels, k, chunk_frames).permute(1, 0, 2)  # (k, M, W)
    mask[:k] = True
    return chunks, mask


class Clip4VLAAudioEncoder(Encoder):
    """Audio encoder with the CLIP vision architecture (CLIP4VLA, 3.3.1).

    Args:
        model: a ``CLIPVisionModelWithProjection`` (a copy of the vision tower at initialisation).
        source: name recorded in the identity.
        settings: :data:`AUDIO_DEFAULTS` overrides.
    """

    modality = "audio"
    kind = "clip4vla-audio"
    def __init__(self, model: nn.Module, source: str, settings: dict | None = None):
        super().__init__(source, model.config.projection_dim, trainable=True)
        unknown = set(settings or {}) - set(AUDIO_DEFAULTS)
        if unknown:
            raise EncoderLoadError(f"clip4vla audio encoder: unknown settings {sorted(unknown)}")
        self.settings = {**AUDIO_DEFAULTS, **(settings or {})}
        self.model = model
        self.image_size = int(model.config.image_size)

    @classmethod
    def from_vision(cls, vision: Encoder, source: str | None = None,
                    **settings: Any) -> Clip4VLAAudioEncoder:
        """The audio backbone initialised with the vision backbone (3.3.3): a deep copy of a
        CLIP vision encoder's tower and projection (world-CLIP offline, CLIP with hub access).

        Raises:
            EncoderLoadError: `vision` is not a transformers CLIP vision tower.
        """
        model = getattr(vision, "model", None)
        if model is None or getattr(model.config, "model_type", "") != "clip_vision_model":
            raise EncoderLoadError(f"CLIP4VLA initialises its audio encoder from a CLIP vision "
                                   f"tower; {getattr(vision, 'identity', vision)!r} is not one")
        return cls(copy.deepcopy(model).float(), source or f"clip4vla<{vision.source}>", settings)

    @property
    def sample_rate(self) -> int:
        """Expected input sample rate in Hz."""
        return int(self.settings["sample_rate"])

    def chunks(self, logmels: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """Images of a batch of normalised log-mels: ``(n, k, n_mels, W)`` and mask ``(n, k)``."""
        s = self.settings
        pairs = [chunk_spectrogram(m, s["chunk_frames"], s["max_chunks"]) for m in logmels]
        if not pairs:
            return (torch.zeros(0, s["max_chunks"], s["n_mels"], s["chunk_frames"]),
                    torch.zeros(0, s["max_chunks"], dtype=torch.bool))
        return torch.stack([c for c, _ in pairs]), torch.stack([m for _, m in pairs])

    def preprocess(self, waveforms: Sequence[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunks and mask (:meth:`chunks`) of a batch of mono waveforms at ``sample_rate``."""
        return self.chunks([normalised_log_mel(w, self.settings) for w in waveforms])

    def _inputs(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        chunks, mask = batch if isinstance(batch, tuple) else self.preprocess(batch)
        return chunks.to(self.device), mask.to(self.device)

    def forward(self, chunks, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of the projected chunk embeddings over the filled chunks (``z_i^g``, 3.3.1).

        Args:
            chunks: ``(n, k, n_mels, W)`` normalised log-mel images, or a ``(chunks, mask)``
                pair as :meth:`preprocess` returns.
            mask: ``(n, k)`` bool (None: every chunk); unfilled chunks are not encoded.

        Returns:
            ``(n, dim)`` un-normalised.
        """
        if isinstance(chunks, tuple):
            chunks, mask = chunks
        n, k, height, width = chunks.shape
        if mask is None:
            mask = torch.ones(n, k, dtype=torch.bool, device=chunks.device)
        images = chunks[mask].unsqueeze(1)  # (m, 1, M, W): filled chunks only
        if (height, width) != (self.image_size, self.image_size):
            images = nn.functional.interpolate(images, size=(self.image_size,) * 2,
                                               mode="bilinear", align_corners=False)
        images = images.expand(-1, 3, -1, -1)  # grey image on the RGB patch embedding
        embeds = self.model(pixel_values=images).image_embeds  # (m, D)
        per_chunk = embeds.new_zeros(n, k, embeds.shape[-1]).index_put((mask,), embeds)
        weights = mask.to(per_chunk.dtype).unsqueeze(-1)  # (n, k, 1)
        return (per_chunk * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def save(self, path: str | os.PathLike) -> Path:
        """Write config.json + model.safetensors (the ViT) + mumur_encoder.json (settings)."""
        folder = Path(path)
        self.model.save_pretrained(folder)
        return write_encoder_file(folder, self.kind, source=self.source, settings=self.settings)


def load_clip4vla_audio(name_or_path: str) -> Clip4VLAAudioEncoder:
    """Load a folder written by :meth:`Clip4VLAAudioEncoder.save` (eval mode)."""
    saved = read_json_file(name_or_path, "mumur_encoder.json")
    model = load_clip_tower(name_or_path, "vision")
    return Clip4VLAAudioEncoder(model, saved.get("source", name_or_path),
                                saved.get("settings")).eval()
