"""Index storage: one SQLite database in WAL mode holding metadata and feature arrays as BLOBs.

Why SQLite (see docs/index-storage.md): embedded, no server, atomic multi-row transactions (a
batch of items, its generation bump and its removals commit together or not at all, so `kill -9`
can never leave half an item), WAL lets readers (the web server) keep reading a consistent
snapshot while an index run writes, and the file format is stable and inspectable.

The tables, their migrations and the connection settings are in `mumur.index.schema`.

Arrays are little-endian float32 or float16 (`meta.dtype`): `pooled` (P,) (one stage-1 vector per
distinct branch vector), `state` (n_frames, Ds), `timestamps` (n_frames,) always float32;
`meta.layout` (`IndexLayout` JSON) names their parts. Schema version 3 (tables unchanged since 2).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError, IndexMismatchError, IndexWriteError
from .records import MAX_ITEM_ID, MEDIA_TYPES, ItemRecord, NewItem, StoredArrays, assemble_arrays
from .schema import DB_NAME, connect, migrate, schema_version_of

# The records are defined in `records.py`; re-exported here, where callers have always found them.
__all__ = ["MAX_ITEM_ID", "MEDIA_TYPES", "IndexStore", "ItemRecord", "NewItem", "StoredArrays"]


def _vision_record_json(embedder) -> str:
    """The vision tower's record a text search loads instead of the tower (sorted JSON)."""
    return json.dumps(embedder.vision_record(), sort_keys=True)


class IndexStore:
    """The on-disk index: open or create `DIR/index.sqlite`.

    Thread-safe (one connection guarded by a lock) so a FastAPI thread pool can share it; other
    processes may open the same folder concurrently (WAL: one writer, many readers).

    Args:
        root: index folder.
        create: create the folder and database when missing (else `IndexCorruptError`).
    """

    def __init__(self, root: str | os.PathLike, create: bool = False):
        self.root = Path(root)
        self.db_path = self.root / DB_NAME
        if not self.db_path.exists():
            if not create:
                raise IndexCorruptError(f"no index at {self.root} (missing {DB_NAME})")
            self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = connect(self.db_path)
            migrate(self._conn)
            self._conn.execute("SELECT count(*) FROM items").fetchone()
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"cannot open index {self.db_path}: {exc}") from exc

    # -- metadata ---------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def meta(self) -> dict[str, str]:
        """All metadata key/value pairs."""
        with self._lock:
            return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def generation(self) -> int:
        """Counter bumped by every committed change (search caches compare it)."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def model_identity(self) -> str | None:
        """Identity of the model the index was built with, None for a fresh index."""
        return self.meta().get("model_identity")

    def bind_model(self, embedder, dtype: str = "float32") -> None:
        """Record the embedder on a fresh index, or check it matches the recorded one.

        Args:
            embedder: an `Embedder`.
            dtype: "float32" or "float16" array storage (fresh index only).

        Raises:
            IndexMismatchError: the index was built with a different model.
        """
        if dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be float32 or float16, got {dtype!r}")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
                if "model_identity" in meta:
                    self._conn.execute("COMMIT")
                    self.check_model(embedder, meta)
                    if "vision_record" not in meta and hasattr(embedder, "vision_record"):
                        # An index from before the record: add it, so text search can skip
                        # the vision tower from now on (autocommit: one atomic statement).
                        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                           ("vision_record", _vision_record_json(embedder)))
                    return
                values = {
                    "model_identity": embedder.identity,
                    "model_source": embedder.source,
                    "text_source": getattr(embedder, "text_source", None) or "",
                    "dim": str(embedder.dim),
                    "pooled_dim": str(embedder.layout.pooled_dim),
                    "state_dim": str(embedder.layout.state_dim),
                    "layout": embedder.layout.to_json(),
                    "num_frames": str(embedder.num_frames),
                    "dtype": dtype,
                    "generation": "0",
                    "created_at": str(time.time()),
                }
                if hasattr(embedder, "vision_record"):
                    values["vision_record"] = _vision_record_json(embedder)
                self._conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def set_meta(self, key: str, value: str) -> None:
        """Record one metadata value (an index option such as the ANN spec)."""
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def check_model(self, embedder, meta: dict | None = None) -> None:
        """Raise `IndexMismatchError` unless `embedder` is the index's model (identity) and needs
        the arrays the index stores (layout)."""
        meta = meta if meta is not None else self.meta()
        stored = meta.get("model_identity")
        if stored is None:
            return
        old = meta.get("layout_schema")
        rebuild = (f" The index was written by an older mumur (schema version {old}) that stored "
                   "one query branch for every language; rebuild it (`mumur index PATH... --index "
                   "NEW_DIR --model ...`) to search each language through its branch."
                   if old is not None else "")
        if stored != embedder.identity:
            raise IndexMismatchError(
                f"index {self.root} was built with model {meta.get('model_source')!r} "
                f"(identity {stored}); the given model has identity {embedder.identity}. Query "
                "and index embeddings would not be comparable: search with the same model, or "
                f"build a new index in another folder.{rebuild}"
            )
        if json.loads(meta.get("layout", "null")) != json.loads(embedder.layout.to_json()):
            raise IndexMismatchError(
                f"index {self.root} stores arrays {meta.get('layout')}; the model needs "
                f"{embedder.layout.to_json()}.{rebuild or ' Rebuild the index.'}"
            )

    # -- bookkeeping ------------------------------------------------------------------------
    def records(self) -> dict[str, ItemRecord]:
        """All items keyed by path (no arrays)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, path, display_path, media_type, size, mtime_ns, hash FROM items"
            ).fetchall()
        records = (ItemRecord(r[0], os.fsdecode(bytes(r[1])), *r[2:]) for r in rows)
        return {record.path: record for record in records}

    def failures(self) -> dict[str, tuple[int, int, str]]:
        """Files that failed before: path -> (size, mtime_ns, reason)."""
        with self._lock:
            rows = self._conn.execute("SELECT path, size, mtime_ns, reason FROM failures")
            return {os.fsdecode(bytes(r[0])): (r[1], r[2], r[3]) for r in rows.fetchall()}

    def item(self, item_id: int) -> ItemRecord | None:
        """The record of one item id, or None (also for ids SQLite cannot hold)."""
        if not 0 <= int(item_id) <= MAX_ITEM_ID:
            return None
        with self._lock:
            r = self._conn.execute(
                "SELECT id, path, display_path, media_type, size, mtime_ns, hash FROM items"
                " WHERE id=?", (int(item_id),),
            ).fetchone()
        return None if r is None else ItemRecord(r[0], os.fsdecode(bytes(r[1])), *r[2:])

    def counts(self) -> dict[str, int]:
        """{"items", "images", "videos"}."""
        with self._lock:
            rows = dict(self._conn.execute(
                "SELECT media_type, count(*) FROM items GROUP BY media_type").fetchall())
        images, videos = rows.get("image", 0), rows.get("video", 0)
        return {"items": images + videos, "images": images, "videos": videos}

    def info(self) -> dict:
        """`mumur info --json`: items, images, videos, model, schema_version (+ extras)."""
        meta = self.meta()
        return {
            **self.counts(),
            "model": meta.get("model_source"),
            "schema_version": self.schema_version(),
            "model_identity": meta.get("model_identity"),
            "branches": json.loads(meta["layout"])["branches"] if "layout" in meta else [],
            "dtype": meta.get("dtype"),
            "generation": int(meta.get("generation", 0)),
            "audio": meta.get("audio_source") or None,  # CLIP4VLA tower (mumur.index.audio)
        }

    def schema_version(self) -> int:
        """The database's schema version."""
        with self._lock:
            return schema_version_of(self._conn)

    # -- writes (each call is one atomic transaction that bumps the generation) --------------
    def _write(self, fn) -> None:
        """Run `fn(conn)` and the generation bump as one transaction.

        Raises:
            IndexWriteError: SQLite or the OS refused the write (disk full, read-only file,
                permission denied, I/O error); the transaction is rolled back, so the index
                holds exactly the earlier commits.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    fn(self._conn)
                    self._conn.execute(
                        "INSERT INTO meta VALUES ('generation', '1') ON CONFLICT(key) DO UPDATE"
                        " SET value = CAST(value AS INTEGER) + 1"
                    )
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            except (sqlite3.OperationalError, OSError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                raise IndexWriteError(
                    f"cannot write index {self.db_path}: {reason}; what was committed before is "
                    "kept, rerun the same command once this is fixed") from exc

    def _dtype(self) -> np.dtype:
        return np.dtype(self.meta().get("dtype", "float32")).newbyteorder("<")

    def add_items(self, items: list[NewItem], failures: list[tuple[str, int, int, str]] = ()):
        """Insert or replace embedded items (and record decode failures) in one transaction.

        A path already present keeps its id (its arrays are replaced), so re-embedding a modified
        file never creates a duplicate and never changes its URL.

        Args:
            items: embedded files.
            failures: (path, size, mtime_ns, reason) for files that failed to decode; an
                existing record of such a path is removed (its embedding is stale).
        """
        dtype, now = self._dtype(), time.time()

        def write(conn: sqlite3.Connection) -> None:
            for it in items:
                raw = os.fsencode(it.path)
                state = np.asarray(it.state, dtype=dtype)  # (T, Ds)
                conn.execute(
                    "INSERT INTO items (path, display_path, media_type, size, mtime_ns, hash,"
                    " n_frames, timestamps, pooled, state, indexed_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET"
                    " media_type=excluded.media_type, size=excluded.size,"
                    " mtime_ns=excluded.mtime_ns, hash=excluded.hash, n_frames=excluded.n_frames,"
                    " timestamps=excluded.timestamps, pooled=excluded.pooled,"
                    " state=excluded.state, indexed_at=excluded.indexed_at",
                    (raw, raw.decode("utf-8", "replace"), it.media_type, it.size, it.mtime_ns,
                     it.hash, state.shape[0],
                     np.asarray(it.timestamps, dtype="<f4").tobytes(),
                     np.asarray(it.pooled, dtype=dtype).tobytes(), state.tobytes(), now),
                )
                conn.execute("DELETE FROM failures WHERE path=?", (raw,))
                if it.audio is not None:  # an audio-aware index (mumur.index.audio)
                    conn.execute(
                        "INSERT OR REPLACE INTO audio (item_id, outcome, source, vector)"
                        " SELECT id, ?, ?, ? FROM items WHERE path=?",
                        (it.audio.outcome, it.audio.source,
                         np.asarray(it.audio.vector, dtype="<f4").tobytes(), raw))
            for path, size, mtime_ns, reason in failures:
                # The file changed into something undecodable: its old embedding is stale.
                conn.execute("DELETE FROM items WHERE path=?", (os.fsencode(path),))
                conn.execute("INSERT OR REPLACE INTO failures VALUES (?,?,?,?)",
                             (os.fsencode(path), size, mtime_ns, reason))

        self._write(write)

    def execute_write(self, sql: str) -> None:
        """Run one statement (a table creation) as its own transaction."""
        self._write(lambda conn: conn.execute(sql))

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of one read-only statement."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def touch_items(self, updates: list[tuple[int, int, int, str]]) -> None:
        """Update (id, size, mtime_ns, hash) of items whose content did not change."""
        if updates:
            self._write(lambda conn: conn.executemany(
                "UPDATE items SET size=?, mtime_ns=?, hash=? WHERE id=?",
                [(s, m, h, i) for i, s, m, h in updates]))

    def remove_paths(self, paths: list[str]) -> None:
        """Delete items (and failure records) by path in one transaction."""
        if paths:
            raws = [(os.fsencode(p),) for p in paths]

            def write(conn: sqlite3.Connection) -> None:
                conn.executemany("DELETE FROM items WHERE path=?", raws)
                conn.executemany("DELETE FROM failures WHERE path=?", raws)

            self._write(write)

    # -- reads for search -------------------------------------------------------------------
    def load_arrays(self) -> StoredArrays:
        """Read every item's arrays into padded matrices (one consistent WAL snapshot)."""
        meta_dtype = self._dtype()
        with self._lock:
            self._conn.execute("BEGIN")  # one read transaction = one snapshot
            try:
                meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
                rows = self._conn.execute(
                    "SELECT id, display_path, media_type, n_frames, timestamps, pooled, state"
                    " FROM items ORDER BY id"
                ).fetchall()
            finally:
                self._conn.execute("COMMIT")
        return assemble_arrays(meta, rows, meta_dtype)

    def integrity_check(self) -> str:
        """SQLite's `PRAGMA integrity_check` result ("ok" when healthy)."""
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0]
