"""Persistent translation cache: SQLite in WAL mode, one transaction per batch.

A row is keyed by (model identity, generation options, source language, target language, source
text), so a rerun, or a run restarted after a crash, never sends the same text through the same
model twice; a changed model or changed decoding options (beam size, length limit) miss the cache.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

__all__ = ["TranslationCache", "default_cache_path", "options_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS translations (
    model TEXT NOT NULL,
    options TEXT NOT NULL,
    source_lang TEXT NOT NULL,
    target_lang TEXT NOT NULL,
    source_text TEXT NOT NULL,
    translation TEXT NOT NULL,
    PRIMARY KEY (model, options, source_lang, target_lang, source_text)
) WITHOUT ROWID
"""

# SQLite limits the number of bound parameters per statement (999 on old builds).
_LOOKUP_CHUNK = 500


def default_cache_path() -> Path:
    """`$MUMUR_CACHE_DIR/translations.sqlite`, else `~/.cache/mumur/translations.sqlite`."""
    root = os.environ.get("MUMUR_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mumur"
    return Path(root) / "translations.sqlite"


def options_key(options: dict) -> str:
    """Canonical JSON of generation options (sorted keys) used as part of the cache key."""
    return json.dumps(options, sort_keys=True, separators=(",", ":"))


class TranslationCache:
    """A (model, options, source, target, text) -> translation store on disk.

    Args:
        path: SQLite file (created with its folder), or `":memory:"` for a process-local cache.
    """

    def __init__(self, path: str | os.PathLike = ":memory:"):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        if self.path != ":memory:":
            # WAL: readers never block the writer and a crash loses at most the open transaction.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._conn.commit()

    def get_many(self, model: str, options: dict, source_lang: str, target_lang: str,
                 texts: Iterable[str]) -> dict[str, str]:
        """Cached translations of `texts`.

        Args:
            model: the translator's identity string.
            options: generation options that change outputs (see `options_key`).
            source_lang: canonical source language tag.
            target_lang: canonical target language tag.
            texts: source texts.

        Returns:
            `{text: translation}` for the texts found (missing texts are absent).
        """
        unique = list(dict.fromkeys(texts))
        okey = options_key(options)
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(unique), _LOOKUP_CHUNK):
                chunk = unique[start:start + _LOOKUP_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    "SELECT source_text, translation FROM translations WHERE model=? AND options=? "
                    f"AND source_lang=? AND target_lang=? AND source_text IN ({marks})",
                    (model, okey, source_lang, target_lang, *chunk)).fetchall()
                found.update(rows)
        return found

    def put_many(self, model: str, options: dict, source_lang: str, target_lang: str,
                 pairs: Iterable[tuple[str, str]]) -> None:
        """Store `(source_text, translation)` pairs in one committed transaction.

        Args:
            model: the translator's identity string.
            options: generation options (see `options_key`).
            source_lang: canonical source language tag.
            target_lang: canonical target language tag.
            pairs: `(source_text, translation)`.
        """
        okey = options_key(options)
        rows = [(model, okey, source_lang, target_lang, src, tgt) for src, tgt in pairs]
        with self._lock, self._conn:  # the connection context manager commits (or rolls back)
            self._conn.executemany(
                "INSERT OR REPLACE INTO translations VALUES (?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM translations").fetchone()[0]

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
