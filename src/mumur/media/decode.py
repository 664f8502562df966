"""Decode media files: seek-based frame sampling for videos, single frames for images, audio.

Videos are read with PyAV. To sample `num_frames` frames we never decode the whole file: for each
target time we seek to the keyframe at or before it and decode forward to the first frame whose
presentation time is at or after the target (targets close to the current decode position are
reached by decoding forward without a new seek). Images are read with PIL as one frame.

Every failure (missing, empty, corrupt, truncated or unsupported file) raises
`MediaDecodeError(path, reason)`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import MediaDecodeError

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

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".webm", ".mov", ".avi"})

# Images with more pixels than this are refused (decompression-bomb guard); PIL's own warning
# threshold. Pass `max_pixels` to `read_frames` / `read_image` to change it per call.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485

# A target this far (seconds) past the last decoded frame is reached by a new seek rather than by
# decoding forward.
_SEEK_AHEAD_SECONDS = 1.0

STRATEGIES = ("uniform", "random")


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


def sample_frame_times(duration: float, num_frames: int, strategy: str = "uniform",
                       rng=None) -> list[float]:
    """Target times for `num_frames` frames over `[0, duration)`.

    The video is cut into `num_frames` equal segments (MuMUR 5.5.6, as CLIP4Clip / X-Pool):
    `uniform` takes each segment's centre, `random` one uniform draw inside each segment.

    Args:
        duration: video length in seconds (>= 0).
        num_frames: number of frames (>= 1).
        strategy: "uniform" or "random".
        rng: `numpy.random.Generator`, an int seed, or None (fresh entropy) for `random`.

    Returns:
        `num_frames` non-decreasing times in seconds.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown frame sampling strategy {strategy!r}; use one of {STRATEGIES}")
    duration = max(float(duration), 0.0)
    seg = duration / num_frames
    if strategy == "uniform":
        offsets = np.full(num_frames, 0.5)
    else:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        offsets = gen.random(num_frames)
    return [float((i + offsets[i]) * seg) for i in range(num_frames)]


def _check_file(path: Path) -> str:
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


# ----------------------------------------------------------------------------------------- images

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
    if _check_file(path) != "image":
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


# ----------------------------------------------------------------------------------------- videos

def _open(path: Path):
    import av

    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise MediaDecodeError(path, f"cannot open container: {e}") from None
    except (OSError, ValueError) as e:
        raise MediaDecodeError(path, f"cannot open container: {e}") from None


def _video_stream(path: Path, container):
    if not container.streams.video:
        raise MediaDecodeError(path, "no video stream")
    return container.streams.video[0]


def _stream_timing(container, stream) -> tuple[float, float | None, float | None, int | None]:
    """(start_time_s, duration_s, fps, n_frames) from container metadata (no decoding)."""
    tb = stream.time_base or Fraction(1, 1_000_000)
    start = float(stream.start_time * tb) if stream.start_time is not None else 0.0
    duration = None
    if stream.duration is not None and stream.duration > 0:
        duration = float(stream.duration * tb)
    elif container.duration is not None and container.duration > 0:
        # container.duration is in AV_TIME_BASE (microseconds).
        duration = container.duration / 1_000_000
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else None
    n_frames = int(stream.frames) if stream.frames else None
    if duration is None and n_frames and fps:
        duration = n_frames / fps
    return start, duration, fps, n_frames


def _duration_by_demux(container, stream) -> float | None:
    """Duration from packet timestamps: demuxing reads packets without decoding any frame."""
    tb = stream.time_base
    first = last = None
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        end = packet.pts + (packet.duration or 0)
        first = packet.pts if first is None else min(first, packet.pts)
        last = end if last is None else max(last, end)
    if first is None or tb is None:
        return None
    return float((last - first) * tb)


def probe(path) -> MediaInfo:
    """Read a file's metadata (type, duration, fps, frame count, size, audio) without decoding.

    Args:
        path: image or video file.

    Returns:
        `MediaInfo`.
    """
    path = Path(path)
    kind = _check_file(path)
    if kind == "image":
        img = read_image(path)
        return MediaInfo(str(path), "image", None, None, 1, img.width, img.height, False)
    import av

    container = _open(path)
    try:
        stream = _video_stream(path, container)
        _, duration, fps, n_frames = _stream_timing(container, stream)
        return MediaInfo(str(path), "video", duration, fps, n_frames,
                         stream.codec_context.width, stream.codec_context.height,
                         bool(container.streams.audio))
    except av.error.FFmpegError as e:
        raise MediaDecodeError(path, f"cannot read metadata: {e}") from None
    finally:
        container.close()


class _Reader:
    """Decodes frames of one stream forward, counting them, with optional seeks."""

    def __init__(self, path: Path, container, stream, start: float, fps: float | None,
                 thread_type: str | None):
        self.path, self.container, self.stream = path, container, stream
        self.start, self.fps = start, fps
        self.tb = stream.time_base
        if thread_type is not None:
            stream.thread_type = thread_type
        self.n_decoded = 0
        self._iter: Iterator | None = None
        self.last = None  # (time_s, frame) of the last decoded frame
        self._index = 0  # frames decoded since the last (re)start, for pts-less streams

    def restart(self, seek_to: float | None) -> None:
        """Start decoding from the keyframe at or before `seek_to` (None: from where we are)."""
        if seek_to is not None:
            offset = math.floor((seek_to + self.start) / self.tb)
            self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)
            self._index = 0
        self._iter = self.container.decode(self.stream)

    def next(self):
        """Next (time_s, frame) or None at end of stream."""
        if self._iter is None:
            self.restart(None)
        try:
            frame = next(self._iter)
        except StopIteration:
            return None
        self.n_decoded += 1
        if frame.pts is not None and self.tb is not None:
            t = float(frame.pts * self.tb) - self.start
        elif self.last is not None and self.fps:
            t = self.last[0] + 1.0 / self.fps
        else:
            t = self._index / self.fps if self.fps else float(self._index)
        self._index += 1
        self.last = (t, frame)
        return self.last

    def forward_to(self, target: float, eps: float):
        """Decode forward to the first frame with time >= target - eps; the last frame at EOF."""
        if self.last is not None and self.last[0] >= target - eps:
            return self.last
        while True:
            item = self.next()
            if item is None:
                return self.last
            if item[0] >= target - eps:
                return item


def _to_rgb(frame, resize_shorter: int | None):
    """PyAV frame -> RGB PIL image, optionally downscaled in swscale (bicubic) first."""
    w, h = frame.width, frame.height
    if resize_shorter is not None and min(w, h) > resize_shorter:
        scale = resize_shorter / min(w, h)
        # Keep the shorter side exactly `resize_shorter`, as the CLIP resize does.
        nw = resize_shorter if w <= h else int(w * scale)
        nh = resize_shorter if h < w else int(h * scale)
        return frame.to_image(width=nw, height=nh, interpolation="BICUBIC")
    return frame.to_image()


def _sample_video(path: Path, num_frames: int, strategy: str, rng, thread_type: str | None,
                  resize_shorter: int | None) -> Frames:
    import av

    container = _open(path)
    try:
        stream = _video_stream(path, container)
        start, duration, fps, _ = _stream_timing(container, stream)
        if duration is None:
            duration = _duration_by_demux(container, stream)
            container.seek(0)
        if not duration:
            # Unknown length (e.g. a single-frame stream): sample at t=0 and repeat.
            duration = 0.0
        targets = sample_frame_times(duration, num_frames, strategy, rng)
        eps = 1e-6  # float rounding of pts * time_base
        try:
            picked, n_decoded = _pick_by_seeking(path, container, stream, start, fps, targets,
                                                 eps, thread_type)
        except (av.error.FFmpegError, _SeekFailed):
            # Seeking is broken for this file: decode from the start, only up to the last target.
            container.close()
            container = _open(path)
            stream = _video_stream(path, container)
            picked, n_decoded = _pick_sequential(path, container, stream, start, fps, targets,
                                                 eps, thread_type)
        images = [_to_rgb(frame, resize_shorter) for _, frame in picked]
        return Frames(images, [max(t, 0.0) for t, _ in picked], n_decoded)
    except av.error.FFmpegError as e:
        raise MediaDecodeError(path, f"decoding failed: {e}") from None
    finally:
        container.close()


class _SeekFailed(Exception):
    """A seek landed past its target: fall back to sequential decoding."""


def _pick_by_seeking(path, container, stream, start, fps, targets, eps, thread_type):
    reader = _Reader(path, container, stream, start, fps, thread_type)
    frame_dur = 1.0 / fps if fps else 0.04
    picked = []
    for target in targets:
        last_t = reader.last[0] if reader.last is not None else None
        if last_t is None or target - last_t > max(_SEEK_AHEAD_SECONDS, 2 * frame_dur):
            reader.restart(target)
            reader.last = None
            item = reader.next()
            # Nothing after the seek, no timestamps to tell where it landed, or a landing past
            # the target (a backward seek must land at or before it): the container's index is
            # unreliable, so decode sequentially instead.
            if item is None or item[1].pts is None:
                raise _SeekFailed()
            if item[0] > target + max(0.5, 2 * frame_dur) and target > eps:
                raise _SeekFailed()
        item = reader.forward_to(target, eps)
        if item is None:
            break
        picked.append(item)
    return _complete(path, picked, len(targets)), reader.n_decoded


def _pick_sequential(path, container, stream, start, fps, targets, eps, thread_type):
    reader = _Reader(path, container, stream, start, fps, thread_type)
    picked = []
    for target in targets:
        item = reader.forward_to(target, eps)
        if item is None:
            break
        picked.append(item)
    return _complete(path, picked, len(targets)), reader.n_decoded


def _complete(path, picked, num_frames):
    """Pad with repeats of the last decodable frame when the stream ends early."""
    if not picked:
        raise MediaDecodeError(path, "no decodable video frames")
    # Targets beyond the last decodable frame (truncated stream or over-long metadata) repeat the
    # nearest decoded frame, the last one, so the caller always gets `num_frames` frames.
    return picked + [picked[-1]] * (num_frames - len(picked))


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
        max_pixels: decompression-bomb limit for images (None: no limit).
        thread_type: PyAV decoder threading ("SLICE", "FRAME", "AUTO"; None: PyAV's default).
        resize_shorter: if set, video frames whose shorter side is larger are downscaled in the
            decoder (swscale bicubic) to this shorter side before conversion to PIL. Faster, but
            not bit-identical to resizing the full frame with PIL.

    Returns:
        `Frames` (RGB PIL images, timestamps in seconds, decoded-frame count).
    """
    path = Path(path)
    kind = _check_file(path)
    if kind == "image":
        return Frames([read_image(path, max_pixels)], [0.0], 1)
    return _sample_video(path, num_frames, strategy, rng, thread_type, resize_shorter)


# ------------------------------------------------------------------------------------------ audio

def read_audio(path, sample_rate: int = 16000, max_seconds: float | None = None) -> np.ndarray:
    """Decode the first audio stream, resampled to mono float32 at `sample_rate`.

    Args:
        path: video (or audio-bearing) file; images give an empty array.
        sample_rate: output rate in Hz.
        max_seconds: stop after this many seconds (None: the whole stream).

    Returns:
        `(n_samples,)` float32 array in [-1, 1]; empty when the file has no audio track.
    """
    import av

    path = Path(path)
    kind = _check_file(path)
    if kind == "image":
        return np.zeros(0, dtype=np.float32)
    container = _open(path)
    try:
        if not container.streams.audio:
            return np.zeros(0, dtype=np.float32)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        limit = None if max_seconds is None else round(max_seconds * sample_rate)
        chunks: list[np.ndarray] = []
        total = 0
        for frame in container.decode(stream):
            frame.pts = None  # let the resampler number samples itself (avoids pts gaps errors)
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)  # (n,) packed mono float32
                chunks.append(chunk)
                total += chunk.size
            if limit is not None and total >= limit:
                break
        else:
            for out in resampler.resample(None):  # flush the resampler's delay line
                chunks.append(out.to_ndarray().reshape(-1))
        audio = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(
            0, dtype=np.float32)
        return audio[:limit] if limit is not None else audio
    except av.error.FFmpegError as e:
        raise MediaDecodeError(path, f"audio decoding failed: {e}") from None
    finally:
        container.close()
