"""Decode a file's first audio stream to mono float32 (PyAV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import MediaDecodeError
from .files import check_media_file
from .video import open_container

__all__ = ["read_audio"]


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
    kind = check_media_file(path)
    if kind == "image":
        return np.zeros(0, dtype=np.float32)
    container = open_container(path)
    try:
        if not container.streams.audio:
            return np.zeros(0, dtype=np.float32)
        stream = container.streams.audio[0]
        if stream.codec_context is None:  # a codec FFmpeg does not know
            raise MediaDecodeError(path, "unknown or unsupported audio codec")
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
