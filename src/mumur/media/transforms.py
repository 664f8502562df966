"""CLIP image preprocessing: shorter side to S (bicubic), centre crop S x S, scale, normalise.

Reproduces `transformers.CLIPImageProcessor` (PIL backend) defaults step by step: PIL bicubic
resize of the uint8 image with the longer side `int(S * long / short)`, crop offset
`(size - S) // 2`, `x / 255`, then `(x - mean) / std`. SigLIP's processor
(`SiglipImageProcessor`) instead resizes the whole image to S x S (bicubic, aspect ratio not
kept): `resize="squash"`; SigLIP 2 NaFlex's (`Siglip2ImageProcessor`) resamples bilinearly:
`resample="bilinear"`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["CLIP_MEAN", "CLIP_STD", "RESIZE_MODES", "ClipPreprocess", "center_crop",
           "resize_shorter_side"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
#: "crop": shorter side to S, centre crop (CLIP); "squash": whole image to S x S (SigLIP).
RESIZE_MODES = ("crop", "squash")
_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size` (bicubic), keeping the aspect ratio.

    Args:
        image: RGB PIL image.
        size: target shorter side in pixels.

    Returns:
        The resized image (the input itself when already that size).
    """
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)  # truncation, as transformers' get_resize_output_image_size
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    if (new_w, new_h) == (w, h):
        return image
    return image.resize((new_w, new_h), resample=Image.BICUBIC)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Centre `size x size` crop; images smaller than `size` are zero-padded (as transformers).

    Args:
        image: PIL image.
        size: crop side in pixels.

    Returns:
        The cropped image.
    """
    w, h = image.size
    if w < size or h < size:
        canvas = Image.new(image.mode, (max(w, size), max(h, size)))
        canvas.paste(image, ((max(w, size) - w + 1) // 2, (max(h, size) - h + 1) // 2))
        image, (w, h) = canvas, canvas.size
    top, left = (h - size) // 2, (w - size) // 2
    if (w, h) == (size, size):
        return image
    return image.crop((left, top, left + size, top + size))


class ClipPreprocess:
    """Callable turning a list of images into CLIP pixel values `(n, 3, S, S)` float32.

    Args:
        image_size: S, the output side.
        mean: per-channel mean (CLIP's by default).
        std: per-channel standard deviation (CLIP's by default).
        resize: one of `RESIZE_MODES`.
        resample: "bicubic" (CLIP, SigLIP) or "bilinear" (SigLIP 2 NaFlex), for "squash".

    Call with a list of RGB `PIL.Image.Image` or `(H, W, 3)` uint8 numpy arrays (the fast path for
    decoded video frames; no PIL round trip through a file), or a mix.
    """

    def __init__(self, image_size: int = 224, mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD, resize: str = "crop",
                 resample: str = "bicubic"):
        if resize not in RESIZE_MODES or resample not in _RESAMPLE:
            raise ValueError(f"resize must be one of {RESIZE_MODES} and resample one of "
                             f"{tuple(_RESAMPLE)}, got {resize!r}, {resample!r}")
        self.resample = resample
        self.image_size = int(image_size)
        self.resize = resize
        self.mean = np.asarray(mean, dtype=np.float32)  # (3,)
        self.std = np.asarray(std, dtype=np.float32)  # (3,)

    def __repr__(self) -> str:
        return f"ClipPreprocess(image_size={self.image_size}, resize={self.resize!r})"

    def crop_uint8(self, image) -> np.ndarray:
        """Resize + centre-crop (or squash) one image; returns `(S, S, 3)` uint8."""
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"expected (H, W, 3) uint8 array, got {image.dtype} "
                                 f"{image.shape}")
            image = Image.fromarray(image)
        elif not isinstance(image, Image.Image):
            raise TypeError(f"expected PIL image or uint8 array, got {type(image).__name__}")
        if image.mode != "RGB":
            image = image.convert("RGB")
        size = self.image_size
        if self.resize == "squash":
            image = image if image.size == (size, size) else image.resize(
                (size, size), resample=_RESAMPLE[self.resample])
        else:
            image = center_crop(resize_shorter_side(image, size), size)
        return np.asarray(image, dtype=np.uint8)

    def normalize(self, crops: np.ndarray) -> torch.Tensor:
        """`(n, S, S, 3)` uint8 -> normalised `(n, 3, S, S)` float32 tensor."""
        x = crops.astype(np.float32) * np.float32(1 / 255)  # (n, S, S, 3)
        x = (x - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # (n, 3, S, S)

    def __call__(self, images) -> torch.Tensor:
        """Preprocess a list of images.

        Args:
            images: list of RGB PIL images or `(H, W, 3)` uint8 arrays (a single one is accepted).

        Returns:
            `torch.FloatTensor (n, 3, S, S)`.
        """
        if isinstance(images, (Image.Image, np.ndarray)) and not (
                isinstance(images, np.ndarray) and images.ndim == 4):
            images = [images]
        if len(images) == 0:
            return torch.zeros(0, 3, self.image_size, self.image_size)
        crops = np.stack([self.crop_uint8(im) for im in images])  # (n, S, S, 3)
        return self.normalize(crops)
