"""Seek-based frame sampling from videos (PyAV).

To sample `num_frames` frames we never decode the whole file: for each target time we seek to the
keyframe at or before it and decode forward to the first frame whose presentation time is at or
after the target (targets close to the current decode position are reached by decoding forward
without a new seek). When seeking is broken for a file, frames are decoded sequentially from the
start, stopping at the last target.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import MediaDecodeError
from .files import Frames, MediaInfo

__all__ = ["STRATEGIES", "open_container", "probe_video", "read_video_frames",
           "sample_frame_times"]

# A target this far (seconds) past the last decoded frame is reached by a new seek rather than by
# decoding forward.
_SEEK_AHEAD_SECONDS = 1.0

STRATEGIES = ("uniform", "random")


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


def open_container(path: Path):
    import av

    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        raise MediaDecodeError(path, f"cannot open container: {e}") from None
    except (OSError, ValueError) as e:
        raise MediaDecodeError(path, f"cannot open container: {e}") from None


def _video_stream(path: Path, container, max_pixels: int | None = None):
    """The first video stream; with `max_pixels`, refused when its declared frame size is larger,
    and its decoder told to refuse larger frames (a stream whose frames claim another size than
    the container does)."""
    if not container.streams.video:
        raise MediaDecodeError(path, "no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # a codec FFmpeg does not know (e.g. a damaged codec tag)
        raise MediaDecodeError(path, "unknown or unsupported video codec")
    if max_pixels is not None:
        w, h = stream.codec_context.width, stream.codec_context.height
        if w * h > max_pixels:
            raise MediaDecodeError(
                path, f"video frames too large ({w}x{h} = {w * h} pixels > limit {max_pixels})")
        # FFmpeg's own guard, checked on every frame buffer the decoder allocates.
        stream.codec_context.options = {"max_pixels": str(max(max_pixels, w * h, 1))}
    return stream


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


def probe_video(path: Path) -> MediaInfo:
    """Metadata of a video file (duration, fps, frame count, size, audio) without decoding."""
    import av

    container = open_container(path)
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


def read_video_frames(path: Path, num_frames: int, strategy: str, rng, thread_type: str | None,
                      resize_shorter: int | None, max_pixels: int | None = None) -> Frames:
    """Sample `num_frames` frames of a video file by seeking (arguments as `read_frames`)."""
    import av

    container = open_container(path)
    try:
        stream = _video_stream(path, container, max_pixels)
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
            container = open_container(path)
            stream = _video_stream(path, container, max_pixels)
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
