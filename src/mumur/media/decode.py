"""Decode media files: seek-based frame sampling for videos, single frames for images, audio.

`read_frames` is the one entry for frames: a video gives `num_frames` frames sampled by seeking
(`mumur.media.video`), an image its one frame (`mumur.media.image`); `read_audio` decodes sound
(`mumur.media.audio`) and `probe` reads metadata without decoding frames.

Every failure (missing, empty, corrupt, truncated or unsupported file) raises
`MediaDecodeError(path, reason)`.
"""

from __future__ import annotations

from pathlib import Path

from .audio import read_audio
from .files import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Frames,
    MediaInfo,
    check_media_file,
    media_type_of,
)
from .image import DEFAULT_MAX_IMAGE_PIXELS, read_image
from .video import probe_video, read_video_frames, sample_frame_times

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Frames",
    "MediaInfo",
    "media_type_of",
    "probe",
    "read_audio",
    "read_frames",
    "read_image",
    "sample_frame_times",
]


def probe(path) -> MediaInfo:
    """Read a file's metadata (type, duration, fps, frame count, size, audio) without decoding.

    Args:
        path: image or video file.

    Returns:
        `MediaInfo`.
    """
    path = Path(path)
    if check_media_file(path) == "image":
        img = read_image(path)
        return MediaInfo(str(path), "image", None, None, 1, img.width, img.height, False)
    return probe_video(path)


def read_frames(path, num_frames: int, strategy: str = "uniform", rng=None, *,
                max_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS, thread_type: str | None = None,
                resize_shorter: int | None = None) -> Frames:
    """Sample `num_frames` RGB frames from a video (seek-based), or the one frame of an image.

    For each target time of `sample_frame_times` the reader seeks to the keyframe at or before it
    and decodes forward to the first frame at or after it, so the cost grows with the number of
    frames asked for, not with the video's length. When the video has fewer decodable frames than
    requested, the nearest frames repeat (several targets map to the same frame, and targets past a
    truncated end repeat the last decodable frame). When seeking fails for a stream, the frames are
    decoded sequentially from the start, stopping at the last target.

    Args:
        path: image or video file.
        num_frames: frames to sample from a video (images always give one).
        strategy: "uniform" (segment centres) or "random" (one draw per segment).
        rng: `numpy.random.Generator` or int seed for `random`.
        max_pixels: decompression-bomb limit in pixels per frame, for images and videos (None: no
            limit).
        thread_type: PyAV decoder threading ("SLICE", "FRAME", "AUTO"; None: PyAV's default).
        resize_shorter: if set, video frames whose shorter side is larger are downscaled in the
            decoder (swscale bicubic) to this shorter side before conversion to PIL. Faster, but
            not bit-identical to resizing the full frame with PIL.

    Returns:
        `Frames` (RGB PIL images, timestamps in seconds, decoded-frame count).
    """
    path = Path(path)
    kind = check_media_file(path)
    if kind == "image":
        return Frames([read_image(path, max_pixels)], [0.0], 1)
    return read_video_frames(path, num_frames, strategy, rng, thread_type, resize_shorter,
                             max_pixels)
