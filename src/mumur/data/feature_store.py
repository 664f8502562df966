"""One crash-safe, sharded store for every cached feature: frames of media items, texts (captions,
visual descriptions).

A store folder::

    cache.json                   manifest: format, version, the tag, dim, items, shards
                                 (name -> rows)
    shard-<16 hex>.safetensors   one array per field, rows in the order of the metadata `ids`;
                                 the metadata also repeats the tag

Rows are keyed by strings (a media id, or `text_key(text)`) and hold a fixed set of named arrays,
the schema: frames store `features (T, D)`, `mask (T,)`, `timestamps (T,)`; texts store
`features (D,)`. The tag says what made the features (encoder identity, frame count, sampling
strategy, ...); opening a folder with another tag is refused, and `store_folder` gives each tag its
own folder under a shared root.

Crash safety: shards are immutable and written whole under a temporary name, then renamed into
place (`mumur.fsutil`); the manifest likewise. Opening a store also indexes shards the manifest
does not list yet (a crash between the two renames, or another process writing to the same
folder), so concurrent writers lose nothing and a killed writer loses only rows it had not
flushed: a rerun computes just those.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from typing_extensions import Self

from ..errors import FeatureCacheError, FeatureCacheMismatchError
from ..fsutil import atomic_path, atomic_write_json

__all__ = [
    "FeatureStore",
    "as_float32_array",
    "folder_name",
    "frame_tag",
    "store_folder",
    "text_key",
    "text_tag",
]

_FORMAT = "mumur.feature_cache"
_VERSION = 1
_MANIFEST = "cache.json"
_MANIFEST_FIELDS = ("format", "version", "dim", "items", "shards")
# What reading a damaged shard can raise (JSONDecodeError is a ValueError).
_SHARD_ERRORS = (OSError, ValueError, KeyError, SafetensorError)

# field -> (dtype, row shape); None marks a size fixed by the first rows stored (e.g. D).
Schema = Mapping[str, tuple[type, tuple[int | None, ...]]]


def folder_name(*parts) -> str:
    """16 hex digits naming a folder for a tuple of settings (sha1 of their strings)."""
    return hashlib.sha1("\x00".join(map(str, parts)).encode("utf-8")).hexdigest()[:16]


def store_folder(root: str | Path, tag: Mapping[str, str | int]) -> Path:
    """The folder under `root` for the store of `tag` (one rule for every writer and reader)."""
    return Path(root) / folder_name(*tag.values())


def frame_tag(identity: str, num_frames: int, strategy: str = "uniform") -> dict:
    """Tag of frame features: encoder identity, frames per video, sampling strategy."""
    return {"identity": identity, "num_frames": int(num_frames), "strategy": strategy}


def text_tag(identity: str) -> dict:
    """Tag of text features (captions, descriptions): the text encoder's identity."""
    return {"identity": identity, "input": "text"}


def text_key(text: str) -> str:
    """Store key of a text: sha1 of its UTF-8 bytes."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def as_float32_array(values) -> np.ndarray:
    """A torch tensor (any device, any float dtype) or array-like as a float32 numpy array."""
    if hasattr(values, "detach"):  # a tensor; duck-typed so the store imports without torch
        return values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


class FeatureStore:
    """Cached features on disk: safetensors shards plus a `cache.json` manifest (module docstring).

    Open with `FeatureStore.for_frames(...)`, `FeatureStore.for_texts(...)` or the general
    `FeatureStore.open(...)`, not the constructor.
    """

    def __init__(self, root: Path, tag: Mapping[str, str | int], schema: Schema,
                 shard_size: int, max_loaded_shards: int):
        self.root = root
        self.tag = dict(tag)
        self.schema = {name: (np.dtype(dtype), tuple(shape))
                       for name, (dtype, shape) in schema.items()}
        self.shard_size = int(shard_size)
        self.shapes: dict[str, tuple[int, ...]] | None = None  # row shapes, once known
        self._where: dict[str, tuple[str, int]] = {}  # key -> (shard file, row)
        self._shards: list[str] = []
        self._pending: list[tuple[list[str], dict[str, np.ndarray]]] = []
        self._pending_keys: set[str] = set()
        self._loaded: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self._max_loaded = max_loaded_shards

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, root, tag: Mapping[str, str | int], schema: Schema, *, create: bool = True,
             shard_size: int = 1024, max_loaded_shards: int = 8) -> FeatureStore:
        """Open (or create) the store in folder `root`.

        Args:
            root: store folder.
            tag: what made the features; must equal the tag the folder was written with.
            schema: field -> (dtype, row shape), None for sizes set by the first rows stored.
            create: create the folder and manifest when missing (else FeatureCacheError).
            shard_size: rows buffered before `put` writes a shard.
            max_loaded_shards: shards kept in memory by `get`.

        Returns:
            The store.

        Raises:
            FeatureCacheMismatchError: the folder holds features of another tag or schema.
            FeatureCacheError: the manifest or a shard is unreadable.
        """
        root = Path(root)
        store = cls(root, tag, schema, shard_size, max_loaded_shards)
        manifest = root / _MANIFEST
        if not manifest.exists():
            if not create:
                raise FeatureCacheError(root, "no cache.json (not a feature cache)")
            root.mkdir(parents=True, exist_ok=True)
        else:
            data = store._read_manifest()
            store._check_tag({k: v for k, v in data.items() if k not in _MANIFEST_FIELDS},
                             manifest)
        store._scan()
        if create:
            store._write_manifest()
        return store

    @classmethod
    def for_frames(cls, root, identity: str, num_frames: int, strategy: str = "uniform",
                   **options) -> FeatureStore:
        """Open the store of frame features `features (T, D)` float32, `mask (T,)` bool (True for
        real frames; an image has one) and `timestamps (T,)` float32 seconds, per media id.

        Args:
            root: store folder.
            identity: the vision encoder's identity.
            num_frames: T.
            strategy: the frame sampling strategy.
            **options: `create`, `shard_size`, `max_loaded_shards` (see `open`).
        """
        t = int(num_frames)
        schema = {"features": (np.float32, (t, None)), "mask": (np.bool_, (t,)),
                  "timestamps": (np.float32, (t,))}
        return cls.open(root, frame_tag(identity, t, strategy), schema, **options)

    @classmethod
    def for_texts(cls, root, identity: str, **options) -> FeatureStore:
        """Open the store of text features `features (D,)` float32, keyed by `text_key(text)`
        (captions and visual descriptions alike).

        Args:
            root: store folder.
            identity: the text encoder's identity.
            **options: `create`, `shard_size`, `max_loaded_shards` (see `open`).
        """
        return cls.open(root, text_tag(identity), {"features": (np.float32, (None,))}, **options)

    def _check_tag(self, found: Mapping, where) -> None:
        for key in [*self.tag, *(k for k in found if k not in self.tag)]:
            want, got = self.tag.get(key), found.get(key)
            if want is None or got is None or str(got) != str(want):
                raise FeatureCacheMismatchError(
                    where, f"built with {key}={got!r}, asked for {key}={want!r}; "
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

    def _check_shapes(self, shapes: dict[str, tuple[int, ...]], where) -> None:
        """Refuse rows whose fields or shapes differ from the schema or from the stored rows."""
        if set(shapes) != set(self.schema):
            raise FeatureCacheMismatchError(where, f"fields {sorted(shapes)} differ from "
                                            f"{sorted(self.schema)}")
        for name, (_, template) in self.schema.items():
            want = self.shapes[name] if self.shapes else template
            shape = shapes[name]
            if len(shape) != len(want) or any(w is not None and w != s
                                              for w, s in zip(want, shape)):
                raise FeatureCacheMismatchError(
                    where, f"{name} rows of shape {shape}, the store holds {want}")
        if self.shapes is None:
            self.shapes = {name: tuple(shape) for name, shape in shapes.items()}

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
            path = self.root / name
            try:
                with safe_open(str(path), framework="numpy") as f:
                    meta = dict(f.metadata() or {})
                    shapes = {k: tuple(f.get_slice(k).get_shape()[1:]) for k in f.keys()}
                shard_keys = json.loads(meta.pop("ids"))
            except _SHARD_ERRORS as e:
                raise FeatureCacheError(path, f"unreadable shard: {e!r}") from None
            self._check_tag(meta, path)
            self._check_shapes(shapes, path)
            for row, key in enumerate(shard_keys):
                self._where[key] = (name, row)  # later shards win
            self._shards.append(name)

    def _write_manifest(self) -> None:
        rows: dict[str, int] = {}
        for name, _ in self._where.values():
            rows[name] = rows.get(name, 0) + 1
        data = {"format": _FORMAT, "version": _VERSION, **self.tag, "dim": self.dim,
                "items": len(self._where),
                "shards": {name: rows.get(name, 0) for name in self._shards}}
        atomic_write_json(self.root / _MANIFEST, data, indent=1)

    # -- reading ---------------------------------------------------------------------------

    @property
    def dim(self) -> int | None:
        """Last size of the `features` rows (None while the store is empty or has no `features`
        field, e.g. the sound store of `mumur.data.audio_features`)."""
        return self.shapes["features"][-1] if self.shapes and "features" in self.shapes else None

    def __len__(self) -> int:
        """Rows stored on disk."""
        return len(self._where)

    def __contains__(self, key: str) -> bool:
        return self.has(key)

    def has(self, key: str) -> bool:
        """True when `key` is stored (flushed or pending)."""
        return key in self._where or key in self._pending_keys

    def ids(self) -> list[str]:
        """Keys stored on disk."""
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

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored rows of `keys`, in that order (flushes pending rows first).

        Args:
            keys: row keys.

        Returns:
            field -> `(len(keys), *row shape)` array (e.g. frames: `features (n, T, D)`,
            `mask (n, T)`, `timestamps (n, T)`).

        Raises:
            FeatureCacheError: some keys are not stored.
        """
        self.flush()
        missing = [k for k in keys if k not in self._where]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
            raise FeatureCacheError(self.root, f"{len(missing)} ids not cached (e.g. {shown})")
        out = {}
        for name, (dtype, template) in self.schema.items():
            shape = self.shapes[name] if self.shapes else tuple(s or 0 for s in template)
            out[name] = np.zeros((len(keys), *shape), dtype=dtype)
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for out_row, key in enumerate(keys):
            name, row = self._where[key]
            by_shard.setdefault(name, []).append((out_row, row))
        for name, pairs in by_shard.items():
            arrays = self._load_shard(name)
            out_rows, rows = (np.asarray(x) for x in zip(*pairs))
            for field, values in out.items():
                values[out_rows] = arrays[field][rows]
        return out

    # -- writing ---------------------------------------------------------------------------

    def put(self, keys: Sequence[str], **fields) -> None:
        """Add rows; a shard is written once `shard_size` rows are pending.

        Args:
            keys: B row keys.
            **fields: every schema field as a `(B, *row shape)` array (e.g. frames:
                `features=(B, T, D)`, `mask=(B, T)`, `timestamps=(B, T)`).

        Raises:
            ValueError: fields missing, or shapes that break the schema.
            FeatureCacheMismatchError: a row size differs from the rows already stored.
        """
        keys = [str(k) for k in keys]
        if not keys:
            return
        if set(fields) != set(self.schema):
            raise ValueError(f"put needs the fields {sorted(self.schema)}, got {sorted(fields)}")
        arrays = {name: np.asarray(fields[name], dtype=dtype)
                  for name, (dtype, _) in self.schema.items()}
        for name, (_, template) in self.schema.items():
            shape = arrays[name].shape
            if (len(shape) != 1 + len(template) or shape[0] != len(keys)
                    or any(w is not None and w != s for w, s in zip(template, shape[1:]))):
                want = ", ".join(str(s or "*") for s in (len(keys), *template))
                raise ValueError(f"{name} must be ({want}), got {shape}")
        self._check_shapes({name: a.shape[1:] for name, a in arrays.items()}, self.root)
        self._pending.append((keys, arrays))
        self._pending_keys.update(keys)
        if len(self._pending_keys) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write pending rows as one shard (atomically) and update the manifest."""
        if not self._pending:
            return
        from safetensors.numpy import save_file

        keys = [k for ks, _ in self._pending for k in ks]
        arrays = {name: np.ascontiguousarray(np.concatenate([a[name] for _, a in self._pending]))
                  for name in self.schema}
        meta = {k: str(v) for k, v in self.tag.items()}
        meta["ids"] = json.dumps(keys)
        with atomic_path(self.root / f"shard-{uuid.uuid4().hex[:16]}.safetensors") as tmp:
            save_file(arrays, str(tmp), metadata=meta)
        self._pending.clear()
        self._pending_keys.clear()
        # Re-scan so shards written meanwhile by other processes are listed in the manifest too.
        self._scan()
        self._write_manifest()

    def close(self) -> None:
        """Flush pending rows."""
        self.flush()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
