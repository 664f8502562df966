"""The index database's schema, connection settings and migrations between schema versions.

Layout (schema version 2):
    schema_version(version)                      one row
    meta(key PRIMARY KEY, value)                 model identity/source, dims, dtype, generation
    items(id PRIMARY KEY, path BLOB UNIQUE, display_path, media_type, size, mtime_ns, hash,
          n_frames, timestamps BLOB, pooled BLOB, state BLOB, indexed_at)
    failures(path BLOB PRIMARY KEY, size, mtime_ns, reason)   files that failed to decode
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from ..errors import IndexCorruptError

__all__ = ["DB_NAME", "SCHEMA_VERSION", "connect", "migrate", "schema_version_of"]

SCHEMA_VERSION = 3
DB_NAME = "index.sqlite"

_SCHEMA_V2 = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path BLOB NOT NULL UNIQUE,
    display_path TEXT NOT NULL,
    media_type TEXT NOT NULL CHECK (media_type IN ('image', 'video')),
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT,
    n_frames INTEGER NOT NULL,
    timestamps BLOB NOT NULL,
    pooled BLOB NOT NULL,
    state BLOB NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS failures (
    path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, reason TEXT NOT NULL
);
"""


def connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(db), timeout=60.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # In WAL mode NORMAL is crash-safe for process kills (committed pages sit in the OS cache);
    # only an OS crash / power loss can drop the last commits, never corrupt the database.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def _create_tables(conn: sqlite3.Connection) -> None:
    # Statement by statement: `executescript` would COMMIT the surrounding migration transaction.
    for statement in _SCHEMA_V2.split(";"):
        if statement.strip():
            conn.execute(statement)


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
    return row.fetchone() is not None


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def schema_version_of(conn: sqlite3.Connection) -> int:
    """Version of an opened database: 0 = pre-versioning layout (no schema_version table)."""
    if not _table_exists(conn, "schema_version"):
        return 0 if _table_exists(conn, "items") else -1
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Bring a database to `SCHEMA_VERSION` in one transaction; returns the version it had.

    Layouts:
        v0 (first development layout, no version table): `items(path TEXT PRIMARY KEY,
            media_type, size, mtime, n_frames, timestamps, pooled, state)` with float `mtime`
            seconds and integer `rowid` ids; `meta(key, value)`.
        v1: adds `schema_version` and `items.id INTEGER PRIMARY KEY`, keeps `path TEXT` and
            `mtime` seconds; no content hash, no `failures` table.
        v2: `path BLOB` (exact bytes, non-UTF-8 names), `display_path`, `mtime_ns`, `hash`,
            `indexed_at`, `failures`.
        v3: same tables; `meta.layout` says which stored arrays each query branch reads
            (`_layout_meta_v3`: an older index served one query space for every language).
    Migration keeps every embedded item and its id (so URLs `/api/media/{id}` stay valid);
    `hash` is left NULL and filled by the next index run without re-embedding.

    Args:
        conn: an open connection (autocommit mode).

    Returns:
        The version before migration (-1 for an empty database).
    """
    before = schema_version_of(conn)
    if before == SCHEMA_VERSION:
        return before
    if before > SCHEMA_VERSION:
        raise IndexCorruptError(
            f"index schema version {before} is newer than this mumur ({SCHEMA_VERSION}); upgrade"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        if before in (0, 1):
            id_col = "id" if "id" in _columns(conn, "items") else "rowid"
            conn.execute("ALTER TABLE items RENAME TO items_old")
            _create_tables(conn)
            rows = conn.execute(
                f"SELECT {id_col}, path, media_type, size, mtime, n_frames, timestamps, pooled,"
                " state FROM items_old"
            ).fetchall()
            now = time.time()
            for item_id, path, media_type, size, mtime, n_frames, ts, pooled, state in rows:
                raw = os.fsencode(path) if isinstance(path, str) else bytes(path)
                conn.execute(
                    "INSERT INTO items (id, path, display_path, media_type, size, mtime_ns, hash,"
                    " n_frames, timestamps, pooled, state, indexed_at)"
                    " VALUES (?,?,?,?,?,?,NULL,?,?,?,?,?)",
                    (item_id, raw, raw.decode("utf-8", "replace"), media_type, size,
                     round(float(mtime) * 1e9), n_frames, ts, pooled, state, now),
                )
            conn.execute("DROP TABLE items_old")
            conn.execute("DELETE FROM schema_version")
        elif before == 2:
            conn.execute("DELETE FROM schema_version")
        else:  # empty database
            _create_tables(conn)
        if before >= 0:
            _layout_meta_v3(conn, before)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before


def _layout_meta_v3(conn: sqlite3.Connection, before: int) -> None:
    """Describe a pre-v3 index's arrays in v3 terms: they serve one query branch (the one its
    identity names, else "ml": before v3 every query went through one text encoder). A mumur or
    CLIP model now serves each trained branch, so its identity changed and such an index is
    refused with a request to rebuild (`IndexStore.check_model`); other embedders keep working."""
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if "model_identity" not in meta or "layout" in meta:
        return
    branch = "en" if meta["model_identity"].endswith(":en") else "ml"
    state = json.loads(meta.get("state_layout") or "null") or [["state", int(meta["state_dim"])]]
    layout = {"branches": [branch], "state": state, "pooled": [["pooled", int(meta["dim"])]]}
    conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [
        ("layout", json.dumps(layout)), ("pooled_dim", meta["dim"]),
        ("layout_schema", str(before))])
