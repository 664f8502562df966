"""What a retrieval model is made of: `ModelConfig` (head + encoder specs), the media side of a
batch (`MediaFeatures`), the branch rule (MuMUR §3.2.5) and the head registry lookup."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..config import config_from_dict, config_to_dict
from ..errors import ConfigError
from ..heads import HeadConfig, RetrievalHead
from ..heads.base import check_branch
from ..registry import HEADS

__all__ = ["CONFIG_FILE", "ENCODER_SLOTS", "FORMAT", "FORMAT_VERSION", "WEIGHTS_FILE",
           "MediaFeatures", "ModelConfig", "branch_for_language", "head_class", "list_models"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "mumur-model"
FORMAT_VERSION = 1
ENCODER_SLOTS = {"vision": "vision", "text_en": "text", "text_ml": "text"}  # slot -> modality
FRAME_SAMPLING = ("uniform", "random")


@dataclass(frozen=True)
class ModelConfig:
    """What a `RetrievalModel` is made of.

    Args:
        head: registered head name (`list_models()`).
        head_config: the head's frozen config dataclass.
        vision: vision encoder spec (name or path for `mumur.load_encoder`), or None.
        text_en: English text encoder spec, or None.
        text_ml: multilingual text encoder spec, or None (equal specs share one encoder).
        num_frames: frames sampled per video (MuMUR §4.3: 16 for MSRVTT/MSVD).
        frame_sampling: training-time sampling, "uniform" | "random" (§5.5.6); inference is
            always uniform.
        image_size: input side when there is no vision encoder to say it.
    """

    head: str = "mumur-dcm"
    head_config: HeadConfig | None = None
    vision: str | None = None
    text_en: str | None = None
    text_ml: str | None = None
    num_frames: int = 16
    frame_sampling: str = "uniform"
    image_size: int = 224

    def __post_init__(self):
        if self.frame_sampling not in FRAME_SAMPLING:
            raise ConfigError(f"frame_sampling={self.frame_sampling!r}; expected one of "
                              f"{FRAME_SAMPLING}")
        if self.num_frames <= 0:
            raise ConfigError(f"num_frames must be positive, got {self.num_frames}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (head config nested)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], context: str = "model config") -> ModelConfig:
        """Inverse of `to_dict`.

        Raises:
            ConfigError: unknown head name, unknown keys or invalid values.
        """
        data = dict(data)
        head_cls = head_class(data.get("head", cls.head))
        head_cfg = config_from_dict(head_cls.config_class, data.pop("head_config", None) or {},
                                    context=f"{context}: head_config")
        return config_from_dict(cls, {**data, "head_config": head_cfg}, context=context)


@dataclass
class MediaFeatures:
    """Query-independent media side of a batch of files.

    Attributes:
        frames_ctx: (B, T, d) contextualised frame states (what the index stores).
        mask: (B, T) bool, True = valid frame (images: one).
        timestamps: (B, T) float32 seconds of each frame (0 for padding and images).
    """

    frames_ctx: torch.Tensor
    mask: torch.Tensor
    timestamps: torch.Tensor


def branch_for_language(language: str | None, branches: Sequence[str]) -> str:
    """The text branch a query in `language` goes through (MuMUR §3.2.5); evaluation and search
    both call this, so reported English figures describe English search.

    English (any ``en`` tag) uses the English branch when it is among `branches`; every other
    language, and an unknown one (None), uses the multilingual branch, which handles English
    too; a model with one branch uses it for everything.

    Args:
        language: BCP-47-style code ("en", "de", "zh-Hant", ...) or None when unknown.
        branches: the branches that can serve queries (`RetrievalModel.query_branches()`).

    Raises:
        ValueError: `branches` is empty.
    """
    branches = [check_branch(b) for b in branches]
    if not branches:
        raise ValueError("no text branch to encode queries with (none has a trained encoder)")
    english = language is not None and language.replace("_", "-").split("-")[0].lower() == "en"
    if english and "en" in branches:
        return "en"
    return "ml" if "ml" in branches else branches[0]


def head_class(name: str) -> type[RetrievalHead]:
    try:
        return HEADS.get(name)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None


def list_models() -> list[str]:
    """Names accepted by `create_model` (registered method heads)."""
    return HEADS.names()


