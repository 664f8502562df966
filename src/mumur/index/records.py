"""What the index stores per file, as Python values: the bookkeeping row (`ItemRecord`), an
embedded file on its way in (`NewItem`) and every item's arrays loaded for search
(`StoredArrays`, assembled from database rows by `assemble_arrays`).

The byte layout (see `mumur.index.store`): little-endian float32 or float16 (`meta.dtype`) BLOBs,
`timestamps` always float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_ITEM_ID", "MEDIA_TYPES", "ItemRecord", "NewItem", "StoredArrays",
           "assemble_arrays"]

MEDIA_TYPES = ("image", "video")
#: Item ids are SQLite rowids: positive signed 64-bit integers.
MAX_ITEM_ID = 2**63 - 1


@dataclass(frozen=True)
class ItemRecord:
    """Per-file bookkeeping row (no arrays)."""

    id: int
    path: str
    display_path: str
    media_type: str
    size: int
    mtime_ns: int
    hash: str | None


@dataclass
class NewItem:
    """An embedded file ready to be written.

    Attributes:
        path: absolute path (surrogate-escaped str).
        media_type: "image" | "video".
        size, mtime_ns, hash: fingerprint from the scan.
        timestamps: (T,) seconds of the sampled frames.
        pooled: (d,) stage-1 vector.
        state: (T, Ds) per-frame state.
        audio: for an audio-aware index, the video's `mumur.index.audio.AudioRow` (None: no
            audio row, e.g. an image).
    """

    path: str
    media_type: str
    size: int
    mtime_ns: int
    hash: str
    timestamps: np.ndarray
    pooled: np.ndarray
    state: np.ndarray
    audio: object = None


@dataclass
class StoredArrays:
    """Everything search needs, loaded into memory (padded to the longest item).

    Attributes:
        ids: (N,) int64 item ids.
        paths: N display paths.
        media_types: (N,) int8, 0 = image, 1 = video.
        pooled: (N, d) float32.
        state: (N, T, Ds) float32 or float16 (as stored).
        mask: (N, T) bool, valid frames.
        timestamps: (N, T) float32.
        generation: the index generation these arrays reflect.
    """

    ids: np.ndarray
    paths: list[str]
    media_types: np.ndarray
    pooled: np.ndarray
    state: np.ndarray
    mask: np.ndarray
    timestamps: np.ndarray
    generation: int


def assemble_arrays(meta: dict[str, str], rows: list[tuple], dtype: np.dtype) -> StoredArrays:
    """Padded matrices from `items` rows, one snapshot.

    Args:
        meta: the index's metadata (`pooled_dim`, `state_dim`, `generation`).
        rows: (id, display_path, media_type, n_frames, timestamps, pooled, state) by id.
        dtype: the stored array dtype (little-endian float32 or float16).

    Returns:
        `StoredArrays` padded to the longest item (`mask` marks real frames).
    """
    n = len(rows)
    dim, sdim = int(meta.get("pooled_dim", 0)), int(meta.get("state_dim", 0))
    t_max = max((r[3] for r in rows), default=1)
    arrays = StoredArrays(
        ids=np.fromiter((r[0] for r in rows), dtype=np.int64, count=n),
        paths=[r[1] for r in rows],
        media_types=np.fromiter((MEDIA_TYPES.index(r[2]) for r in rows), np.int8, count=n),
        pooled=np.zeros((n, dim), dtype=np.float32),
        state=np.zeros((n, t_max, sdim), dtype=dtype.newbyteorder("=")),
        mask=np.zeros((n, t_max), dtype=bool),
        timestamps=np.zeros((n, t_max), dtype=np.float32),
        generation=int(meta.get("generation", 0)),
    )
    for i, (_, _, _, t, ts, pooled, state) in enumerate(rows):
        arrays.pooled[i] = np.frombuffer(pooled, dtype=dtype)
        arrays.state[i, :t] = np.frombuffer(state, dtype=dtype).reshape(t, sdim)
        arrays.mask[i, :t] = True
        arrays.timestamps[i, :t] = np.frombuffer(ts, dtype="<f4")
    return arrays
