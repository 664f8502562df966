"""The Ray engine of frame extraction: Ray Data on a Ray cluster (or a local one).

The job is a Ray Data pipeline over the media list:

    from_items(sources)                     one row per file or WebDataset sample
      .map_batches(_DecodeBatch)            CPU tasks: decode + preprocess (`decode_media`)
      .map_batches(_EncodeActor, concurrency=actors, num_gpus=...)
                                            an actor pool, each actor holding the model once
                                            (one per GPU, or CPU actors), runs `encode_decoded`
      .iter_batches()                       the driver receives `FeatureBatch`es

so the caller is the writer, exactly as with the local engine: `cache_features` puts the batches
into the shared `FeatureStore` (flushing a shard every `flush_every` rows, skipping cached items
when restarted) and `mumur.index.build_index` commits them to the index per batch. Decoding and
encoding use the local engine's functions (`mumur.data.frame_batches`), so both engines give the
same features.

`RayFrameExtractor` has `extract_frame_features`'s call signature, except that the encoder is
built inside each actor by `encoder_factory(device)`: the `encode_frames` argument of the call (a
function on the driver) is not shipped to the cluster.

Ray is an optional dependency (`pip install 'mumur[scale]'`), imported when a job runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from ..media.transforms import CLIP_MEAN, CLIP_STD, ClipPreprocess
from .frame_batches import EncodeFn, FeatureBatch, collate_decoded, decode_media, encode_decoded
from .webdataset import TarMember

__all__ = ["RayFrameExtractor", "source_rows"]


def source_rows(sources: Sequence) -> list[dict]:
    """Dataset rows of media sources (files or `TarMember`s): index, path and the member's
    place in its tar (empty for plain files)."""
    rows = []
    for i, src in enumerate(sources):
        member = src if isinstance(src, TarMember) else None
        rows.append({"index": i, "path": member.tar if member else str(src),
                     "name": member.name if member else "",
                     "offset": member.offset if member else -1,
                     "size": member.size if member else -1})
    return rows


def _row_source(batch: dict, r: int):
    if batch["name"][r]:
        return TarMember(str(batch["path"][r]), str(batch["name"][r]), int(batch["offset"][r]),
                         int(batch["size"][r]))
    return str(batch["path"][r])


class _DecodeBatch:
    """Ray Data task: rows of sources -> padded pixels `(B, T, 3, S, S)`, counts, timestamps,
    errors ("" when the file decoded)."""

    def __init__(self, num_frames: int, strategy: str, preprocess: ClipPreprocess, seed: int,
                 decode_options: dict):
        self.args = (num_frames, strategy, preprocess, seed, decode_options)

    def __call__(self, batch: dict) -> dict:
        t, size = self.args[0], self.args[2].image_size
        n = len(batch["index"])
        pixels = np.zeros((n, t, 3, size, size), np.float32)  # (B, T, 3, S, S)
        timestamps = np.zeros((n, t), np.float32)  # (B, T)
        counts = np.zeros(n, np.int64)
        errors, paths = [], []
        for r in range(n):
            out = decode_media(_row_source(batch, r), int(batch["index"][r]), *self.args)
            paths.append(out["path"])
            errors.append(out.get("error", ""))
            if "pixels" in out:
                c = len(out["timestamps"])
                pixels[r, :c] = out["pixels"].numpy()
                timestamps[r, :c] = out["timestamps"]
                counts[r] = c
        return {"index": batch["index"], "source": np.asarray(paths, dtype=object),
                "pixels": pixels, "count": counts, "timestamps": timestamps,
                "error": np.asarray(errors, dtype=object)}


class _EncodeActor:
    """Ray Data actor: holds the encoder (built once by `factory(device)`) and turns decoded rows
    into frame features `(B, T, D)`, mask and timestamps (rows of failed files stay zero)."""

    def __init__(self, factory: Callable[[str], EncodeFn], num_frames: int, device: str,
                 threads: int):
        if device == "cpu":
            torch.set_num_threads(threads)  # as many as the CPUs the actor reserved
        self.encode = factory(device)
        self.num_frames = num_frames
        self.dim: int | None = None

    def __call__(self, batch: dict) -> dict:
        n, t = len(batch["index"]), self.num_frames
        decoded = []
        for r in range(n):
            item = {"index": r, "path": str(batch["source"][r])}
            if batch["error"][r]:
                item["error"] = str(batch["error"][r])
            else:
                c = int(batch["count"][r])
                item.update(pixels=torch.from_numpy(np.ascontiguousarray(batch["pixels"][r, :c])),
                            timestamps=batch["timestamps"][r, :c])
            decoded.append(item)
        features = encode_decoded(collate_decoded(t)(decoded), self.encode, t)
        if len(features.paths):
            self.dim = features.features.shape[-1]
        elif self.dim is None:  # every file of the actor's first batch failed: probe D once
            size = batch["pixels"].shape[-1]
            with torch.no_grad():
                self.dim = int(self.encode(torch.zeros(1, 3, size, size)).shape[-1])
        out_features = np.zeros((n, t, self.dim), np.float32)  # (B, T, D)
        mask = np.zeros((n, t), bool)  # (B, T)
        if len(features.paths):
            out_features[features.indices] = features.features
            mask[features.indices] = features.mask
        return {"index": batch["index"], "source": batch["source"], "features": out_features,
                "mask": mask, "timestamps": batch["timestamps"], "error": batch["error"]}


def _feature_batch(out: dict) -> FeatureBatch:
    ok = np.asarray([not e for e in out["error"]], dtype=bool)
    sources = [str(s) for s in out["source"]]
    return FeatureBatch(
        paths=[s for s, good in zip(sources, ok) if good],
        features=np.asarray(out["features"][ok], np.float32),
        mask=np.asarray(out["mask"][ok], bool),
        timestamps=np.asarray(out["timestamps"][ok], np.float32),
        errors=[(s, str(e)) for s, e, good in zip(sources, out["error"], ok) if not good],
        indices=np.asarray(out["index"][ok], np.int64))


class RayFrameExtractor:
    """Frame extraction on Ray (module docstring); call it as `extract_frame_features`.

    Args:
        encoder_factory: `device -> encode_frames` (`(n, 3, S, S)` -> `(n, D)`), run once in each
            actor; a module-level function or `functools.partial` of one (it is pickled).
        actors: encoder actors (one per GPU on a GPU cluster).
        gpus_per_actor: GPUs each actor reserves (0: CPU actors; the actor's device is `cuda`
            when > 0).
        cpus_per_actor: CPUs each encoder actor reserves.
        decode_cpus: CPUs each decode task reserves.
        address: Ray cluster address (`auto`, `ray://host:10001`); None: the running Ray
            session, else `RAY_ADDRESS`, else a local cluster on this machine.
    """

    def __init__(self, encoder_factory: Callable[[str], EncodeFn], *, actors: int = 1,
                 gpus_per_actor: float = 0.0, cpus_per_actor: float = 1.0,
                 decode_cpus: float = 1.0, address: str | None = None):
        if actors < 1:
            raise ValueError(f"actors must be >= 1, got {actors}")
        self.encoder_factory = encoder_factory
        self.actors, self.gpus_per_actor = int(actors), float(gpus_per_actor)
        self.cpus_per_actor, self.decode_cpus = float(cpus_per_actor), float(decode_cpus)
        self.address = address

    def __call__(self, paths: Sequence, encode_frames=None, num_frames: int = 12,
                 strategy: str = "uniform", image_size: int = 224, batch_size: int = 16,
                 num_workers: int | None = None, seed: int = 0, on_error: str = "collect",
                 prefetch_factor: int = 2, decode_options: dict | None = None,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 progress: bool = False,
                 preprocess: ClipPreprocess | None = None) -> Iterator[FeatureBatch]:
        """Batches of `FeatureBatch` (any order; `indices` give each row's input position).
        `num_workers` and `prefetch_factor` are the local engine's and are ignored here; decode
        parallelism is the cluster's CPUs."""
        import ray

        if on_error not in ("collect", "raise"):
            raise ValueError(f"on_error must be 'collect' or 'raise', got {on_error!r}")
        if not len(paths):
            return
        if not ray.is_initialized():
            if self.address is None and "RAY_ADDRESS" not in os.environ:
                # A local cluster: Ray raises its workers' niceness by 15 by default, which
                # starves them on a busy machine; keep this process's priority instead.
                os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = progress
        preprocess = preprocess or ClipPreprocess(image_size, mean, std)
        device = "cuda" if self.gpus_per_actor > 0 else "cpu"
        ds = ray.data.from_items(source_rows(paths))
        ds = ds.map_batches(_DecodeBatch(num_frames, strategy, preprocess, seed,
                                         decode_options or {}),
                            batch_size=batch_size, batch_format="numpy",
                            num_cpus=self.decode_cpus,
                            # SPREAD puts decode tasks on every node; the actors' DEFAULT
                            # (packed) keeps Ray from fusing decoding into the actors
                            scheduling_strategy="SPREAD")
        threads = max(1, int(self.cpus_per_actor))
        ds = ds.map_batches(_EncodeActor, fn_constructor_args=(self.encoder_factory, num_frames,
                                                               device, threads),
                            batch_size=batch_size, batch_format="numpy",
                            compute=ray.data.ActorPoolStrategy(size=self.actors),
                            num_gpus=self.gpus_per_actor,
                            num_cpus=self.cpus_per_actor, scheduling_strategy="DEFAULT")
        for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
            batch = _feature_batch(out)
            if on_error == "raise" and batch.errors:
                from ..errors import MediaDecodeError

                raise MediaDecodeError(*batch.errors[0])
            yield batch
