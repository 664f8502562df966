"""Computing features into the feature store: frames of media files and texts.

`extract_frame_features` decodes and preprocesses media in DataLoader worker processes (reader),
while the main process runs the visual encoder (mapper) on the previous batch; the caller consumes
`FeatureBatch`es (writer), e.g. `FeatureStore.put`. `cache_features` ties them together with
resume and sharding; `cached_frame_features` is the one call for "frame features of these files,
computed once", and `cache_text_features` the same for texts.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import DatasetError
from ..media.transforms import CLIP_MEAN, CLIP_STD, ClipPreprocess
from .feature_store import FeatureStore, as_float32_array, frame_tag, store_folder, text_key
from .frame_batches import (
    EncodeFn,
    FeatureBatch,
    MediaSource,
    collate_decoded,
    decode_media,
    encode_decoded,
)
from .webdataset import TarMember

__all__ = [
    "CacheReport",
    "FeatureBatch",
    "cache_features",
    "cache_text_features",
    "cached_frame_features",
    "cached_frame_rows",
    "decode_media",
    "encode_decoded",
    "extract_frame_features",
]


class _FrameDataset(torch.utils.data.Dataset):
    """Reader: source -> `decode_media`."""

    def __init__(self, paths: Sequence[MediaSource], num_frames: int, strategy: str,
                 preprocess: ClipPreprocess, seed: int, decode_options: dict):
        self.paths = [p if isinstance(p, TarMember) else str(p) for p in paths]
        self.num_frames, self.strategy, self.seed = num_frames, strategy, seed
        self.preprocess = preprocess
        self.decode_options = decode_options

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        return decode_media(self.paths[i], i, self.num_frames, self.strategy, self.preprocess,
                            self.seed, self.decode_options)


class _WorkerInit:
    """Seeds each worker's global RNGs from (seed, worker id); one decode thread per worker."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, worker_id: int) -> None:
        torch.set_num_threads(1)
        sys.excepthook = _quiet_when_reader_left
        s = (self.seed * 1_000_003 + worker_id) % 2**32
        np.random.seed(s)
        random.seed(s)
        torch.manual_seed(s)


def _quiet_when_reader_left(exc_type, exc, tb, _default=sys.excepthook) -> None:
    # A worker hands batch tensors over by file descriptor (multiprocessing's resource sharer
    # thread, which reports its errors through sys.excepthook). When the main process stops with
    # batches in flight (Ctrl-C, SIGTERM), that thread sees the connection reset: expected, not an
    # error worth a traceback on the user's terminal.
    if issubclass(exc_type, (ConnectionResetError, BrokenPipeError)):
        return
    _default(exc_type, exc, tb)


def _default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1) - 1))


def extract_frame_features(paths: Sequence, encode_frames: EncodeFn, num_frames: int,
                           strategy: str = "uniform", image_size: int = 224, batch_size: int = 16,
                           num_workers: int | None = None, seed: int = 0,
                           on_error: str = "collect", prefetch_factor: int = 2,
                           decode_options: dict | None = None,
                           mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                           progress: bool = False,
                           preprocess: ClipPreprocess | None = None) -> Iterator[FeatureBatch]:
    """Decode, preprocess and encode media files in batches, skipping files that fail (the local
    engine; `mumur.data.ray_engine` is the Ray one).

    Decoding and CLIP preprocessing run in `num_workers` DataLoader worker processes, overlapped
    with `encode_frames` in this process. Videos give `num_frames` frames (sampled per
    `mumur.media.decode.read_frames`), images one (mask True only at t=0).

    Args:
        paths: media files (or `TarMember`s of WebDataset shards).
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
        preprocess: the encoder's own transform (e.g. SigLIP's squash resize); when given it
            replaces `image_size`, `mean` and `std`.

    Returns:
        Iterator of `FeatureBatch`, in input order; a batch whose files all failed has B = 0
        (features `(0, T, 0)`) and only `errors`.
    """
    if on_error not in ("collect", "raise"):
        raise ValueError(f"on_error must be 'collect' or 'raise', got {on_error!r}")
    preprocess = preprocess or ClipPreprocess(image_size, mean, std)
    dataset = _FrameDataset(paths, num_frames, strategy, preprocess, seed, decode_options or {})
    if len(dataset) == 0:
        return
    workers = _default_workers() if num_workers is None else int(num_workers)
    loader_kw = {}
    if workers > 0:
        loader_kw = {"prefetch_factor": prefetch_factor, "worker_init_fn": _WorkerInit(seed),
                     "persistent_workers": False}
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=workers, collate_fn=collate_decoded(num_frames),
                                         **loader_kw)
    with tqdm(total=len(dataset), desc="frames", unit="file", disable=not progress) as bar:
        for batch in loader:
            yield encode_decoded(batch, encode_frames, num_frames, on_error)
            bar.update(len(batch["paths"]) + len(batch["errors"]))


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
                   std: Sequence[float] = CLIP_STD, extract=None) -> CacheReport:
    """Fill a frame `FeatureStore` with the frame features of `items`, computing only missing ones.

    Resumable: items already in the cache are skipped, and every `flush_every` items a shard is
    written atomically, so after a crash a rerun only computes what was not flushed. Shardable:
    with `shard=(k, n)` only items whose index `i % n == k` are processed, so n processes (or
    machines sharing the folder) can split the work.

    Args:
        items: `(media_id, path)` pairs (a path may be a `TarMember`).
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
        extract: the engine: a callable with `extract_frame_features`'s arguments (default:
            that function, the local engine; `mumur.data.ray_engine.RayFrameExtractor`).

    Returns:
        `CacheReport`.

    Raises:
        FeatureCacheMismatchError: the folder holds features of another encoder / setting.
    """
    k, n = shard
    if not (n >= 1 and 0 <= k < n):
        raise ValueError(f"shard must be (k, n) with 0 <= k < n, got {shard}")
    cache = FeatureStore.for_frames(cache_dir, identity, num_frames, strategy,
                                    shard_size=flush_every)
    mine = [(mid, p if isinstance(p, TarMember) else str(p))
            for i, (mid, p) in enumerate(items) if i % n == k]
    todo = [(mid, p) for mid, p in mine if not cache.has(mid)]
    report = CacheReport(computed=0, skipped=len(mine) - len(todo), errors=[])
    bar = tqdm(total=len(todo), desc=f"features {k}/{n}" if n > 1 else "features",
               unit="file", disable=not progress)
    path_id = {str(p): mid for mid, p in todo}
    try:
        batches = (extract or extract_frame_features)(
            [p for _, p in todo], encode_frames, num_frames, strategy, image_size, batch_size,
            num_workers, seed, decode_options=decode_options, mean=mean, std=std)
        for batch in batches:
            ids = [todo[i][0] for i in batch.indices]
            cache.put(ids, features=batch.features, mask=batch.mask, timestamps=batch.timestamps)
            report.computed += len(ids)
            report.errors.extend((path_id.get(p, ""), p, reason) for p, reason in batch.errors)
            bar.update(len(ids) + len(batch.errors))
    finally:
        # Whatever was fully computed before an exception is kept; only unfinished work is lost.
        cache.flush()
        bar.close()
    return report


def cached_frame_features(paths: Sequence[str], encode_frames: EncodeFn, identity: str, root,
                          num_frames: int, image_size: int, *, batch_size: int = 16,
                          num_workers: int | None = None, progress: bool = True
                          ) -> tuple[np.ndarray, np.ndarray]:
    """`(features (N, T, Dv) float32, mask (N, T) bool)` of `cached_frame_rows` (same
    arguments)."""
    rows = cached_frame_rows(paths, encode_frames, identity, root, num_frames, image_size,
                             batch_size=batch_size, num_workers=num_workers, progress=progress)
    return rows["features"], rows["mask"]


def cached_frame_rows(paths: Sequence[str], encode_frames: EncodeFn, identity: str, root,
                      num_frames: int, image_size: int, *, batch_size: int = 16,
                      num_workers: int | None = None, progress: bool = True
                      ) -> dict[str, np.ndarray]:
    """Frame features of a frozen vision encoder for `paths`, computed once and cached.

    `num_frames` uniformly spaced frames per video (segment centres), one per image. The store is
    `store_folder(root, frame_tag(identity, num_frames))`, keyed by the path strings: the folder
    `mumur features` fills, so training and evaluation read what that job wrote.

    Args:
        paths: media files (the store keys).
        encode_frames: `(n, 3, S, S)` -> `(n, Dv)`.
        identity: the encoder identity (store tag).
        root: stores root (a subfolder per identity and frame count).
        num_frames: frames per video.
        image_size: S.
        batch_size, num_workers, progress: extraction settings.

    Returns:
        ``{"features": (N, T, Dv) float32, "mask": (N, T) bool, "timestamps": (N, T) float32
        seconds}`` in `paths` order.

    Raises:
        DatasetError: files that failed to decode (all listed in the count, three shown).
    """
    folder = store_folder(root, frame_tag(identity, num_frames))
    keys = [str(p) for p in paths]
    report = cache_features(list(zip(keys, keys)), encode_frames, folder, identity, num_frames,
                            "uniform", image_size=image_size, batch_size=batch_size,
                            num_workers=num_workers, progress=progress)
    if report.errors:
        shown = "; ".join(f"{p}: {r}" for _, p, r in report.errors[:3])
        raise DatasetError(f"{len(report.errors)} of {len(keys)} media files failed to decode "
                           f"({shown})")
    return FeatureStore.for_frames(folder, identity, num_frames, create=False).get(keys)


def cache_text_features(store: FeatureStore, texts: Sequence[str],
                        encode: Callable[[list[str]], np.ndarray], *,
                        batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Features of `texts` from a text store, encoding (and storing) only the ones not stored.

    Each encoded batch is handed to the store, which writes a shard every `shard_size` rows, so
    a run killed midway keeps what it flushed and a rerun encodes only the rest.

    Args:
        store: a store opened with `FeatureStore.for_texts`.
        texts: captions or descriptions (duplicates allowed).
        encode: `list[str] -> (n, D)` raw encoder outputs, a tensor or an array (called under
            `torch.no_grad`).
        batch_size: texts per `encode` call.
        progress: show a progress bar while encoding.

    Returns:
        `(len(texts), D)` float32, row i for `texts[i]`.
    """
    missing = list(dict.fromkeys(t for t in texts if text_key(t) not in store))
    with torch.no_grad():
        for s in tqdm(range(0, len(missing), batch_size), desc="text features",
                      disable=not progress):
            chunk = missing[s:s + batch_size]
            store.put([text_key(t) for t in chunk], features=as_float32_array(encode(chunk)))
    return store.get([text_key(t) for t in texts])["features"]
