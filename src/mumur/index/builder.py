"""Incremental, resumable indexing: scan -> plan -> decode/embed in batches -> commit per batch.

Incremental: a file whose size and mtime match its record is unchanged (no content read). When
size or mtime changed, its fingerprint (BLAKE2b of size + first and last MiB) decides: same
fingerprint -> only the bookkeeping is updated; different -> re-embedded under the same id.
Records under the scanned roots whose files are gone are removed.

One writer at a time: a run holds the folder's writer lock (`lock.py`) from start to end; a
second run refuses, or waits with `wait=True`.

Resumable: every batch (its items, its failures, the generation bump) is one SQLite transaction.
A run killed at any moment (even `kill -9`) leaves the last committed batch; the next run sees the
committed files as unchanged and embeds only the rest. Paths are UNIQUE, so nothing is duplicated.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..model.audio import AudioTower
from .ann import ANN_META_KEY, AnnSpec
from .audio import bind_audio, embed_audio
from .embedder import Embedder
from .loading import load_embedder
from .lock import writer_lock
from .scan import MediaFile, SkippedFile, display_path, fingerprint, scan_media
from .store import IndexStore, NewItem

__all__ = ["IndexPlan", "IndexReport", "build_index", "embedder_encode_fn", "plan_changes"]


@dataclass
class IndexPlan:
    """What an index run will do.

    Attributes:
        embed: (file, fingerprint, is_update) to decode and embed.
        touch: (id, size, mtime_ns, hash) records whose content is unchanged.
        unchanged: number of files left alone.
        remove: paths whose records go away.
        skipped: files left out with a reason.
    """

    embed: list[tuple[MediaFile, str, bool]] = field(default_factory=list)
    touch: list[tuple[int, int, int, str]] = field(default_factory=list)
    unchanged: int = 0
    remove: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


@dataclass
class IndexReport:
    """Summary of an index run (what `mumur index` prints).

    Attributes:
        indexed: new files embedded.
        updated: modified files re-embedded.
        unchanged: files skipped because they did not change.
        removed: records removed because their files are gone.
        skipped: files left out, with reasons.
        seconds: wall time.
        total: items in the index after the run.
        note: how the model was chosen when none was given for a new index, else None.
        backend: the vision tower's inference backend this run used (encoders/fast.py).
    """

    indexed: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    seconds: float = 0.0
    total: int = 0
    note: str | None = None
    backend: str = "fp32"

    def to_dict(self) -> dict:
        """JSON-ready summary."""
        return {
            "indexed": len(self.indexed),
            "updated": len(self.updated),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "skipped": [{"path": display_path(s.path), "reason": s.reason} for s in self.skipped],
            "total": self.total,
            "seconds": round(self.seconds, 3),
            "backend": self.backend,
            **({"note": self.note} if self.note else {}),
        }

    def summary(self, max_skipped: int = 20) -> str:
        """Human-readable summary with skip reasons."""
        head = (f"indexed {len(self.indexed)} new, re-embedded {len(self.updated)} modified, "
                f"{self.unchanged} unchanged, removed {len(self.removed)}, skipped "
                f"{len(self.skipped)}; {self.total} items in the index ({self.seconds:.1f} s)")
        lines = [self.note, head] if self.note else [head]
        for s in self.skipped[:max_skipped]:
            lines.append(f"  skipped {display_path(s.path)}: {s.reason}")
        if len(self.skipped) > max_skipped:
            lines.append(f"  ... and {len(self.skipped) - max_skipped} more skipped")
        return "\n".join(lines)


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def plan_changes(store: IndexStore, roots: list[str]) -> IndexPlan:
    """Scan `roots` and compare with the store.

    Args:
        store: the open index.
        roots: files/folders to index.

    Returns:
        An `IndexPlan`.
    """
    scan = scan_media(roots)
    records, failures = store.records(), store.failures()
    plan = IndexPlan(skipped=list(scan.skipped))
    keep = {f.path for f in scan.files}
    # A file that is there but unreadable right now keeps its record.
    keep |= {s.path for s in scan.skipped if s.reason == "permission denied"}
    for f in scan.files:
        record = records.get(f.path)
        if record is not None and record.size == f.size and record.mtime_ns == f.mtime_ns \
                and record.hash is not None:
            plan.unchanged += 1
            continue
        failed = failures.get(f.path)
        if failed is not None and failed[:2] == (f.size, f.mtime_ns):
            plan.skipped.append(SkippedFile(f.path, failed[2]))
            continue
        try:
            digest = fingerprint(f.path, f.size)
        except OSError as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else \
                f"cannot read: {exc.strerror or exc}"
            plan.skipped.append(SkippedFile(f.path, reason))
            if isinstance(exc, PermissionError):
                keep.add(f.path)
            else:
                keep.discard(f.path)
            continue
        if record is not None and record.hash in (digest, None) and record.size == f.size:
            # Touched (or migrated without a hash) but same content: no re-embedding.
            plan.touch.append((record.id, f.size, f.mtime_ns, digest))
            plan.unchanged += 1
        else:
            plan.embed.append((f, digest, record is not None))
    plan.remove = sorted(p for p in records if _under(p, scan.roots) and p not in keep)
    return plan


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="indexing", unit="file", disable=not enabled or total == 0,
                file=sys.stderr, dynamic_ncols=True)


def build_index(
    paths: list[str | os.PathLike],
    index_dir: str | os.PathLike,
    model: str | None = None,
    *,
    embedder: Embedder | None = None,
    text_model: str | None = None,
    batch_size: int = 16,
    num_workers: int = 2,
    fp16: bool = False,
    progress: bool = True,
    wait: bool = False,
    engine: str = "local",
    ray_options: dict | None = None,
    ann: AnnSpec | None = None,
    backend: str = "fp32",
    audio: str | os.PathLike | None = None,
) -> IndexReport:
    """Index media under `paths` into `index_dir` (create, update, or resume).

    Args:
        paths: files and/or folders (scanned recursively).
        index_dir: index folder (created when missing).
        model: trained mumur model folder or CLIP / SigLIP / open_clip checkpoint; default: the
            index's recorded model, and for a new index the catalogue's default
            (`catalogue.default_index_model`: a multilingual model with hub access, the shipped
            world stack offline; `IndexReport.note` says which and why).
        embedder: an already-built `Embedder` (overrides `model`; used by tests and the server).
        text_model: paired text encoder for a CLIP checkpoint (see `load_embedder`).
        batch_size: items per embedding batch and per committed transaction.
        num_workers: decode worker processes (0 = decode in this process).
        fp16: store arrays as float16 (fresh index only; halves size, scores change ~1e-3).
        progress: show a progress bar with ETA on stderr.
        wait: when another run is writing this index, wait for it (a message on stderr) instead
            of refusing; the run then finds that run's files unchanged.
        engine: "local" (DataLoader decode workers, the model in this process) or "ray" (Ray
            Data decode tasks and an actor pool holding the model, each actor loading it from
            the model source; `mumur.data.ray_engine`). Both commit here, per batch.
        ray_options: `RayFrameExtractor` options (`actors`, `gpus_per_actor`, `address`, ...).
        ann: record this FAISS first stage for the index (ann.py; `AnnSpec("exact")` clears a
            recorded one); None keeps what the index has.
        backend: the vision tower's CPU inference backend (`mumur.encoders.fast`: "fp32",
            "bf16", "int8", "onnx", or "auto": the fastest that passes the cosine >= 0.99 check
            against fp32 on this machine); chosen only when something is to be embedded.
        audio: a CLIP4VLA `AudioTower` folder (`mumur audio train`): store each video's sound
            (`mumur.index.audio`); None keeps what the index has (an audio-aware index goes on
            embedding sound with its recorded tower).

    Returns:
        `IndexReport`.

    Raises:
        IndexMismatchError: `model` differs from the model the index was built with.
        IndexLockedError: another run is writing this index and `wait` is False.
    """
    start = time.perf_counter()
    if ann is not None and ann.factory != "exact":
        ann.check()  # ConfigError before anything is written
    with writer_lock(index_dir, wait=wait, on_wait=lambda msg: print(msg, file=sys.stderr)):
        report = _build_locked(paths, index_dir, model, embedder, text_model, batch_size,
                               num_workers, fp16, progress, engine, ray_options or {}, ann,
                               backend, audio)
    report.seconds = time.perf_counter() - start
    return report


def _build_locked(paths, index_dir, model, embedder, text_model, batch_size, num_workers, fp16,
                  progress, engine, ray_options, ann=None, backend="fp32",
                  audio=None) -> IndexReport:
    from ..data.features import extract_frame_features

    if engine not in ("local", "ray"):
        raise ConfigError(f"engine {engine!r}: local or ray")
    if engine == "ray" and embedder is not None:
        raise ConfigError("the ray engine loads the model in each actor: give a model source, "
                          "not an embedder object")
    store = IndexStore(index_dir, create=True)
    note = None
    try:
        if embedder is None:
            meta = store.meta()
            source = model or meta.get("model_source")
            if source is None:  # a new index: the catalogue's default (hub) or the world stack
                from .catalogue import default_index_model

                chosen, note = default_index_model()
                source, text_model = chosen.model, text_model or chosen.text_model
            if model is None:  # the recorded pair; a given --model never inherits it
                text_model = text_model or meta.get("text_source") or None
            embedder = load_embedder(source, text_model=text_model,
                                     num_frames=int(meta.get("num_frames", 12)))
        store.bind_model(embedder, dtype="float16" if fp16 else "float32")
        tower = bind_audio(store, AudioTower.load(audio) if audio else None,
                           os.fspath(audio) if audio else None)
        if ann is not None:
            store.set_meta(ANN_META_KEY, "" if ann.factory == "exact" else ann.to_json())
        plan = plan_changes(store, [os.fspath(p) for p in paths])
        report = IndexReport(unchanged=plan.unchanged, skipped=list(plan.skipped),
                             note=note)
        store.remove_paths(plan.remove)
        report.removed = plan.remove
        store.touch_items(plan.touch)

        todo = {f.path: (f, digest, is_update) for f, digest, is_update in plan.embed}
        # Ray actors load their own fp32 model: the backend applies to the local engine.
        if todo and engine == "local" and backend != "fp32" and getattr(
                getattr(embedder, "model", None), "vision", None) is not None:
            from ..encoders.fast import accelerate

            report.backend = accelerate(embedder.model.vision, backend).backend
        bar = _progress(len(todo), progress)
        try:
            extract = extract_frame_features
            if engine == "ray":
                from ..data.ray_engine import RayFrameExtractor

                factory = functools.partial(embedder_encode_fn, embedder.source,
                                            getattr(embedder, "text_source", None),
                                            embedder.num_frames)
                extract = RayFrameExtractor(factory, **ray_options)
            batches = extract(
                list(todo), embedder.encode_frames, num_frames=embedder.num_frames,
                strategy=embedder.frame_sampling, batch_size=batch_size, num_workers=num_workers,
                image_size=embedder.image_size,
                preprocess=getattr(embedder, "pixel_preprocessor", None),
            )
            for batch in batches:
                _commit_batch(store, embedder, batch, todo, report, tower)
                bar.update(len(batch.paths) + len(batch.errors))
        finally:
            bar.close()
        report.total = store.counts()["items"]
    finally:
        store.close()
    return report


def embedder_encode_fn(source: str, text_model: str | None, num_frames: int, device: str):
    """The frame encoder of `load_embedder(source, ...)` on `device`: what each Ray actor of
    `build_index(..., engine="ray")` builds once."""
    embedder = load_embedder(source, text_model=text_model, num_frames=num_frames)
    embedder.model.to(device)
    return embedder.encode_frames


def _commit_batch(store: IndexStore, embedder: Embedder, batch, todo, report: IndexReport,
                  tower=None):
    items: list[NewItem] = []
    if len(batch.paths):
        mask = np.asarray(batch.mask, dtype=bool)  # (B, T)
        features = np.asarray(batch.features, np.float32)
        states = embedder.frame_states(features, mask, [str(p) for p in batch.paths])
        sounds = [None] * len(batch.paths) if tower is None else embed_audio(
            tower, [str(p) for p in batch.paths], [todo[p][0].media_type for p in batch.paths],
            features, mask)
        for i, path in enumerate(batch.paths):
            f, digest, _ = todo[path]
            t = int(mask[i].sum())
            items.append(NewItem(
                path=path, media_type=f.media_type, size=f.size, mtime_ns=f.mtime_ns, hash=digest,
                timestamps=np.asarray(batch.timestamps[i][:t], np.float32),
                pooled=states.pooled[i], state=states.state[i, :t], audio=sounds[i],
            ))
    failures = []
    for path, reason in _batch_errors(batch):
        f = todo[path][0]
        failures.append((path, f.size, f.mtime_ns, reason))
    store.add_items(items, failures)
    for item in items:
        (report.updated if todo[item.path][2] else report.indexed).append(item.path)
    report.skipped.extend(SkippedFile(p, r) for p, _, _, r in failures)


def _batch_errors(batch) -> list[tuple[str, str]]:
    errors = batch.errors
    if isinstance(errors, dict):
        return [(str(p), str(r)) for p, r in errors.items()]
    out = []
    for err in errors:
        if isinstance(err, tuple):
            out.append((str(err[0]), str(err[1])))
        else:  # a MediaDecodeError
            out.append((err.path, err.reason))
    return out
