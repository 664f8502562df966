"""Text-to-video ranks with and without the CLIP4VLA audio term on test galleries.

Systems (each a key prefix of the returned arrays):

* ``visual``: world-CLIP meanP, cos(x, y^g) (CLIP4Clip zero-shot; the audio tower plays no part);
* ``audio-<policy>``: cos(x, y^g) + w cos(M x, z^g) (`mumur.model.audio.fuse_scores`), with the
  videos lacking sound handled by ``<policy>`` in `MISSING_POLICIES`;
* ``w=1-borrow`` (only when the tower's weight is not 1): the paper's plain sum, w = 1, with the
  borrowing rule, from the same tower. In the synthetic world every
  video has a track, so the policies differ on the digitally silent ones: ``encode`` scores their
  silence, ``borrow`` (the paper's rule) gives them the audio of the visually nearest training
  video, ``none`` drops their audio term.

English queries go through the vision tower's own text tower; the other languages through the
multilingual student (`world-m-clip`, distilled into the same space: MCLIP4VLA), and through the
same text map.
"""

from __future__ import annotations

import numpy as np
import torch

from ...model.audio import MISSING_POLICIES, AudioTower, fuse_scores
from .data import Towers, WorldAudio, text_features
from .run import encode_audio

__all__ = ["SYSTEMS", "audio_outcomes", "ranks_of", "select_audio_weight"]

SYSTEMS = ("visual",) + tuple(f"audio-{p}" for p in MISSING_POLICIES)


def ranks_of(scores: np.ndarray, own: np.ndarray) -> np.ndarray:
    """1-based rank of each query's own item: ``1 + #items scoring strictly higher``.

    Args:
        scores: ``(Q, N)``.
        own: ``(Q,)`` item index per query.
    """
    own_score = scores[np.arange(len(own)), own][:, None]
    return 1 + (scores > own_score).sum(axis=1)


def audio_outcomes(tower: AudioTower, towers: Towers, worlds: list[WorldAudio],
                   cache_root) -> dict[str, np.ndarray]:
    """Per-caption ranks of every system on every world's videos (queries of all worlds in
    world order), keyed ``<system>/<lang>/rank``, plus ``<lang>/sound`` (the caption states a
    sound), ``<system>/<lang>/source`` (the own video's audio: 0 own, 1 borrowed, 2 none),
    ``n_items`` per world and ``outcomes/<name>`` (videos per sound outcome)."""
    parts: dict[str, list[np.ndarray]] = {}
    counts: dict[str, int] = {}
    for world in worlds:
        ds, rows = world.dataset, world.audio
        for name, n in rows.counts().items():
            counts[name] = counts.get(name, 0) + n
        chunks, mask = tower.encoder.chunks(rows.logmels)
        audio = encode_audio(tower.encoder, chunks, mask)
        fused = {p: tower.video_audio(world.vision, audio, rows.outcomes, p)
                 for p in MISSING_POLICIES}
        parts.setdefault("n_items", []).append(np.array([len(ds)]))
        for lang in ds.languages:
            texts, own = ds.captions_for(lang)
            encoder = towers.text_en if lang == "en" or towers.text_ml is None else towers.text_ml
            query = text_features(list(texts), encoder, cache_root)
            with torch.no_grad():
                mapped = tower.audio_queries(torch.as_tensor(query)).numpy()
            own = np.asarray(own)
            parts.setdefault(f"{lang}/sound", []).append(world.sound_mask(lang))
            visual, _ = fuse_scores(query, mapped, world.vision, None)
            parts.setdefault(f"visual/{lang}/rank", []).append(ranks_of(visual, own))
            for policy, (emb, source) in fused.items():
                total, _ = fuse_scores(query, mapped, world.vision, emb, tower.weight)
                parts.setdefault(f"audio-{policy}/{lang}/rank", []).append(ranks_of(total, own))
                parts.setdefault(f"audio-{policy}/{lang}/source", []).append(source[own])
            if tower.weight != 1.0:
                total, _ = fuse_scores(query, mapped, world.vision, fused["borrow"][0], 1.0)
                parts.setdefault(f"w=1-borrow/{lang}/rank", []).append(ranks_of(total, own))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out.update({f"outcomes/{k}": np.array([v]) for k, v in counts.items()})
    return out


def select_audio_weight(tower: AudioTower, towers: Towers, val: WorldAudio, cache_root,
                        grid: list[float]) -> tuple[float, dict[str, float]]:
    """The audio weight w of `grid` with the best English t2v R@1 on a validation split (all its
    queries, the tower's missing-audio policy); ties go to the smaller weight. Returns
    ``(w, {str(w): R@1})``; the tower is not changed."""
    chunks, mask = tower.encoder.chunks(val.audio.logmels)
    audio, _ = tower.video_audio(val.vision, encode_audio(tower.encoder, chunks, mask),
                                 val.audio.outcomes)
    texts, own = val.dataset.captions_for("en")
    query = text_features(list(texts), towers.text_en, cache_root)
    with torch.no_grad():
        mapped = tower.audio_queries(torch.as_tensor(query)).numpy()
    scores = {}
    for w in sorted(grid):
        total, _ = fuse_scores(query, mapped, val.vision, audio, w)
        scores[f"{w:g}"] = round(100.0 * float(np.mean(ranks_of(total, np.asarray(own)) == 1)), 3)
    best = max(sorted(grid), key=lambda w: (scores[f"{w:g}"], -w))
    return float(best), scores
