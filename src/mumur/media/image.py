"""Read an image as one RGB frame (PIL), with a decompression-bomb guard."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image, ImageOps

from ..errors import MediaDecodeError
from .files import check_media_file

__all__ = ["DEFAULT_MAX_IMAGE_PIXELS", "read_image"]

# Images with more pixels than this are refused (decompression-bomb guard); PIL's own warning
# threshold. Pass `max_pixels` to `read_frames` / `read_image` to change it per call.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485


def read_image(path, max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """Read an image as RGB, EXIF orientation applied; animated GIFs give their first frame.

    Args:
        path: image file.
        max_pixels: refuse images with more pixels than this (decompression-bomb guard);
            None disables the check.

    Returns:
        An RGB `PIL.Image.Image` (fully loaded, file closed).
    """
    path = Path(path)
    if check_media_file(path) != "image":
        raise MediaDecodeError(path, "not an image file")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit replaces PIL's global one; PIL's hard error still applies above
            # twice its global limit, which we report as a decode error below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                w, h = img.size
                if max_pixels is not None and w * h > max_pixels:
                    raise MediaDecodeError(
                        path, f"image too large ({w}x{h} = {w * h} pixels > limit {max_pixels})")
                img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img)
                if "A" in img.getbands() or img.info.get("transparency") is not None:
                    # As transformers' convert_to_rgb: composite transparency onto white.
                    rgba = img.convert("RGBA")
                    img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)),
                                                rgba).convert("RGB")
                elif img.mode != "RGB":
                    img = img.convert("RGB")
                else:
                    img = img.copy()
                return img
    except MediaDecodeError:
        raise
    except Image.DecompressionBombError as e:
        raise MediaDecodeError(path, f"image too large: {e}") from None
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError) as e:
        raise MediaDecodeError(path, f"corrupt or unreadable image: {e}") from None
