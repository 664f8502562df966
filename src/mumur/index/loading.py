"""Resolving a model source to an `Embedder`: a trained mumur model folder, or any CLIP
checkpoint as a zero-shot `RetrievalModel` (`clip_retrieval_model`); `load_embedder` is what
`mumur index --model` and `mumur search` call."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import ConfigError, ModelLoadError
from .embedder import Embedder, ModelEmbedder

__all__ = ["clip_retrieval_model", "is_mumur_model_dir", "load_embedder"]


def clip_retrieval_model(source: str, text_model: str | None = None, num_frames: int = 12,
                         vision=None):
    """A CLIP checkpoint as a `RetrievalModel` with a `meanP` head (CLIP4Clip meanP, zero-shot).

    Frames go through the vision tower; the score is the cosine of the query with the normalised
    mean of the normalised frames. The projections are identity (the dims match) and the inputs
    normalised, so the scores are exactly CLIP's cosines. English queries go through the
    checkpoint's own text tower (``en``); a paired multilingual encoder whose space matches the
    vision tower (`text_model`, e.g. M-CLIP) becomes the ``ml`` branch. The logit scale, used only
    for the best-timestamp softmax, is CLIP's learned 100.

    Args:
        source: hub id, local transformers folder or `open_clip:<arch>[:<pretrained>]`.
        text_model: paired text encoder, or None.
        num_frames: frames sampled per video.
        vision: the vision encoder to use instead of loading `source`'s (a `RecordedEncoder`
            for text queries only).

    Raises:
        ConfigError: an encoder's output space does not match the vision tower's.
    """
    from ..encoders import load_encoder
    from ..model import create_model

    vision = vision if vision is not None else load_encoder(source, modality="vision")
    towers = {"text_en": load_encoder(source, modality="text"),
              "text_ml": load_encoder(text_model, modality="text") if text_model else None}
    for tower in filter(None, towers.values()):
        if tower.dim != vision.dim:
            raise ConfigError(f"vision encoder {vision.identity} ({vision.dim}-d) and text "
                              f"encoder {tower.identity} ({tower.dim}-d) do not share an "
                              "embedding space")
    branches = tuple(slot[5:] for slot, tower in towers.items() if tower is not None)
    # Every projection square (an absent tower's too), so all are identity and the head, hence
    # the index identity, is the same on every load.
    return create_model("meanP", vision=vision, **towers, embed_dim=vision.dim,
                        text_dim_en=vision.dim, text_dim_ml=vision.dim,
                        num_frames=num_frames, normalize_inputs=True, temporal="none",
                        logit_scale_init=math.log(100.0), train_branches=branches).eval()


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


def load_embedder(source: str, text_model: str | None = None, num_frames: int = 12,
                  vision_record: dict | None = None) -> Embedder:
    """Resolve `mumur index --model NAME_OR_PATH` to an embedder.

    Args:
        source: a trained mumur model folder, or a CLIP checkpoint (hub id, local transformers
            folder, or `open_clip:<arch>[:<pretrained>]`).
        text_model: optional paired multilingual text encoder for CLIP checkpoints (e.g. an
            M-CLIP folder) whose output space matches the vision tower.
        num_frames: frames per video for CLIP checkpoints (a mumur model carries its own).
        vision_record: `ModelEmbedder.vision_record()` as an index stored it: the vision tower is
            then not loaded (a `RecordedEncoder` stands in), for an embedder that only encodes
            text queries and scores stored arrays.

    Returns:
        A `ModelEmbedder`.
    """
    if os.path.isabs(source) and not os.path.exists(source):
        # A recorded local folder that was moved or deleted (not a hub id to look up).
        raise ModelLoadError(f"model folder {source} does not exist (moved or deleted?); "
                             "restore it, or build a new index with --model")
    vision = None
    if vision_record is not None:
        from ..encoders.recorded import RecordedEncoder

        vision = RecordedEncoder(vision_record)
    if is_mumur_model_dir(source):
        from ..model import load_model

        return ModelEmbedder(load_model(source, vision=vision),
                             source=str(Path(source).resolve()))
    if os.path.isdir(source):
        source = str(Path(source).resolve())
    model = clip_retrieval_model(source, text_model, num_frames, vision=vision)
    return ModelEmbedder(model, source=source, text_source=text_model, kind="clip-meanpool")
