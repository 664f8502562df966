"""Vision encoders: CLIP vision tower (transformers), open_clip visual tower, small ViT from scratch."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mumur.encoders.base import (
    Encoder,
    OpenClipTower,
    create_open_clip,
    load_clip_tower,
    read_json_file,
    write_encoder_file,
)
from mumur.errors import EncoderLoadError
from mumur.media.transforms import CLIP_MEAN, CLIP_STD, ClipPreprocess

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ClipVisionEncoder",
    "OpenClipVisionEncoder",
    "VisionEncoder",
    "build_vit_small_scratch",
    "load_clip_vision",
    "load_open_clip_vision",
]


class VisionEncoder(Encoder):
    """Base of image encoders: ``preprocess(images) -> (n,3,S,S)``, ``forward(pixels) -> (n,dim)``.

    Args:
        source: name or path the weights came from.
        dim: output dimension.
        image_size: square input side ``S``.
        mean: per-channel normalisation mean.
        std: per-channel normalisation std.
        trainable: whether gradients through ``forward`` make sense.
    """

    modality = "vision"
    #: How an image becomes ``S x S`` (``mumur.media.transforms.RESIZE_MODES``): CLIP crops,
    #: SigLIP squashes.
    resize = "crop"
    resample = "bicubic"

    def __init__(
        self,
        source: str,
        dim: int,
        image_size: int,
        mean: Sequence[float] = CLIP_MEAN,
        std: Sequence[float] = CLIP_STD,
        trainable: bool = True,
    ):
        super().__init__(source, dim, trainable)
        self.image_size = int(image_size)
        self.image_mean = tuple(float(m) for m in mean)
        self.image_std = tuple(float(s) for s in std)
        self._preprocessor = None

    @property
    def preprocessor(self) -> ClipPreprocess:
        """The picklable transform behind ``preprocess`` (decode workers run it)."""
        if self._preprocessor is None:
            self._preprocessor = ClipPreprocess(self.image_size, self.image_mean, self.image_std,
                                                resize=self.resize, resample=self.resample)
        return self._preprocessor

    def preprocess(self, images: Sequence[Any]) -> torch.Tensor:
        """Resize (bicubic; ``resize`` says crop or squash) and normalise PIL images.

        Args:
            images: list of PIL images (any mode; converted to RGB by the transform).

        Returns:
            ``torch.FloatTensor (n, 3, S, S)`` on the CPU.
        """
        return self.preprocessor(list(images))

    def _inputs(self, batch: Any) -> torch.Tensor:
        pixel_values = batch if isinstance(batch, torch.Tensor) else self.preprocess(batch)
        dtype = next(self.parameters()).dtype
        return pixel_values.to(self.device, dtype=dtype)  # (n, 3, S, S)


class ClipVisionEncoder(VisionEncoder):
    """CLIP vision tower + ``visual_projection`` (``transformers.CLIPVisionModelWithProjection``).

    ``forward`` equals ``CLIPModel.get_image_features(pixel_values).pooler_output``: the
    post-layernormed class token projected by ``visual_projection``.

    Args:
        model: the tower with its projection.
        source: name or path it came from.
        image_size, mean, std: preprocessing settings (from ``preprocessor_config.json``).
    """

    kind = "clip-vision"

    def __init__(
        self, model: nn.Module, source: str, image_size: int, mean=CLIP_MEAN, std=CLIP_STD
    ):
        super().__init__(source, model.config.projection_dim, image_size, mean, std, trainable=True)
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Args: pixel_values ``(n, 3, S, S)``. Returns: ``(n, dim)`` un-normalised embeddings."""
        return self.model(pixel_values=pixel_values).image_embeds  # (n, dim)

    def save(self, path: str | os.PathLike) -> Path:
        """Write config.json + model.safetensors + preprocessor_config.json + mumur_encoder.json.

        Args:
            path: target folder.

        Returns:
            The folder.
        """
        from transformers import CLIPImageProcessor

        folder = Path(path)
        self.model.save_pretrained(folder)
        size = self.image_size
        CLIPImageProcessor(
            size={"shortest_edge": size},
            crop_size={"height": size, "width": size},
            image_mean=list(self.image_mean),
            image_std=list(self.image_std),
        ).save_pretrained(folder)
        return write_encoder_file(folder, self.kind, source=self.source)


def _processor_settings(name_or_path: str, default_size: int) -> tuple[int, tuple, tuple]:
    """Read crop size / mean / std from ``preprocessor_config.json`` (CLIP defaults if absent)."""
    cfg = read_json_file(name_or_path, "preprocessor_config.json", required=False) or {}
    crop = cfg.get("crop_size", default_size)
    if isinstance(crop, dict):
        crop = crop.get("height", crop.get("shortest_edge", default_size))
    mean = tuple(cfg.get("image_mean") or CLIP_MEAN)
    std = tuple(cfg.get("image_std") or CLIP_STD)
    return int(crop), mean, std


def load_clip_vision(name_or_path: str, source: str | None = None) -> ClipVisionEncoder:
    """Load the vision tower of a CLIP checkpoint (``CLIPModel`` or ``CLIPVisionModelWithProjection``).

    Args:
        name_or_path: hub id or local folder; ``config.json`` ``model_type`` is ``clip`` or
            ``clip_vision_model``.
        source: name recorded in the identity (defaults to ``name_or_path``).

    Returns:
        A ``ClipVisionEncoder`` in eval mode.
    """
    model = load_clip_tower(name_or_path, "vision")
    size, mean, std = _processor_settings(name_or_path, model.config.image_size)
    encoder = ClipVisionEncoder(model, source or name_or_path, size, mean, std)
    return encoder.eval()


def build_vit_small_scratch(
    image_size: int = 112,
    patch_size: int = 16,
    hidden_size: int = 192,
    num_layers: int = 4,
    num_heads: int = 3,
    mlp_ratio: int = 4,
    projection_dim: int | None = None,
    seed: int | None = None,
) -> ClipVisionEncoder:
    """A small randomly initialised ViT (CLIP vision architecture) to train from scratch.

    Args:
        image_size: square input side (a multiple of ``patch_size``).
        patch_size: patch side.
        hidden_size: transformer width.
        num_layers: transformer depth.
        num_heads: attention heads.
        mlp_ratio: MLP width / hidden size.
        projection_dim: output dimension (defaults to ``hidden_size``).
        seed: seed for the random initialisation (None: the global torch RNG).

    Returns:
        A trainable ``ClipVisionEncoder`` named ``vit-small-scratch``.
    """
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    if image_size % patch_size:
        raise EncoderLoadError(
            f"cannot build vit-small-scratch: image_size {image_size} is not a multiple of "
            f"patch_size {patch_size}"
        )
    config = CLIPVisionConfig(
        image_size=image_size,
        patch_size=patch_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * mlp_ratio,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        projection_dim=projection_dim or hidden_size,
    )
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = CLIPVisionModelWithProjection(config)
    return ClipVisionEncoder(model, "vit-small-scratch", image_size)


class OpenClipVisionEncoder(OpenClipTower, VisionEncoder):
    """open_clip visual tower: ``forward`` is ``model.encode_image`` (un-normalised).

    Args:
        model: the open_clip CLIP model.
        model_name: the name it was created from.
        source: the name recorded in the identity.
    """

    kind = "open-clip"

    def __init__(self, open_clip, model: nn.Module, model_name: str, source: str):
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", model.visual.image_size)
        size = size[0] if isinstance(size, (tuple, list)) else size
        dim = int(model.visual.output_dim)
        super().__init__(
            source, dim, int(size), cfg.get("mean", CLIP_MEAN), cfg.get("std", CLIP_STD)
        )
        self._keep_open_clip(open_clip, model, model_name)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Args: pixel_values ``(n, 3, S, S)``. Returns: ``(n, dim)`` un-normalised embeddings."""
        return self.model.encode_image(pixel_values)  # (n, dim)


def load_open_clip_vision(name: str, source: str | None = None) -> OpenClipVisionEncoder:
    """Load an open_clip visual tower from ``open_clip:<arch>[:<pretrained>]`` or a local-dir folder.

    Args:
        name: the encoder name or folder.
        source: name recorded in the identity.

    Returns:
        An ``OpenClipVisionEncoder`` in eval mode.
    """
    return OpenClipVisionEncoder(*create_open_clip(name), source or name).eval()
