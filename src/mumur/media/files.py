"""What kind of media a file is (by extension, checked before decoding) and the records that
decoding returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..errors import MediaDecodeError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Frames",
    "MediaInfo",
    "check_media_file",
    "media_type_of",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi"})


@dataclass
class MediaInfo:
    """What `probe` learns about a file without decoding its frames.

    Attributes:
        path: the file.
        media_type: "video" or "image".
        duration: seconds (None for images or when the container does not say).
        fps: average frame rate (None for images or unknown).
        n_frames: frame count from the container (None when unknown; 1 for images).
        width, height: frame size in pixels (after EXIF orientation for images).
        has_audio: True when the file has an audio stream.
    """

    path: str
    media_type: str
    duration: float | None
    fps: float | None
    n_frames: int | None
    width: int
    height: int
    has_audio: bool


@dataclass
class Frames:
    """Frames sampled from one file.

    Attributes:
        frames: RGB PIL images, in time order.
        timestamps: seconds from the start of the video for each frame (`[0.0]` for an image).
        n_decoded: how many frames the decoder produced to get them (cost bookkeeping; 1 for an
            image). Much smaller than the video's frame count for long videos.
    """

    frames: list[Image.Image]
    timestamps: list[float]
    n_decoded: int = field(default=0)


def media_type_of(path) -> str | None:
    """Media type from the file extension.

    Args:
        path: file path.

    Returns:
        "image", "video", or None when the extension is not supported.
    """
    ext = Path(path).suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return None


def check_media_file(path: Path) -> str:
    """Media type of an existing, non-empty, supported file, else MediaDecodeError."""
    kind = media_type_of(path)
    if kind is None:
        raise MediaDecodeError(path, f"unsupported file type {path.suffix.lower() or '(none)'!r}")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise MediaDecodeError(path, "file not found") from None
    except OSError as e:
        raise MediaDecodeError(path, f"cannot stat file: {e}") from None
    if not path.is_file():
        raise MediaDecodeError(path, "not a regular file")
    if size == 0:
        raise MediaDecodeError(path, "empty file (0 bytes)")
    return kind
