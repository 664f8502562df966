"""Decoded-frame cache for training a vision encoder: each epoch skips decoding.

Frozen encoders' outputs (frame and text features) live in the core feature store
(`mumur.data.feature_store`); what is left here is training-only: `pixel_frame_cache`, decoded,
resized and centre-cropped uint8 frames in a memory-mapped `.npy`, for a trainable vision encoder
that must see pixels every epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.feature_store import folder_name
from ..errors import DatasetError, MediaDecodeError
from ..fsutil import atomic_path, atomic_write_json

__all__ = ["pixel_frame_cache"]


def _as_is(sample):
    return sample


class _DecodeCrops(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str], num_frames: int, image_size: int):
        self.paths, self.num_frames, self.image_size = list(paths), num_frames, image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from ..media.decode import read_frames
        from ..media.transforms import ClipPreprocess

        crop = ClipPreprocess(self.image_size).crop_uint8
        try:
            frames = read_frames(self.paths[i], self.num_frames, strategy="uniform").frames
        except MediaDecodeError as exc:
            return i, None, exc.reason
        return i, np.stack([crop(im) for im in frames[:self.num_frames]]), None


def pixel_frame_cache(paths: Sequence[str], cache_dir, num_frames: int, image_size: int, *,
                      num_workers: int = 0, progress: bool = True
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Decoded frames of `paths` as resized + centre-cropped uint8, built once.

    `<cache_dir>/<digest>/frames.npy` holds `(N, T, S, S, 3)` uint8 (opened memory-mapped),
    `mask.npy` `(N, T)` bool and `meta.json` (written last: a cache without it is rebuilt).

    Args:
        paths: media files.
        cache_dir: cache root.
        num_frames: T, uniformly spaced frames per video (an image gives one).
        image_size: S.
        num_workers: decode worker processes.
        progress: show a progress bar.

    Returns:
        `(frames memmap (N, T, S, S, 3) uint8, mask (N, T) bool)`.

    Raises:
        DatasetError: files that failed to decode.
    """
    from tqdm.auto import tqdm

    paths = [str(p) for p in paths]
    folder = Path(cache_dir) / folder_name(num_frames, image_size, *paths)
    meta_path = folder / "meta.json"
    if meta_path.exists():
        return np.load(folder / "frames.npy", mmap_mode="r"), np.load(folder / "mask.npy")
    folder.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((len(paths), num_frames), dtype=bool)
    with atomic_path(folder / "frames.npy") as tmp:
        frames = np.lib.format.open_memmap(
            tmp, mode="w+", dtype=np.uint8,
            shape=(len(paths), num_frames, image_size, image_size, 3))
        errors = []
        loader = torch.utils.data.DataLoader(_DecodeCrops(paths, num_frames, image_size),
                                             batch_size=None, num_workers=num_workers,
                                             collate_fn=_as_is)
        for i, crops, reason in tqdm(loader, total=len(paths), desc="decode frames",
                                     disable=not progress):
            if crops is None:
                errors.append((paths[i], reason))
                continue
            frames[i, :len(crops)] = crops
            mask[i, :len(crops)] = True
        if errors:
            shown = "; ".join(f"{p}: {r}" for p, r in errors[:3])
            raise DatasetError(f"{len(errors)} of {len(paths)} media files failed to decode "
                               f"({shown})")
        frames.flush()
        del frames
    with atomic_path(folder / "mask.npy") as tmp:
        np.save(tmp, mask)
    atomic_write_json(meta_path, {"num_frames": num_frames, "image_size": image_size,
                                  "paths": paths})
    return np.load(folder / "frames.npy", mmap_mode="r"), mask
