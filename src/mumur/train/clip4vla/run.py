"""Pretraining the CLIP4VLA audio encoder (seed paper, 3.3.1 and 3.3.3) on a world's train split.

"Since the text and vision encoders have been well pretrained, we freeze these two encoders during
the pretraining of the audio encoder" (3.3.3): only the `AudioTower` (audio ViT, initialised from
the vision ViT, and the text map, see `mumur.model.audio`) and the logit scale are optimised, on
the three named terms of `losses.py`. Videos whose file has no sound data (no track, undecodable)
are left out, as the paper filters "videos with missing audio"; digitally silent tracks stay (in
the synthetic world silence is a fact captions can rely on).

Deviations (docs/deviations.md): AdamW with warm-up + cosine decay at lr 3e-4 for a few hundred
steps of batch 32 (paper: lr 1e-6, batch 256, 96 V100 days), one English caption per video per
step (the world's captions stand in for HowTo100M narrations and AudioSet "The sound of ..."
sentences).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ...encoders.clip4vla import Clip4VLAAudioEncoder
from ...model.audio import AudioTower
from ..schedule import build_scheduler
from .data import Towers, WorldAudio, text_features
from .losses import LOSS_TERMS, clip4vla_loss, mask_spectrogram

__all__ = ["AudioTrainConfig", "encode_audio", "train_audio_tower"]


@dataclass(frozen=True)
class AudioTrainConfig:
    """Training settings (the ``train`` object of a `configs/clip4vla/*.json`)."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup: int = 20
    weights: dict = field(default_factory=lambda: {t: 1.0 for t in LOSS_TERMS})
    mel_fraction: float = 0.2
    time_fraction: float = 0.2
    text_map: bool = True
    audio_weight: float = 1.0
    weight_grid: list | None = None  # choose w from these on the train world's val split
    missing: str = "borrow"
    log_every: int = 50


def _chunk_bank(encoder: Clip4VLAAudioEncoder, rows) -> tuple[torch.Tensor, torch.Tensor]:
    return encoder.chunks(rows.logmels)  # (N, k, M, W), (N, k)


@torch.no_grad()
def encode_audio(encoder: Clip4VLAAudioEncoder, chunks: torch.Tensor, mask: torch.Tensor,
                 batch_size: int = 64) -> np.ndarray:
    """``(N, D)`` unit-norm audio embeddings of chunked log-mels, in batches."""
    encoder.eval()
    parts = [encoder.encode((chunks[s:s + batch_size], mask[s:s + batch_size]))
             for s in range(0, len(chunks), batch_size)]
    return torch.cat(parts).numpy() if parts else np.zeros((0, encoder.dim), np.float32)


def train_audio_tower(train: WorldAudio, towers: Towers, settings: dict, cfg: AudioTrainConfig,
                      seed: int, cache_root, log=print) -> tuple[AudioTower, dict]:
    """Train an `AudioTower` on `train`'s videos; returns it (eval mode, borrowing bank set to
    the training videos that have sound) and a summary with the loss history."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    encoder = Clip4VLAAudioEncoder.from_vision(towers.vision, **settings)
    tower = AudioTower(encoder, towers.dim, cfg.text_map, cfg.audio_weight, cfg.missing)
    log_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    ds, rows = train.dataset, train.audio
    usable = np.array([o in ("ok", "silent") for o in rows.outcomes])
    captions: dict[int, list[str]] = {}
    for item, lang, text in ds.captions:
        if lang == "en" and usable[item]:
            captions.setdefault(item, []).append(text)
    items = np.array(sorted(captions))
    if len(items) < cfg.batch_size:
        raise ValueError(f"{len(items)} training videos with sound data; need at least a batch "
                         f"({cfg.batch_size})")
    all_texts = sorted({t for texts in captions.values() for t in texts})
    feats = text_features(all_texts, towers.text_en, cache_root)
    text_row = {t: i for i, t in enumerate(all_texts)}
    chunks, mask = _chunk_bank(encoder, rows)
    vision = torch.as_tensor(train.vision)

    params = [p for p in tower.parameters() if p.requires_grad] + [log_scale]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)
    scheduler = build_scheduler(optimizer, cfg.steps, cfg.warmup)
    history: list[dict] = []
    order, cursor, start = rng.permutation(items), 0, time.perf_counter()
    tower.train()
    for step in range(cfg.steps):
        if cursor + cfg.batch_size > len(order):
            order, cursor = rng.permutation(items), 0
        batch = order[cursor:cursor + cfg.batch_size]
        cursor += cfg.batch_size
        texts = [captions[int(i)][int(rng.integers(len(captions[int(i)])))] for i in batch]
        text = torch.as_tensor(feats[[text_row[t] for t in texts]])
        idx = torch.as_tensor(batch)
        audio = encoder(chunks[idx], mask[idx])
        masked = None
        if float(cfg.weights.get("audio_intra", 1.0)) != 0.0:
            masked = encoder(mask_spectrogram(chunks[idx], mask[idx], generator,
                                              cfg.mel_fraction, cfg.time_fraction), mask[idx])
        scale = log_scale.exp().clamp(max=100.0)
        out = clip4vla_loss(audio, masked, tower.audio_queries(text), vision[idx], scale,
                            cfg.weights)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            entry = {"step": step, "loss": round(float(out.loss.detach()), 4),
                     **{k: round(float(v.detach()), 4) for k, v in out.terms.items()}}
            history.append(entry)
            log(f"  step {step}: " + ", ".join(f"{k} {v}" for k, v in entry.items()
                                                  if k != "step"))
    tower.eval()
    has_sound = rows.has_sound()
    bank_audio = encode_audio(encoder, chunks[torch.as_tensor(has_sound)],
                              mask[torch.as_tensor(has_sound)])
    tower.set_bank(train.vision[has_sound], bank_audio)
    summary = {"seed": seed, "steps": cfg.steps, "train_videos": len(items),
               "bank_videos": int(has_sound.sum()), "outcomes": rows.counts(),
               "train_seconds": round(time.perf_counter() - start, 1),
               "logit_scale": round(float(log_scale.detach().exp()), 3), "history": history}
    return tower, summary
