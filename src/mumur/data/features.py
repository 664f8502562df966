"""Frame-feature extraction (reader -> mapper -> writer) and the on-disk feature cache.

`extract_frame_features` decodes and preprocesses media in DataLoader worker processes (reader),
while the main process runs the visual encoder (mapper) on the previous batch; the caller consumes
`FeatureBatch`es (writer), e.g. `FeatureCache.put_batch`. `cache_features` ties them together with
resume and sharding.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from tqdm.auto import tqdm
from typing_extensions import Self

from ..errors import FeatureCacheError, FeatureCacheMismatchError, MediaDecodeError
from ..media.decode import read_frames
from ..media.transforms import CLIP_MEAN, CLIP_STD, ClipPreprocess

__all__ = [
    "CacheReport",
    "FeatureBatch",
    "FeatureCache",
    "cache_features",
    "extract_frame_features",
]

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


class _FrameDataset(torch.utils.data.Dataset):
    """Reader: path -> normalised pixels `(n, 3, S, S)`, timestamps, or a decode error."""

    def __init__(self, paths: Sequence[str], num_frames: int, strategy: str,
                 preprocess: ClipPreprocess, seed: int, decode_options: dict):
        self.paths = [str(p) for p in paths]
        self.num_frames, self.strategy, self.seed = num_frames, strategy, seed
        self.preprocess = preprocess
        self.decode_options = decode_options

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        path = self.paths[i]
        rng = _item_rng(self.seed, path) if self.strategy == "random" else None
        try:
            frames = read_frames(path, self.num_frames, self.strategy, rng, **self.decode_options)
            pixels = self.preprocess(frames.frames)  # (n, 3, S, S)
        except MediaDecodeError as e:
            return {"index": i, "path": path, "error": e.reason}
        return {"index": i, "path": path, "pixels": pixels,
                "timestamps": np.asarray(frames.timestamps, dtype=np.float32)}


def _collate(num_frames: int) -> Callable[[list[dict]], dict]:
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


class _WorkerInit:
    """Seeds each worker's global RNGs from (seed, worker id); one decode thread per worker."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, worker_id: int) -> None:
        torch.set_num_threads(1)
        s = (self.seed * 1_000_003 + worker_id) % 2**32
        np.random.seed(s)
        random.seed(s)
        torch.manual_seed(s)


def _default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def extract_frame_features(paths: Sequence, encode_frames: EncodeFn, num_frames: int,
                           strategy: str = "uniform", image_size: int = 224, batch_size: int = 16,
                           num_workers: int | None = None, seed: int = 0,
                           on_error: str = "collect", prefetch_factor: int = 2,
                           decode_options: dict | None = None,
                           mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                           progress: bool = False) -> Iterator[FeatureBatch]:
    """Decode, preprocess and encode media files in batches, skipping files that fail.

    Decoding and CLIP preprocessing run in `num_workers` DataLoader worker processes, overlapped
    with `encode_frames` in this process. Videos give `num_frames` frames (sampled per
    `mumur.media.decode.read_frames`), images one (mask True only at t=0).

    Args:
        paths: media files.
        encode_frames: `(n, 3, S, S)` float pixel tensor -> `(n, D)` features (tensor or array);
            called under `torch.no_grad()`.
        num_frames: T, frames per video.
        strategy: "uniform" or "random" frame sampling. `random` draws are keyed by
            `(seed, path)`, so they are reproducible whatever the worker count or order.
        image_size: S, the square side after preprocessing.
        batch_size: files per batch (frames per encoder call <= batch_size * T).
        num_workers: decode processes; 0 decodes in this process; None: min(4, cores - 1), >= 1.
        seed: seed for `random` sampling and worker RNGs.
        on_error: "collect" (failed files go to `FeatureBatch.errors`; the run goes on) or
            "raise" (raise the first `MediaDecodeError`).
        prefetch_factor: batches each worker prepares ahead.
        decode_options: extra keyword arguments for `read_frames` (e.g. `thread_type`,
            `resize_shorter`, `max_pixels`).
        mean: normalisation mean of the encoder (CLIP's by default).
        std: normalisation std of the encoder (CLIP's by default).
        progress: show a tqdm bar over files.

    Returns:
        Iterator of `FeatureBatch`, in input order; a batch whose files all failed has B = 0
        (features `(0, T, 0)`) and only `errors`.
    """
    if on_error not in ("collect", "raise"):
        raise ValueError(f"on_error must be 'collect' or 'raise', got {on_error!r}")
    dataset = _FrameDataset(paths, num_frames, strategy, ClipPreprocess(image_size, mean, std),
                            seed, decode_options or {})
    if len(dataset) == 0:
        return
    workers = _default_workers() if num_workers is None else int(num_workers)
    loader_kw = {}
    if workers > 0:
        loader_kw = {"prefetch_factor": prefetch_factor, "worker_init_fn": _WorkerInit(seed),
                     "persistent_workers": False}
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=workers, collate_fn=_collate(num_frames),
                                         **loader_kw)
    with tqdm(total=len(dataset), desc="frames", unit="file", disable=not progress) as bar:
        for batch in loader:
            yield _encode_batch(batch, encode_frames, num_frames, on_error)
            bar.update(len(batch["paths"]) + len(batch["errors"]))


def _encode_batch(batch: dict, encode_frames: EncodeFn, num_frames: int,
                  on_error: str) -> FeatureBatch:
    """Mapper: run the encoder on one collated batch and scatter frames into `(B, T, D)`."""
    if on_error == "raise" and batch["errors"]:
        path, reason = batch["errors"][0]
        raise MediaDecodeError(path, reason)
    counts = batch["counts"]
    b, dim = len(counts), 0
    if b:
        with torch.no_grad():
            out = encode_frames(batch["pixels"])  # (sum n, D)
        flat = out.detach().float().cpu().numpy() if torch.is_tensor(out) else np.asarray(
            out, dtype=np.float32)
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


# ----------------------------------------------------------------------------------------- cache

_FORMAT = "mumur.feature_cache"
_VERSION = 1
_MANIFEST = "cache.json"
# What reading a damaged shard can raise (JSONDecodeError is a ValueError).
_SHARD_ERRORS = (OSError, ValueError, KeyError, SafetensorError)


class FeatureCache:
    """Frame features on disk: safetensors shards plus a `cache.json` manifest.

    Each shard holds `features (n, T, D)` float32, `mask (n, T)` bool, `timestamps (n, T)` float32
    and, in its metadata, the media ids of its rows and the cache tag (encoder identity,
    num_frames, strategy). Shards are written to a temporary name and renamed into place
    (`os.replace`), and the manifest likewise, so a crash leaves either a whole shard or none.
    Opening a cache also picks up shards the manifest does not list yet (a crash between the two
    renames, or another process sharing the folder), so concurrent shard workers lose nothing.

    Use `FeatureCache.open(...)`, not the constructor.
    """

    def __init__(self, root: Path, identity: str, num_frames: int, strategy: str,
                 shard_size: int, max_loaded_shards: int):
        self.root = root
        self.identity, self.num_frames, self.strategy = identity, int(num_frames), strategy
        self.shard_size = int(shard_size)
        self.dim: int | None = None
        self._where: dict[str, tuple[str, int]] = {}  # media id -> (shard file, row)
        self._shards: list[str] = []
        self._pending: list[tuple[list[str], np.ndarray, np.ndarray, np.ndarray]] = []
        self._loaded: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._max_loaded = max_loaded_shards

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, root, identity: str, num_frames: int, strategy: str = "uniform", *,
             create: bool = True, shard_size: int = 1024,
             max_loaded_shards: int = 8) -> FeatureCache:
        """Open (or create) the cache in folder `root` for one encoder / sampling setting.

        Args:
            root: cache folder.
            identity: encoder identity string (e.g. `Encoder.identity`).
            num_frames: T.
            strategy: frame sampling strategy the features were made with.
            create: create the folder and manifest when missing (else FeatureCacheError).
            shard_size: items buffered before `put_batch` writes a shard.
            max_loaded_shards: shards kept in memory by `get`.

        Returns:
            The cache.

        Raises:
            FeatureCacheMismatchError: the folder holds features of another identity, frame count
                or strategy.
            FeatureCacheError: the manifest or a shard is unreadable.
        """
        root = Path(root)
        cache = cls(root, identity, num_frames, strategy, shard_size, max_loaded_shards)
        manifest = root / _MANIFEST
        if not manifest.exists():
            if not create:
                raise FeatureCacheError(root, "no cache.json (not a feature cache)")
            root.mkdir(parents=True, exist_ok=True)
        else:
            cache._check_tag(cache._read_manifest(), manifest)
        cache._scan()
        if create:
            cache._write_manifest()
        return cache

    def _tag(self) -> dict:
        return {"identity": self.identity, "num_frames": self.num_frames,
                "strategy": self.strategy}

    def _check_tag(self, tag: dict, where) -> None:
        for key, want in self._tag().items():
            if tag.get(key) != want:
                raise FeatureCacheMismatchError(
                    where, f"built with {key}={tag.get(key)!r}, asked for {key}={want!r}; "
                    "use another folder or the matching encoder")

    def _read_manifest(self) -> dict:
        path = self.root / _MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise FeatureCacheError(path, f"unreadable manifest: {e}") from None
        if data.get("format") != _FORMAT:
            raise FeatureCacheError(path, "not a mumur feature cache manifest")
        if data.get("version", 0) > _VERSION:
            raise FeatureCacheError(path, f"cache version {data.get('version')} is newer than "
                                    f"this mumur ({_VERSION})")
        return data

    def _scan(self) -> None:
        """Index every complete shard in the folder (manifest order first, then new ones)."""
        from safetensors import safe_open

        listed = []
        if (self.root / _MANIFEST).exists():
            listed = list(self._read_manifest().get("shards", {}))
        on_disk = sorted(p.name for p in self.root.glob("shard-*.safetensors"))
        order = [s for s in listed if s in on_disk] + [s for s in on_disk if s not in listed]
        self._where.clear()
        self._shards = []
        for name in order:
            try:
                with safe_open(str(self.root / name), framework="numpy") as f:
                    meta = f.metadata() or {}
                    shape = f.get_slice("features").get_shape()
                shard_ids = json.loads(meta["ids"])
            except _SHARD_ERRORS as e:
                raise FeatureCacheError(self.root / name, f"unreadable shard: {e!r}") from None
            self._check_tag({"identity": meta.get("identity"),
                             "num_frames": int(meta.get("num_frames", -1)),
                             "strategy": meta.get("strategy")}, self.root / name)
            if self.dim is None:
                self.dim = int(shape[2])
            for row, media_id in enumerate(shard_ids):
                self._where[media_id] = (name, row)  # later shards win
            self._shards.append(name)

    def _write_manifest(self) -> None:
        shard_items: dict[str, int] = {}
        for name, _ in self._where.values():
            shard_items[name] = shard_items.get(name, 0) + 1
        data = {"format": _FORMAT, "version": _VERSION, **self._tag(), "dim": self.dim,
                "items": len(self._where),
                "shards": {name: shard_items.get(name, 0) for name in self._shards}}
        _atomic_write(self.root / _MANIFEST, json.dumps(data, indent=1).encode("utf-8"))

    # -- reading ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, media_id: str) -> bool:
        return self.has(media_id)

    def has(self, media_id: str) -> bool:
        """True when features for `media_id` are stored (flushed or pending)."""
        if media_id in self._where:
            return True
        return any(media_id in ids for ids, *_ in self._pending)

    def ids(self) -> list[str]:
        """Media ids stored on disk."""
        return list(self._where)

    def _load_shard(self, name: str) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file

        if name in self._loaded:
            self._loaded.move_to_end(name)
            return self._loaded[name]
        try:
            arrays = load_file(str(self.root / name))
        except _SHARD_ERRORS as e:
            raise FeatureCacheError(self.root / name, f"unreadable shard: {e!r}") from None
        self._loaded[name] = arrays
        while len(self._loaded) > self._max_loaded:
            self._loaded.popitem(last=False)
        return arrays

    def get(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stored features of `ids`, in that order (flushes pending items first).

        Args:
            ids: media ids.

        Returns:
            `(features (n, T, D) float32, mask (n, T) bool, timestamps (n, T) float32)`.

        Raises:
            FeatureCacheError: some ids are not in the cache.
        """
        self.flush()
        missing = [i for i in ids if i not in self._where]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise FeatureCacheError(self.root, f"{len(missing)} ids not cached (e.g. {shown})")
        n, t, d = len(ids), self.num_frames, self.dim or 0
        features = np.zeros((n, t, d), dtype=np.float32)  # (n, T, D)
        mask = np.zeros((n, t), dtype=bool)  # (n, T)
        timestamps = np.zeros((n, t), dtype=np.float32)  # (n, T)
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for out_row, media_id in enumerate(ids):
            name, row = self._where[media_id]
            by_shard.setdefault(name, []).append((out_row, row))
        for name, pairs in by_shard.items():
            arrays = self._load_shard(name)
            out_rows, rows = (np.asarray(x) for x in zip(*pairs))
            features[out_rows] = arrays["features"][rows]
            mask[out_rows] = arrays["mask"][rows]
            timestamps[out_rows] = arrays["timestamps"][rows]
        return features, mask, timestamps

    # -- writing ---------------------------------------------------------------------------

    def put_batch(self, ids: Sequence[str], features: np.ndarray, mask: np.ndarray,
                  timestamps: np.ndarray) -> None:
        """Add items; a shard is written once `shard_size` items are pending.

        Args:
            ids: B media ids.
            features: `(B, T, D)` float32.
            mask: `(B, T)` bool.
            timestamps: `(B, T)` float32.
        """
        features = np.asarray(features, dtype=np.float32)
        mask = np.asarray(mask, dtype=bool)
        timestamps = np.asarray(timestamps, dtype=np.float32)
        b = len(ids)
        if b == 0:
            return
        t = self.num_frames
        if features.ndim != 3 or features.shape[:2] != (b, t):
            raise ValueError(f"features must be ({b}, {t}, D), got {features.shape}")
        if mask.shape != (b, t) or timestamps.shape != (b, t):
            raise ValueError(f"mask and timestamps must be ({b}, {t}), got {mask.shape} and "
                             f"{timestamps.shape}")
        if self.dim is None:
            self.dim = int(features.shape[2])
        elif features.shape[2] != self.dim:
            raise FeatureCacheMismatchError(self.root, f"feature dim {features.shape[2]} != "
                                            f"cached dim {self.dim}")
        self._pending.append(([str(i) for i in ids], features, mask, timestamps))
        if sum(len(p[0]) for p in self._pending) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write pending items as one shard (atomically) and update the manifest."""
        if not self._pending:
            return
        from safetensors.numpy import save_file

        ids = [i for p in self._pending for i in p[0]]
        arrays = {"features": np.ascontiguousarray(np.concatenate([p[1] for p in self._pending])),
                  "mask": np.ascontiguousarray(np.concatenate([p[2] for p in self._pending])),
                  "timestamps": np.ascontiguousarray(
                      np.concatenate([p[3] for p in self._pending]))}
        meta = {k: str(v) for k, v in self._tag().items()}
        meta["ids"] = json.dumps(ids)
        name = f"shard-{uuid.uuid4().hex[:16]}.safetensors"
        tmp = self.root / f".tmp-{name}"
        try:
            save_file(arrays, str(tmp), metadata=meta)
            _fsync(tmp)
            os.replace(tmp, self.root / name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        self._pending.clear()
        # Re-scan so shards written meanwhile by other processes are listed in the manifest too.
        self._scan()
        self._write_manifest()

    def close(self) -> None:
        """Flush pending items."""
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@dataclass
class CacheReport:
    """What `cache_features` did.

    Attributes:
        computed: items encoded and stored in this run.
        skipped: items of this shard already in the cache.
        errors: `(media_id, path, reason)` for items that failed to decode (not stored; retried
            on the next run).
    """

    computed: int
    skipped: int
    errors: list[tuple[str, str, str]]


def cache_features(items: Sequence[tuple[str, str]], encode_frames: EncodeFn, cache_dir,
                   identity: str, num_frames: int, strategy: str = "uniform",
                   image_size: int = 224, batch_size: int = 16, num_workers: int | None = None,
                   seed: int = 0, shard: tuple[int, int] = (0, 1), flush_every: int = 1024,
                   progress: bool = True, decode_options: dict | None = None,
                   mean: Sequence[float] = CLIP_MEAN,
                   std: Sequence[float] = CLIP_STD) -> CacheReport:
    """Fill a `FeatureCache` with the frame features of `items`, computing only missing ones.

    Resumable: items already in the cache are skipped, and every `flush_every` items a shard is
    written atomically, so after a crash a rerun only computes what was not flushed. Shardable:
    with `shard=(k, n)` only items whose index `i % n == k` are processed, so n processes (or
    machines sharing the folder) can split the work.

    Args:
        items: `(media_id, path)` pairs.
        encode_frames: `(n, 3, S, S)` pixels -> `(n, D)` features.
        cache_dir: cache folder (created when missing).
        identity: encoder identity string tagging the cache.
        num_frames: T.
        strategy: "uniform" or "random".
        image_size: S.
        batch_size: files per encoder batch.
        num_workers: decode worker processes (see `extract_frame_features`).
        seed: sampling seed for `random`.
        shard: `(k, n)`: process items with `index % n == k`.
        flush_every: items per written shard.
        progress: show a tqdm progress bar.
        decode_options: extra `read_frames` options.
        mean: normalisation mean of the encoder (CLIP's by default).
        std: normalisation std of the encoder (CLIP's by default).

    Returns:
        `CacheReport`.

    Raises:
        FeatureCacheMismatchError: the folder holds features of another encoder / setting.
    """
    k, n = shard
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard}")
    cache = FeatureCache.open(cache_dir, identity, num_frames, strategy, shard_size=flush_every)
    mine = [(mid, str(p)) for i, (mid, p) in enumerate(items) if i % n == k]
    todo = [(mid, p) for mid, p in mine if not cache.has(mid)]
    report = CacheReport(computed=0, skipped=len(mine) - len(todo), errors=[])
    bar = tqdm(total=len(todo), desc=f"features {k}/{n}" if n > 1 else "features",
               unit="file", disable=not progress)
    path_id = {p: mid for mid, p in todo}
    try:
        batches = extract_frame_features([p for _, p in todo], encode_frames, num_frames,
                                         strategy, image_size, batch_size, num_workers, seed,
                                         decode_options=decode_options, mean=mean, std=std)
        for batch in batches:
            ids = [todo[i][0] for i in batch.indices]
            cache.put_batch(ids, batch.features, batch.mask, batch.timestamps)
            report.computed += len(ids)
            report.errors.extend((path_id.get(p, ""), p, reason) for p, reason in batch.errors)
            bar.update(len(ids) + len(batch.errors))
    finally:
        # Whatever was fully computed before an exception is kept; only unfinished work is lost.
        cache.flush()
        bar.close()
    return report
