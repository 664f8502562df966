"""What CLIP4VLA trains and evaluates on, computed once per world and cached in the feature
store: the frozen vision tower's global video embeddings y^g (mean of the normalised frame
features, `cached_frame_rows`), the frozen text towers' caption embeddings (`FeatureStore.
for_texts`) and the sound tracks' log-mels with their per-file outcome (`cached_audio_rows`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...data import load_benchmark
from ...data.audio_features import AudioRows, cached_audio_rows
from ...data.feature_store import FeatureStore, store_folder, text_tag
from ...data.features import cache_text_features, cached_frame_rows
from ...data.synthetic.parallel import sound_captions

__all__ = ["Towers", "WorldAudio", "load_towers", "text_features", "world_audio"]


@dataclass
class Towers:
    """The frozen towers: vision (frames), English text, multilingual text (or None)."""

    vision: torch.nn.Module
    text_en: torch.nn.Module
    text_ml: torch.nn.Module | None
    num_frames: int = 12

    @property
    def dim(self) -> int:
        return int(self.vision.dim)


def load_towers(vision: str = "world-clip", text_ml: str | None = "world-m-clip",
                num_frames: int = 12) -> Towers:
    """World-CLIP offline (or any CLIP checkpoint: the same code path) and its M-CLIP student."""
    from ...encoders import load_encoder

    return Towers(load_encoder(vision, modality="vision").eval(),
                  load_encoder(vision, modality="text").eval(),
                  load_encoder(text_ml, modality="text").eval() if text_ml else None, num_frames)


@dataclass
class WorldAudio:
    """The videos of one split of a world: dataset, global visual embeddings ``(N, D)`` (unit
    norm) and the cached sound (`AudioRows`)."""

    dataset: object
    vision: np.ndarray
    audio: AudioRows

    def sound_mask(self, language: str) -> np.ndarray:
        """Per caption of `language` (in `captions_for` order): True when it states a sound."""
        ds = self.dataset
        flags = []
        for item, lang, text in ds.captions:
            if lang != language:
                continue
            extra = ds.extra[item]
            scenes = [s["scene"] for s in extra["shots"]] if extra.get("shots") else [
                extra["scene"]]
            flags.append(any(text in sound_captions("video", s, language) for s in scenes))
        return np.asarray(flags, dtype=bool)


def world_audio(world: Path, split: str, towers: Towers, cache_root: Path,
                settings: dict) -> WorldAudio:
    """Load (computing on first use) one split's videos of a synthetic world.

    Args:
        world: the world folder (`manifest.json`).
        split: train / val / test.
        towers: the frozen towers.
        cache_root: feature stores root (``frame_features/``, ``text_features/``, ``audio/``).
        settings: the audio encoder's spectrogram settings.
    """
    ds = load_benchmark("synthetic", world, split=split, media_types=["video"])
    paths = [str(ds.media_path(i)) for i in range(len(ds))]
    vision = towers.vision

    @torch.no_grad()
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return vision(pixels).float()

    rows = cached_frame_rows(paths, encode, vision.identity, cache_root / "frame_features",
                             towers.num_frames, int(vision.image_size), num_workers=0,
                             progress=False)
    frames = torch.nn.functional.normalize(torch.as_tensor(rows["features"]), dim=-1)
    mask = torch.as_tensor(rows["mask"]).unsqueeze(-1).float()  # (N, T, 1)
    pooled = (frames * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # y^g: mean of frames
    glob = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return WorldAudio(ds, glob, cached_audio_rows(paths, cache_root / "audio", settings))


def text_features(texts: list[str], encoder, cache_root: Path) -> np.ndarray:
    """``(n, D)`` unit-norm caption embeddings of a frozen text tower, cached by identity."""
    folder = store_folder(cache_root / "text_features", text_tag(encoder.identity))
    with FeatureStore.for_texts(folder, encoder.identity) as store:
        feats = cache_text_features(store, texts, lambda batch: encoder.encode(batch))
        store.flush()
    return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
