"""A small convolutional frame encoder trained from scratch (the offline default's visual tower).

Why not only the ViT: on a 2-core CPU the offline demo can afford a few hundred optimiser steps,
and a ViT trained from scratch learns colour, shape and position far more slowly per step than a
ConvNet (no locality prior). Motion is read by the temporal head from *where* the object is in each
frame, so the encoder keeps position: CoordConv input channels (Liu et al. 2018) and a flattened
(not average-pooled) final feature map.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mumur.encoders.base import write_encoder_file
from mumur.encoders.vision import VisionEncoder
from mumur.errors import EncoderLoadError
from mumur.media.transforms import CLIP_MEAN, CLIP_STD

__all__ = ["ConvNetVisionEncoder", "build_convnet_scratch", "load_convnet"]

_CONFIG = "convnet_config.json"
_WEIGHTS = "model.safetensors"


class ConvNetVisionEncoder(VisionEncoder):
    """Stages of [3x3 conv stride 2 -> GroupNorm -> GELU -> 3x3 conv -> GroupNorm -> GELU] over
    the image plus two coordinate channels, then flatten + linear projection.

    Args:
        image_size: square input side (divisible by 2 ** len(channels)).
        channels: output channels of each stage (each halves the resolution).
        dim: output dimension.
        source: name recorded in the identity.
    """

    kind = "convnet-vision"

    def __init__(self, image_size: int = 64, channels: tuple[int, ...] = (32, 64, 96, 128),
                 dim: int = 256, source: str = "cnn-small-scratch"):
        super().__init__(source, dim, image_size, CLIP_MEAN, CLIP_STD, trainable=True)
        if image_size % (2 ** len(channels)):
            raise EncoderLoadError(f"cannot build {source}: image_size {image_size} is not "
                                   f"divisible by 2**{len(channels)}")
        self.channels = tuple(int(c) for c in channels)
        layers, c_in = [], 3 + 2  # RGB + (x, y) coordinates
        for c in self.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(8, c), nn.GELU(),
                       nn.Conv2d(c, c, 3, padding=1), nn.GroupNorm(8, c), nn.GELU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(self.channels)
        self.proj = nn.Linear(c_in * side * side, dim)
        ramp = torch.linspace(-1.0, 1.0, image_size)
        coords = torch.stack([ramp[None, :].expand(image_size, -1),
                              ramp[:, None].expand(-1, image_size)])  # (2, S, S)
        self.register_buffer("coords", coords, persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Args: pixel_values ``(n, 3, S, S)``. Returns: ``(n, dim)`` un-normalised embeddings."""
        n = pixel_values.shape[0]
        x = torch.cat([pixel_values, self.coords.expand(n, -1, -1, -1)], dim=1)  # (n, 5, S, S)
        return self.proj(self.features(x).flatten(1))  # (n, dim)

    def save(self, path: str | os.PathLike) -> Path:
        """Write convnet_config.json + model.safetensors + mumur_encoder.json."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / _CONFIG).write_text(json.dumps(
            {"image_size": self.image_size, "channels": list(self.channels), "dim": self.dim}))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()},
                  str(folder / _WEIGHTS))
        return write_encoder_file(folder, self.kind, source=self.source)


def build_convnet_scratch(image_size: int = 64, channels=(32, 64, 96, 128), dim: int = 256,
                          seed: int | None = None) -> ConvNetVisionEncoder:
    """A randomly initialised `ConvNetVisionEncoder` (seeded without touching the global RNG)."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return ConvNetVisionEncoder(image_size, tuple(channels), dim)


def load_convnet(folder: str | os.PathLike, source: str | None = None) -> ConvNetVisionEncoder:
    """Load a folder written by `ConvNetVisionEncoder.save`."""
    folder = Path(folder)
    try:
        cfg = json.loads((folder / _CONFIG).read_text())
        state = load_file(str(folder / _WEIGHTS))
    except (OSError, ValueError) as exc:
        raise EncoderLoadError(f"cannot load encoder {str(folder)!r}: {exc}") from exc
    encoder = ConvNetVisionEncoder(cfg["image_size"], tuple(cfg["channels"]), cfg["dim"],
                                   source=source or "cnn-small-scratch")
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise EncoderLoadError(f"cannot load encoder {str(folder)!r}: weights do not fit "
                               f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return encoder
