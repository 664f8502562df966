"""Media decoding (PyAV / PIL, seek-based frame sampling, audio) and CLIP preprocessing."""

from __future__ import annotations

from .decode import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frames,
    MediaInfo,
    media_type_of,
    probe,
    read_audio,
    read_frames,
    read_image,
    sample_frame_times,
)
from .transforms import CLIP_MEAN, CLIP_STD, ClipPreprocess

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "ClipPreprocess",
    "Frames",
    "MediaInfo",
    "media_type_of",
    "probe",
    "read_audio",
    "read_frames",
    "read_image",
    "sample_frame_times",
]
