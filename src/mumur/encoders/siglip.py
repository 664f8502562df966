"""SigLIP, multilingual SigLIP and SigLIP 2 towers through transformers.

Three checkpoint layouts share this module:

- ``model_type`` ``siglip`` (``SiglipModel``): SigLIP (English, ``SiglipTokenizer``), multilingual
  SigLIP (``google/siglip-*-i18n``, multilingual SentencePiece) and the fixed-resolution SigLIP 2
  checkpoints (``google/siglip2-base-patch16-256``: SigLIP's architecture with the Gemma tokenizer);
- ``model_type`` ``siglip2`` (``Siglip2Model``): SigLIP 2 NaFlex, whose vision tower takes
  patch sequences with their grid shape;
- the single towers (``siglip_vision_model``, ``siglip_text_model`` and the ``siglip2_*`` ones).

Vision ``forward`` equals ``get_image_features(...).pooler_output`` (the attention-pooling head's
output); text ``forward`` equals ``get_text_features(**tokenizer(texts, padding="max_length",
max_length=64, truncation=True))`` (the model cards' usage: SigLIP was trained on max-length-padded
text and pools the last position). SigLIP is trained with a sigmoid loss: the probability that an
image and a text match is ``sigmoid(cos * exp(logit_scale) + logit_bias)``. Both scalars are read
from the checkpoint and kept on each tower (``logit_scale``, ``logit_bias``, ``match_probability``).

Deviation (NaFlex): frames are squashed to a square ``S x S`` (``S = patch * sqrt(num_patches)``)
(bilinear) and cut into the full ``S/patch x S/patch`` grid, which is what ``Siglip2ImageProcessor``
gives for a square image; for other aspect ratios the processor keeps the aspect ratio instead.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mumur.encoders.base import quiet_transformers, read_json_file, resolve_file, write_encoder_file
from mumur.encoders.text.base import TextEncoder, load_tokenizer
from mumur.encoders.vision import VisionEncoder
from mumur.errors import EncoderLoadError

__all__ = [
    "SIGLIP_MODEL_TYPES",
    "SiglipTextEncoder",
    "SiglipVisionEncoder",
    "load_siglip_text",
    "load_siglip_vision",
    "siglip_match_probability",
]

#: ``config.json`` ``model_type`` values this module loads.
SIGLIP_MODEL_TYPES = (
    "siglip", "siglip_vision_model", "siglip_text_model",
    "siglip2", "siglip2_vision_model", "siglip2_text_model",
)
SIGLIP_MEAN = SIGLIP_STD = (0.5, 0.5, 0.5)
_SCALARS_FILE = "siglip_logits.json"


def siglip_match_probability(cosine: torch.Tensor, logit_scale: float, logit_bias: float):
    """SigLIP's match probability ``sigmoid(cos * exp(logit_scale) + logit_bias)`` (Zhai et al.
    2023, eq. 1: the sigmoid loss's logit ``t * x.y + b`` with ``t = exp(t')``).

    Args:
        cosine: cosine similarities of normalised embeddings, any shape.
        logit_scale: the checkpoint's ``logit_scale`` (log of the temperature ``t``).
        logit_bias: the checkpoint's ``logit_bias`` ``b``.

    Returns:
        Probabilities, same shape.
    """
    return torch.sigmoid(cosine * math.exp(logit_scale) + logit_bias)


def _family(model_type: str) -> str:
    return "siglip2" if model_type.startswith("siglip2") else "siglip"


def _classes(family: str, tower: str):
    import transformers

    prefix = {"siglip": "Siglip", "siglip2": "Siglip2"}[family]
    return (getattr(transformers, f"{prefix}Config"),
            getattr(transformers, f"{prefix}{tower.title()}Config"),
            getattr(transformers, f"{prefix}{tower.title()}Model"))


def _read_logits(name_or_path: str) -> tuple[float | None, float | None]:
    """``logit_scale`` / ``logit_bias`` of a whole-model checkpoint, or of a saved tower's
    ``siglip_logits.json``; (None, None) when the folder holds a bare tower."""
    saved = read_json_file(name_or_path, _SCALARS_FILE, required=False)
    if saved is not None:
        return saved.get("logit_scale"), saved.get("logit_bias")
    from safetensors import safe_open

    weights = resolve_file(name_or_path, "model.safetensors", required=False)
    if weights is None:  # a sharded checkpoint: the index names the shard holding the scalars
        index = read_json_file(name_or_path, "model.safetensors.index.json", required=False)
        shard = (index or {}).get("weight_map", {}).get("logit_scale")
        weights = resolve_file(name_or_path, shard, required=False) if shard else None
    if weights is None:
        return None, None
    with safe_open(weights, framework="pt") as fh:
        keys = set(fh.keys())
        if not {"logit_scale", "logit_bias"} <= keys:
            return None, None
        return (float(fh.get_tensor("logit_scale").reshape(-1)[0]),
                float(fh.get_tensor("logit_bias").reshape(-1)[0]))


def load_siglip_tower(name_or_path: str, tower: str) -> tuple[nn.Module, str]:
    """Load one tower of a SigLIP / SigLIP 2 checkpoint.

    Args:
        name_or_path: hub id or local folder (``model_type`` in ``SIGLIP_MODEL_TYPES``).
        tower: ``"vision"`` or ``"text"``.

    Returns:
        ``(float32 tower model in eval mode, family)`` with family ``siglip`` or ``siglip2``.

    Raises:
        EncoderLoadError: another model type, the other tower's folder, or missing weights.
    """
    model_type = str(read_json_file(name_or_path, "config.json").get("model_type"))
    if model_type not in SIGLIP_MODEL_TYPES:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r} as a SigLIP {tower} tower: "
                               f"model_type {model_type!r}")
    family = _family(model_type)
    full_config, tower_config, tower_model = _classes(family, tower)
    if model_type == family:
        config = getattr(full_config.from_pretrained(name_or_path), f"{tower}_config")
    elif model_type == f"{family}_{tower}_model":
        config = tower_config.from_pretrained(name_or_path)
    else:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r} for modality {tower!r}: "
                               f"the folder holds a {model_type} only")
    with quiet_transformers():
        model, info = tower_model.from_pretrained(name_or_path, config=config,
                                                  output_loading_info=True)
    if info["missing_keys"] or info["mismatched_keys"]:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r}: checkpoint lacks {tower} "
                               f"weights {sorted(info['missing_keys'])[:5]} "
                               f"{list(info['mismatched_keys'])[:5]}")
    return model.float().eval(), family


class _SiglipTower:
    """Mixin: the sigmoid-loss scalars and a transformers-folder ``save``."""

    logit_scale: float | None = None
    logit_bias: float | None = None

    def _keep_logits(self, logit_scale, logit_bias) -> None:
        self.logit_scale = None if logit_scale is None else float(logit_scale)
        self.logit_bias = None if logit_bias is None else float(logit_bias)

    def match_probability(self, cosine: torch.Tensor) -> torch.Tensor:
        """SigLIP's probability that a text and an image match, from their cosine
        (``siglip_match_probability`` with this checkpoint's scalars).

        Raises:
            EncoderLoadError: the checkpoint carried no logit scale and bias (a bare tower).
        """
        if self.logit_scale is None or self.logit_bias is None:
            raise EncoderLoadError(f"encoder {self.source!r} has no logit_scale / logit_bias "
                                   "(saved from a bare tower)")
        return siglip_match_probability(cosine, self.logit_scale, self.logit_bias)

    def _save_tower(self, folder: Path) -> None:
        self.model.save_pretrained(folder)
        with open(folder / _SCALARS_FILE, "w", encoding="utf-8") as fh:
            json.dump({"logit_scale": self.logit_scale, "logit_bias": self.logit_bias}, fh)


class SiglipVisionEncoder(_SiglipTower, VisionEncoder):
    """SigLIP / SigLIP 2 vision tower: ``forward`` is the attention-pooled, head-projected image
    embedding (``get_image_features(...).pooler_output``).

    Args:
        model: ``SiglipVisionModel`` or ``Siglip2VisionModel``.
        source: name or path it came from.
        image_size: square input side ``S`` (NaFlex: ``patch * sqrt(num_patches)``).
        logit_scale, logit_bias: the checkpoint's sigmoid-loss scalars (None for a bare tower).
    """

    kind = "siglip-vision"
    resize = "squash"  # SiglipImageProcessor resizes to S x S without cropping

    def __init__(self, model: nn.Module, source: str, image_size: int,
                 logit_scale: float | None = None, logit_bias: float | None = None):
        super().__init__(source, model.config.hidden_size, image_size, SIGLIP_MEAN, SIGLIP_STD)
        self.model = model
        self.naflex = hasattr(model.config, "num_patches")
        if self.naflex:
            self.resample = "bilinear"  # Siglip2ImageProcessor's resampling
        self._keep_logits(logit_scale, logit_bias)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Args: pixel_values ``(n, 3, S, S)``. Returns: ``(n, dim)`` un-normalised embeddings."""
        if not self.naflex:
            return self.model(pixel_values=pixel_values).pooler_output  # (n, dim)
        n, c, s, _ = pixel_values.shape
        p = self.model.config.patch_size
        g = s // p
        # Siglip2ImageProcessor's convert_image_to_patches: (C, g, p, g, p) -> (g*g, p*p*C)
        patches = pixel_values.reshape(n, c, g, p, g, p).permute(0, 2, 4, 3, 5, 1)
        patches = patches.reshape(n, g * g, p * p * c)  # (n, g*g, p*p*C)
        mask = torch.ones(n, g * g, dtype=torch.long, device=pixel_values.device)
        shapes = torch.tensor([[g, g]] * n, dtype=torch.long, device=pixel_values.device)
        return self.model(pixel_values=patches, pixel_attention_mask=mask,
                          spatial_shapes=shapes).pooler_output  # (n, dim)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tower (config + safetensors), its logit scalars and ``mumur_encoder.json``."""
        folder = Path(path)
        self._save_tower(folder)
        return write_encoder_file(folder, self.kind, source=self.source,
                                  image_size=self.image_size)


def load_siglip_vision(name_or_path: str, source: str | None = None) -> SiglipVisionEncoder:
    """Load the vision tower of a SigLIP / mSigLIP / SigLIP 2 checkpoint.

    Args:
        name_or_path: hub id or local folder.
        source: name recorded in the identity (defaults to ``name_or_path``).

    Returns:
        A ``SiglipVisionEncoder`` in eval mode.
    """
    model, _family_name = load_siglip_tower(name_or_path, "vision")
    cfg = model.config
    if hasattr(cfg, "num_patches"):
        side = math.isqrt(int(cfg.num_patches))
        size = side * int(cfg.patch_size)
    else:
        size = int(cfg.image_size)
    return SiglipVisionEncoder(model, source or name_or_path, size, *_read_logits(name_or_path))


class SiglipTextEncoder(_SiglipTower, TextEncoder):
    """SigLIP / SigLIP 2 text tower: texts padded to ``max_length`` (64) as in training; the last
    position's state through the head (``get_text_features(...).pooler_output``).

    Args:
        model: ``SiglipTextModel`` or ``Siglip2TextModel``.
        tokenizer: the tokenizer from the same folder (SigLIP SentencePiece, or Gemma for SigLIP 2).
        source: name or path it came from.
        logit_scale, logit_bias: the checkpoint's sigmoid-loss scalars.
    """

    kind = "siglip-text"

    def __init__(self, model: nn.Module, tokenizer: Any, source: str,
                 logit_scale: float | None = None, logit_bias: float | None = None):
        cfg = model.config
        dim = int(getattr(cfg, "projection_size", None) or cfg.hidden_size)
        super().__init__(source, dim, tokenizer, int(cfg.max_position_embeddings))
        self.model = model
        self._keep_logits(logit_scale, logit_bias)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Max-length padding (SigLIP pools the last position, padding included)."""
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        return {k: v.to(self.device) for k, v in enc.items()
                if k in ("input_ids", "attention_mask")}

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: ``(n, dim)`` un-normalised embeddings."""
        return self.model(**self.tokenize(texts)).pooler_output  # (n, dim)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tower, its tokenizer, its logit scalars and ``mumur_encoder.json``."""
        folder = Path(path)
        self._save_tower(folder)
        self._save_tokenizer(folder)
        return write_encoder_file(folder, self.kind, source=self.source)


def load_siglip_text(name_or_path: str, source: str | None = None) -> SiglipTextEncoder:
    """Load the text tower (and its tokenizer) of a SigLIP / mSigLIP / SigLIP 2 checkpoint.

    Args:
        name_or_path: hub id or local folder.
        source: name recorded in the identity (defaults to ``name_or_path``).

    Returns:
        A ``SiglipTextEncoder`` in eval mode.
    """
    model, _family_name = load_siglip_tower(name_or_path, "text")
    tokenizer = load_tokenizer(name_or_path)
    return SiglipTextEncoder(model, tokenizer, source or name_or_path,
                             *_read_logits(name_or_path)).eval()
