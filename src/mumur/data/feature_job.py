"""`mumur features`: run a frozen visual backbone once per media file of a benchmark split into a
frame `FeatureStore`, split across processes or machines, then merge and verify.

Layout: features of one (encoder identity, frame count) live in
`<cache_root>/frame_features/<digest(identity, num_frames, "uniform")>/`, keyed by the media path
string (`str(dataset.media_path(i))`): the folder and keys the trainer uses
(`mumur.train.experiment` -> `cached_frame_features(..., cache_dir / "frame_features", ...)`), so a
training run with `train.cache_dir = <cache_root>` reads what this job wrote instead of encoding
again. Give the benchmark root as an absolute path (presets do)
so that the keys written here and at training time are the same strings.

Sharding: shard `k/n` takes the items with index `i % n == k` (`cache_features`), so `n`
processes on one machine sharing the folder, or `n` machines with their own folders later joined
by `merge_feature_caches`, split the work disjointly and completely.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import ConfigError, FeatureCacheError
from ..fsutil import atomic_path
from .dataset import RetrievalDataset
from .feature_store import FeatureStore, frame_tag, store_folder
from .features import cache_features
from .frame_batches import MediaSource
from .webdataset import TarMember, list_tar_media

__all__ = [
    "FeatureJobReport",
    "FrameEncoder",
    "VerifyReport",
    "dataset_media_items",
    "feature_cache_folder",
    "frame_encode_fn",
    "merge_feature_caches",
    "parse_shard",
    "resolve_frame_encoder",
    "run_feature_job",
    "tar_media_items",
    "verify_feature_cache",
]

_STRATEGY = "uniform"  # evaluation and cached training both use segment centres
_FRAME_FEATURES = "frame_features"  # subfolder of train.cache_dir (mumur.train.experiment)


@dataclass
class FrameEncoder:
    """What the job needs from a visual backbone.

    Attributes:
        encode: `(n, 3, S, S)` pixels -> `(n, D)` raw frame features.
        identity: the encoder's identity string (cache tag).
        image_size: S.
    """

    encode: Callable[[torch.Tensor], torch.Tensor]
    identity: str
    image_size: int


@dataclass
class FeatureJobReport:
    """Result of one shard's run.

    Attributes:
        folder: the cache folder written.
        shard: `(k, n)`.
        total: items in the dataset split.
        shard_items: items assigned to this shard.
        computed, skipped: items encoded now / already cached.
        errors: `(media id, path, reason)` of files that failed to decode.
        cached: items of the whole split now in the cache (all shards so far).
    """

    folder: str
    shard: tuple[int, int]
    total: int
    shard_items: int
    computed: int
    skipped: int
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    cached: int = 0

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {**asdict(self), "shard": list(self.shard)}


@dataclass
class VerifyReport:
    """Completeness of a cache for a dataset split.

    Attributes:
        folder: the cache folder.
        total: items in the split.
        cached: of those, items in the cache.
        missing: media ids not cached (all of them).
        extra: cached ids that are not items of this split (other splits share the folder).
        dim: feature dimension (None when empty).
    """

    folder: str
    total: int
    cached: int
    missing: list[str]
    extra: int
    dim: int | None

    @property
    def complete(self) -> bool:
        """Every item of the split is cached."""
        return not self.missing

    def to_dict(self) -> dict:
        """JSON-ready dict (with `complete`)."""
        return {**asdict(self), "complete": self.complete}


def parse_shard(text: str) -> tuple[int, int]:
    """Parse `K/N` (0 <= K < N).

    Raises:
        ConfigError: anything else.
    """
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: expected K/N, e.g. 0/4") from None
    if not (n >= 1 and 0 <= k < n):
        raise ConfigError(f"--shard {text!r}: need 0 <= K < N")
    return k, n


def feature_cache_folder(cache_root: str | Path, identity: str, num_frames: int) -> Path:
    """The folder holding features of one encoder identity and frame count under `cache_root`
    (the folder the trainer reads with `train.cache_dir = cache_root`)."""
    return store_folder(Path(cache_root) / _FRAME_FEATURES,
                        frame_tag(identity, num_frames, _STRATEGY))


def dataset_media_items(dataset: RetrievalDataset) -> list[tuple[str, str]]:
    """`(media id, path)` per item, in item order; the id is the path string (the trainer's key).
    """
    paths = [str(dataset.media_path(i)) for i in range(len(dataset))]
    return list(zip(paths, paths))


def resolve_frame_encoder(name_or_path: str, device: str = "auto", **options) -> FrameEncoder:
    """The visual backbone of a trained mumur model folder, or any vision encoder spec.

    Args:
        name_or_path: a folder written by `RetrievalModel.save` (its `vision` encoder is used) or
            a name / folder / hub id for `mumur.load_encoder(..., modality="vision")`.
        device: `auto` (cuda when available), `cpu`, `cuda`, `cuda:1`...
        **options: encoder options for `load_encoder` (e.g. a scratch encoder's sizes).

    Returns:
        the `FrameEncoder`.

    Raises:
        EncoderLoadError, ModelLoadError: the spec cannot be loaded.
        ConfigError: a model folder without a vision encoder.
    """
    from ..encoders import load_encoder

    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    config = Path(name_or_path) / "config.json"
    vision = None
    if config.is_file() and '"mumur-model"' in config.read_text(encoding="utf-8"):
        from ..model import load_model

        vision = load_model(name_or_path).vision
        if vision is None:
            raise ConfigError(f"{name_or_path}: this model has no vision encoder")
    else:
        vision = load_encoder(name_or_path, modality="vision", **options)
    vision = vision.to(dev).eval()

    @torch.no_grad()
    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return vision(pixels.to(dev)).float()  # (n, D)

    return FrameEncoder(encode, vision.identity, int(getattr(vision, "image_size", 224)))


def frame_encode_fn(name_or_path: str, device: str = "auto", **options):
    """`resolve_frame_encoder(...).encode`: the encoder factory the Ray engine's actors call
    (`functools.partial(frame_encode_fn, model, **options)`)."""
    return resolve_frame_encoder(name_or_path, device, **options).encode


def tar_media_items(tars) -> list[tuple[str, TarMember]]:
    """`(id, TarMember)` per sample of WebDataset tar shards (`mumur.data.webdataset`)."""
    return [(str(m), m) for m in list_tar_media(tars)]


def run_feature_job(dataset: RetrievalDataset | Sequence[tuple[str, MediaSource]],
                    encoder: FrameEncoder, cache_root: str | Path, num_frames: int, *,
                    shard: tuple[int, int] = (0, 1), batch_size: int = 16,
                    num_workers: int | None = None, progress: bool = True,
                    extract=None) -> FeatureJobReport:
    """Encode this shard's items of `dataset` into the cache (resumable: cached items skipped).

    Args:
        dataset: the benchmark split, or `(id, source)` items (e.g. `tar_media_items`).
        encoder: from `resolve_frame_encoder` (or any `FrameEncoder`).
        cache_root: cache root; the folder is `feature_cache_folder(...)`.
        num_frames: T (uniformly sampled segment centres; images give one frame).
        shard: `(k, n)`: items with `index % n == k`.
        batch_size: files per encoder batch.
        num_workers: decode worker processes.
        progress: progress bar.
        extract: the engine (default: local; `mumur.data.ray_engine.RayFrameExtractor`).

    Returns:
        the `FeatureJobReport`.
    """
    folder = feature_cache_folder(cache_root, encoder.identity, num_frames)
    items = (dataset_media_items(dataset) if isinstance(dataset, RetrievalDataset)
             else list(dataset))
    k, n = shard
    report = cache_features(items, encoder.encode, folder, encoder.identity, num_frames,
                            _STRATEGY, image_size=encoder.image_size, batch_size=batch_size,
                            num_workers=num_workers, shard=shard, progress=progress,
                            extract=extract)
    cache = FeatureStore.for_frames(folder, encoder.identity, num_frames, _STRATEGY,
                                    create=False)
    cached = sum(1 for mid, _ in items if cache.has(mid))
    return FeatureJobReport(str(folder), (k, n), len(items),
                            sum(1 for i in range(len(items)) if i % n == k), report.computed,
                            report.skipped, list(report.errors), cached)


def verify_feature_cache(dataset: RetrievalDataset | Sequence[tuple[str, MediaSource]], identity: str, cache_root: str | Path,
                         num_frames: int) -> VerifyReport:
    """Check that every item of `dataset` is in the cache.

    Args:
        dataset: the benchmark split, or `(id, source)` items.
        identity: encoder identity the features were made with.
        cache_root: cache root.
        num_frames: T.

    Returns:
        the `VerifyReport` (an absent folder is an empty cache: everything missing).

    Raises:
        FeatureCacheMismatchError: the folder holds another identity or frame count.
    """
    folder = feature_cache_folder(cache_root, identity, num_frames)
    ids = [mid for mid, _ in (dataset_media_items(dataset) if isinstance(dataset, RetrievalDataset)
                              else dataset)]
    if not (folder / "cache.json").exists() and not any(folder.glob("shard-*.safetensors")):
        return VerifyReport(str(folder), len(ids), 0, ids, 0, None)
    cache = FeatureStore.for_frames(folder, identity, num_frames, _STRATEGY, create=False)
    stored = set(cache.ids())
    missing = [mid for mid in ids if mid not in stored]
    return VerifyReport(str(folder), len(ids), len(ids) - len(missing), missing,
                        len(stored - set(ids)), cache.dim)


def merge_feature_caches(sources: Sequence[str | Path], cache_root: str | Path, identity: str,
                         num_frames: int) -> int:
    """Copy the shard files of other cache roots (e.g. one per machine) into `cache_root`.

    Shard files are immutable and uniquely named, so merging is a copy of the files not yet
    present; opening the destination re-indexes them and rewrites its manifest. Every shard's tag
    is checked against `identity` / `num_frames` on the way.

    Args:
        sources: cache roots written by `run_feature_job` with the same encoder and frame count.
        cache_root: destination root.
        identity, num_frames: the features' tag.

    Returns:
        number of shard files copied.

    Raises:
        FeatureCacheError: a source has no cache folder for this identity / frame count.
        FeatureCacheMismatchError: a source holds other features.
    """
    dest = feature_cache_folder(cache_root, identity, num_frames)
    dest.mkdir(parents=True, exist_ok=True)
    copied = 0
    for root in sources:
        folder = feature_cache_folder(root, identity, num_frames)
        if not folder.is_dir():
            raise FeatureCacheError(folder, "no feature cache for this encoder and frame count")
        FeatureStore.for_frames(folder, identity, num_frames, _STRATEGY, create=False)  # tag
        for shard in sorted(folder.glob("shard-*.safetensors")):
            target = dest / shard.name
            if not target.exists():
                with atomic_path(target) as tmp:
                    shutil.copyfile(shard, tmp)
                copied += 1
    FeatureStore.for_frames(dest, identity, num_frames, _STRATEGY)  # re-index, write manifest
    return copied
