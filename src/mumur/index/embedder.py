"""The model-facing side of the index: an `Embedder` turns frames into what the index stores and
queries into vectors that score against it.

The index never touches a model directly; it talks to this small protocol, so a trained mumur
`RetrievalModel` (DCM fast path) and any CLIP checkpoint (frames mean-pooled) look the same to the
store, the builder and the search code. Arrays cross this boundary as numpy float32 (faiss style):
shapes and dtypes are checked here, torch stays inside the adapters.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import ConfigError, ModelLoadError

__all__ = [
    "ClipEmbedder",
    "Embedder",
    "FrameStates",
    "ModelEmbedder",
    "embed_image_queries",
    "is_mumur_model_dir",
    "load_embedder",
]


@dataclass
class FrameStates:
    """Query-independent arrays the index stores for a batch of media items.

    Attributes:
        pooled: (B, d) float32, L2-normalised; stage-1 search vector.
        state: (B, T, Ds) float32; per-frame arrays the exact scorer reads (the DCM fast-path
            state, all keys concatenated along the last axis in `Embedder.state_layout` order).
    """

    pooled: np.ndarray
    state: np.ndarray


@runtime_checkable
class Embedder(Protocol):
    """What the index needs from a model.

    Attributes:
        identity: stable string naming the weights; stored by the index, checked on every open.
        source: the name or path `load_embedder` reloads this embedder from.
        dim: query / pooled vector size d.
        state_dim: per-frame state size Ds.
        state_layout: list of (key, width) pairs that make up the Ds axis.
        num_frames: frames sampled per video.
        frame_sampling: "uniform" (always for indexing).
        image_size: side of the square pixel input.
    """

    identity: str
    source: str
    dim: int
    state_dim: int
    state_layout: list[tuple[str, int]]
    num_frames: int
    frame_sampling: str
    image_size: int

    def preprocess(self, images: list) -> object:
        """List of PIL images -> torch (n, 3, S, S) pixel tensor."""

    def encode_frames(self, pixel_values) -> object:
        """Torch (n, 3, S, S) -> torch (n, Dv) raw frame features."""

    def frame_states(self, features: np.ndarray, mask: np.ndarray) -> FrameStates:
        """(B, T, Dv) features and (B, T) mask -> `FrameStates`."""

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Texts in any language -> (N, d) float32, L2-normalised."""

    def score(
        self, queries: np.ndarray, state: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, d) queries x (B, T, Ds) states -> (scores (N, B), attention (N, B, T))."""


def _check_2d(name: str, array: np.ndarray, width: int | None = None) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        raise ValueError(f"{name} must have shape (n, {width}), got {array.shape}")
    return array


def embed_image_queries(embedder: Embedder, paths: list[str]) -> np.ndarray:
    """Embed images as queries through the vision side: one frame each, pooled vector.

    Args:
        embedder: the index's embedder.
        paths: image files (a video works too: its sampled frames are pooled as at index time).

    Returns:
        (N, d) float32 L2-normalised pooled vectors, comparable by cosine with the index's
        stage-1 vectors.
    """
    import torch

    from ..media.decode import read_frames

    rows = []
    for path in paths:
        frames = read_frames(path, embedder.num_frames, strategy="uniform")  # MediaDecodeError
        with torch.no_grad():
            pixels = embedder.preprocess(frames.frames)  # (T, 3, S, S)
            features = embedder.encode_frames(pixels).float().numpy()  # (T, Dv)
        mask = np.ones((1, features.shape[0]), dtype=bool)
        rows.append(embedder.frame_states(features[None], mask).pooled[0])
    return np.stack(rows).astype(np.float32)


def _l2n(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ModelEmbedder:
    """A trained mumur `RetrievalModel` seen through the `Embedder` protocol.

    Stores `head.contextualize` -> `head.index_state(..., branch)` per frame and `head.pooled` for
    stage 1; scores with `head.score_index_state`, which equals `head.similarity` (MuMUR eq. 1-5)
    exactly in eval mode. Queries go through the multilingual branch when the model has one (any
    language), otherwise the English branch.

    Args:
        model: a `mumur.model.RetrievalModel` with a vision encoder and at least one text encoder.
        source: folder the model was loaded from (recorded in the index).
        branch: "en" or "ml"; default "ml" if `model.text_ml` exists else "en".
    """

    def __init__(self, model, source: str, branch: str | None = None):
        import torch

        if getattr(model, "vision", None) is None:
            raise ModelLoadError(f"model at {source} has no vision encoder; cannot index media")
        if branch is None:
            branch = "ml" if getattr(model, "text_ml", None) is not None else "en"
        self.model = model.eval()
        self.head = model.head
        self.branch = branch
        self.source = str(source)
        self.identity = f"mumur:{model.identity()}:{branch}"
        self.num_frames = int(model.config.num_frames)
        self.frame_sampling = "uniform"
        self.image_size = int(getattr(model.vision, "image_size", model.config.image_size))
        # Probe the state layout once with a one-frame dummy through the head.
        dv = int(model.vision.dim)
        with torch.no_grad():
            ctx = self.head.contextualize(torch.zeros(1, 1, dv), torch.ones(1, 1, dtype=torch.bool))
            pooled = self.head.pooled(ctx, torch.ones(1, 1, dtype=torch.bool))
            state = self.head.index_state(ctx, torch.ones(1, 1, dtype=torch.bool), branch)
        self.dim = int(pooled.shape[-1])
        self.state_layout = [(key, int(state[key].shape[-1])) for key in sorted(state)]
        self.state_dim = sum(width for _, width in self.state_layout)

    def preprocess(self, images):
        return self.model.vision.preprocess(images)

    def encode_frames(self, pixel_values):
        import torch

        with torch.no_grad():
            return self.model.encode_frames(pixel_values)  # (n, Dv)

    def frame_states(self, features: np.ndarray, mask: np.ndarray) -> FrameStates:
        import torch

        with torch.no_grad():
            f = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))  # (B, T, Dv)
            m = torch.from_numpy(np.asarray(mask, dtype=bool))  # (B, T)
            ctx = self.head.contextualize(f, m)  # (B, T, d)
            pooled = torch.nn.functional.normalize(self.head.pooled(ctx, m, self.branch), dim=-1)
            state = self.head.index_state(ctx, m, self.branch)
            packed = torch.cat([state[key] for key, _ in self.state_layout], dim=-1)  # (B,T,Ds)
        return FrameStates(pooled.float().numpy(), packed.float().numpy())

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            q = self.model.encode_text(list(texts), branch=self.branch)  # (N, d)
        return _check_2d("queries", q.float().numpy(), self.dim)

    def _unpack(self, state):
        import torch

        parts, start = {}, 0
        for key, width in self.state_layout:
            parts[key] = state[..., start : start + width]
            start += width
        return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in
                parts.items()}

    def score(self, queries, state, mask):
        import torch

        with torch.no_grad():
            q = torch.from_numpy(_check_2d("queries", queries, self.dim))  # (N, d)
            m = torch.from_numpy(np.asarray(mask, dtype=bool))  # (B, T)
            scores, attention = self.head.score_index_state(q, self._unpack(state), m, self.branch)
        return scores.float().numpy(), attention.float().numpy()


class ClipEmbedder:
    """Any CLIP checkpoint (or a vision + text encoder pair) as an `Embedder`.

    Frames are encoded by the vision tower and L2-normalised; the pooled vector is the normalised
    mean of the valid frames (CLIP4Clip meanP, eq. 5 of CLIP4Clip, no parameters). The per-frame
    state is the normalised frame features themselves. Since mean pooling has no attention, the
    "attention" returned by `score` (used only to pick the best timestamp) is a softmax over the
    per-frame cosines at temperature 0.01 (CLIP's logit scale); it does not change the score.

    Args:
        vision: a vision encoder from `mumur.encoders.load_encoder(..., "vision")`.
        text: a text encoder whose space matches the vision tower (the CLIP text tower, or a
            distilled multilingual tower such as M-CLIP).
        source: the name/path to reload (`load_embedder(source, text_model=...)`).
        num_frames: frames sampled per video.
    """

    temperature = 0.01

    def __init__(self, vision, text, source: str, num_frames: int = 12,
                 text_source: str | None = None):
        if vision.dim != text.dim:
            raise ConfigError(
                f"vision encoder {vision.identity} ({vision.dim}-d) and text encoder "
                f"{text.identity} ({text.dim}-d) do not share an embedding space"
            )
        self.vision, self.text = vision.eval(), text.eval()
        self.source = str(source)
        self.text_source = text_source
        self.identity = f"clip-meanpool:{vision.identity}+{text.identity}:{num_frames}"
        self.dim = self.state_dim = int(vision.dim)
        self.state_layout = [("frames", self.dim)]
        self.num_frames = int(num_frames)
        self.frame_sampling = "uniform"
        self.image_size = int(vision.image_size)

    def preprocess(self, images):
        return self.vision.preprocess(images)

    def encode_frames(self, pixel_values):
        import torch

        with torch.no_grad():
            return self.vision(pixel_values)  # (n, Dv)

    def frame_states(self, features, mask):
        frames = _l2n(np.asarray(features, dtype=np.float32))  # (B, T, D)
        m = np.asarray(mask, dtype=bool)[..., None]  # (B, T, 1)
        frames = np.where(m, frames, 0.0).astype(np.float32)
        mean = frames.sum(1) / np.maximum(m.sum(1), 1)  # (B, D)
        return FrameStates(_l2n(mean).astype(np.float32), frames)

    def encode_queries(self, texts):
        q = self.text.encode(list(texts))  # (N, D), normalised
        return _check_2d("queries", q.float().numpy(), self.dim)

    def score(self, queries, state, mask):
        q = _check_2d("queries", queries, self.dim)
        state = np.asarray(state, dtype=np.float32)  # (B, T, D)
        m = np.asarray(mask, dtype=bool)  # (B, T)
        per_frame = np.einsum("nd,btd->nbt", q, state)  # (N, B, T)
        mean = _l2n(state.sum(1) / np.maximum(m.sum(1, keepdims=True), 1))  # (B, D)
        scores = q @ mean.T  # (N, B)
        logits = np.where(m[None], per_frame / self.temperature, -np.inf)
        logits -= logits.max(-1, keepdims=True)
        attention = np.exp(logits)
        attention /= attention.sum(-1, keepdims=True)
        return scores.astype(np.float32), attention.astype(np.float32)


def is_mumur_model_dir(path: str | os.PathLike) -> bool:
    """True when `path` is a folder written by `RetrievalModel.save` (config.json with a head)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == "mumur-model"


def load_embedder(source: str, text_model: str | None = None, num_frames: int = 12) -> Embedder:
    """Resolve `mumur index --model NAME_OR_PATH` to an embedder.

    Args:
        source: a trained mumur model folder, or a CLIP checkpoint (hub id, local transformers
            folder, or `open_clip:<arch>[:<pretrained>]`).
        text_model: optional paired text encoder for CLIP checkpoints (e.g. an M-CLIP folder)
            whose output space matches the vision tower; default: the checkpoint's own text tower.
        num_frames: frames per video for CLIP checkpoints (a mumur model carries its own).

    Returns:
        A `ModelEmbedder` or `ClipEmbedder`.
    """
    if is_mumur_model_dir(source):
        from ..model import load_model

        return ModelEmbedder(load_model(source), source=str(Path(source).resolve()))
    from ..encoders import load_encoder

    if os.path.isdir(source):
        source = str(Path(source).resolve())
    vision = load_encoder(source, modality="vision")
    text = load_encoder(text_model or source, modality="text")
    return ClipEmbedder(vision, text, source=source, num_frames=num_frames, text_source=text_model)
