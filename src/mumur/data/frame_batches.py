"""The engine-independent steps of frame extraction: decode one media source into normalised
pixels (`decode_media`, the reader), collate decoded files (`collate_decoded`), and run the
encoder on a collated batch (`encode_decoded`, the mapper) into a `FeatureBatch`. The local engine
(`mumur.data.features.extract_frame_features`, DataLoader workers) and the Ray engine
(`mumur.data.ray_engine`, Ray Data tasks and actors) both use these, so they compute the same
features.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

import numpy as np
import torch

from ..errors import MediaDecodeError
from ..media.decode import read_frames
from ..media.transforms import ClipPreprocess
from .feature_store import as_float32_array
from .webdataset import TarMember, member_file

__all__ = ["EncodeFn", "FeatureBatch", "MediaSource", "collate_decoded", "decode_media", "encode_decoded"]

EncodeFn = Callable[[torch.Tensor], "torch.Tensor | np.ndarray"]

@dataclass
class FeatureBatch:
    """Frame features of the files of one batch that decoded.

    Attributes:
        paths: the B files (in input order) with features.
        features: `(B, T, D)` float32; rows past `mask` are zero.
        mask: `(B, T)` bool, True for real frames (an image has one).
        timestamps: `(B, T)` float32 seconds of each frame (0 for images and padding).
        errors: `(path, reason)` for files of this batch that failed to decode (not in `paths`).
        indices: `(B,)` int64 positions of `paths` in the input sequence.
    """

    paths: list[str]
    features: np.ndarray
    mask: np.ndarray
    timestamps: np.ndarray
    errors: list[tuple[str, str]] = field(default_factory=list)
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _item_rng(seed: int, path: str) -> np.random.Generator:
    # Keyed by (seed, path) so `random` sampling does not depend on worker count, batch order,
    # sharding or resumption.
    return np.random.default_rng([seed, zlib.crc32(path.encode("utf-8"))])


MediaSource = Union[str, os.PathLike, TarMember]  # noqa: UP007 (a runtime alias)


def decode_media(source: MediaSource, index: int, num_frames: int, strategy: str,
                 preprocess: ClipPreprocess, seed: int, decode_options: dict) -> dict:
    """Reader of one file (every engine's): normalised pixels `(n, 3, S, S)` and timestamps, or
    the decode error.

    Args:
        source: a media file, or a `TarMember` of a WebDataset shard.
        index: its position in the job's input (returned as `index`).
        num_frames, strategy, seed, decode_options: as `extract_frame_features`.
        preprocess: the encoder's transform.

    Returns:
        ``{"index", "path"`` (the source's string), ``"pixels", "timestamps"}`` or
        ``{"index", "path", "error"}``.
    """
    path = str(source)
    rng = _item_rng(seed, path) if strategy == "random" else None
    try:
        with (member_file(source) if isinstance(source, TarMember)
              else contextlib.nullcontext(source)) as file:
            frames = read_frames(file, num_frames, strategy, rng, **decode_options)
        pixels = preprocess(frames.frames)  # (n, 3, S, S)
    except MediaDecodeError as e:
        return {"index": index, "path": path, "error": e.reason}
    except OSError as e:  # an unreadable tar shard
        return {"index": index, "path": path, "error": f"cannot read: {e.strerror or e}"}
    return {"index": index, "path": path, "pixels": pixels,
            "timestamps": np.asarray(frames.timestamps, dtype=np.float32)}


def collate_decoded(num_frames: int) -> Callable[[list[dict]], dict]:
    """Collate function of `decode_media` outputs: pixels concatenated `(sum n, 3, S, S)`, counts,
    padded timestamps `(B, T)`, errors."""
    def collate(items: list[dict]) -> dict:
        ok = [it for it in items if "error" not in it]
        counts = [len(it["timestamps"]) for it in ok]
        timestamps = np.zeros((len(ok), num_frames), dtype=np.float32)  # (B, T)
        for row, it in enumerate(ok):
            timestamps[row, : counts[row]] = it["timestamps"]
        pixels = torch.cat([it["pixels"] for it in ok]) if ok else None  # (sum n, 3, S, S)
        return {
            "indices": np.asarray([it["index"] for it in ok], dtype=np.int64),
            "paths": [it["path"] for it in ok],
            "counts": counts,
            "timestamps": timestamps,
            "pixels": pixels,
            "errors": [(it["path"], it["error"]) for it in items if "error" in it],
        }

    return collate


def encode_decoded(batch: dict, encode_frames: EncodeFn, num_frames: int,
                   on_error: str = "collect") -> FeatureBatch:
    """Mapper: run the encoder on one collated batch of `decode_media` outputs and scatter the
    frames into `(B, T, D)` (every engine's)."""
    if on_error == "raise" and batch["errors"]:
        path, reason = batch["errors"][0]
        raise MediaDecodeError(path, reason)
    counts = batch["counts"]
    b, dim = len(counts), 0
    if b:
        with torch.no_grad():
            out = encode_frames(batch["pixels"])  # (sum n, D)
        flat = as_float32_array(out)
        if flat.ndim != 2 or flat.shape[0] != sum(counts):
            raise ValueError(f"encode_frames returned shape {flat.shape}, expected "
                             f"({sum(counts)}, D)")
        dim = flat.shape[1]
    features = np.zeros((b, num_frames, dim), dtype=np.float32)  # (B, T, D)
    mask = np.zeros((b, num_frames), dtype=bool)  # (B, T)
    start = 0
    for row, n in enumerate(counts):
        features[row, :n] = flat[start:start + n]
        mask[row, :n] = True
        start += n
    return FeatureBatch(batch["paths"], features, mask, batch["timestamps"], batch["errors"],
                        batch["indices"])
