"""What the server loads once: the opened index (query model included) and the thumbnail cache."""

from __future__ import annotations

import hmac
import io
import logging
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..fsutil import atomic_write_bytes
from ..index import Index
from ..index.sharded import ShardedIndex, open_index
from ..index.store import ItemRecord
from ..rerank import Reranker, load_reranker

__all__ = ["THUMB_SIZE", "Resources", "load_resources"]


def _unchanged(st: os.stat_result, record: ItemRecord) -> bool:
    """A regular file with the indexed size and mtime (following links, as the scan did)."""
    return stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) == (record.size,
                                                                         record.mtime_ns)

THUMB_SIZE = 256
_log = logging.getLogger("mumur.serve")


@dataclass
class Resources:
    """Shared server state.

    Attributes:
        index: the opened `Index` (its matrix cache follows concurrent index runs), or a
            `ShardedIndex` over several index folders.
        thumb_dir: folder of cached JPEG thumbnails.
        api_key: required X-API-Key (None: open).
        reranker: a cross-encoder `rerank_k` requests use (`mumur serve --rerank`), or None.
    """

    index: Index | ShardedIndex
    thumb_dir: Path
    api_key: str | None = None
    reranker: Reranker | None = None
    _thumb_lock: threading.Lock = field(default_factory=threading.Lock)
    _cache_failures: set[str] = field(default_factory=set)

    def check_key(self, given: str | None) -> bool:
        """Constant-time API-key check (True when no key is configured)."""
        if self.api_key is None:
            return True
        # surrogatepass: a query string with undecodable bytes must not turn a 401 into a 500.
        return given is not None and hmac.compare_digest(
            given.encode("utf-8", "surrogatepass"), self.api_key.encode("utf-8", "surrogatepass"))

    def item(self, item_id: int) -> ItemRecord | None:
        """An indexed item whose file is still the file that was indexed, else None.

        The file at the recorded path must be a regular file with the recorded size and mtime
        (following links, as the scan did): a file replaced after indexing, say by a symlink to
        somewhere outside the indexed set, is not served until an index run has looked at it.
        """
        record = self.index.item(item_id)
        if record is None:
            return None
        try:
            st = os.stat(record.path)
        except (OSError, ValueError):
            return None
        return record if _unchanged(st, record) else None

    def open_item(self, item_id: int) -> tuple[ItemRecord, int] | None:
        """`item`'s check made on an open file: the record and a read-only descriptor of the
        very file that passed it (the caller closes it), or None.

        Serving from this descriptor closes the window between the check and the send: a file
        deleted or replaced after the check is still the checked file's content, never a 500.
        """
        record = self.index.item(item_id)
        if record is None:
            return None
        try:
            fd = os.open(record.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except (OSError, ValueError):
            return None
        if not _unchanged(os.fstat(fd), record):
            os.close(fd)
            return None
        return record, fd

    def thumbnail(self, record: ItemRecord) -> Path | bytes:
        """JPEG thumbnail (longest side `THUMB_SIZE`), cached by id + size + mtime.

        A cache that cannot be written (disk full, file-size limit, read-only or forbidden
        folder) does not fail the request: the JPEG is returned as bytes, uncached, and the
        reason logged once per reason; the next request tries the cache again.

        Returns:
            The cached file's path, or the JPEG's bytes when caching failed.

        Raises:
            MediaDecodeError: the file cannot be decoded any more.
        """
        target = self.thumb_dir / f"{record.id}-{record.size}-{record.mtime_ns}.jpg"
        if target.is_file():
            return target
        from ..media.decode import read_frames

        frames = read_frames(record.path, 1)
        image = frames.frames[0].convert("RGB")
        image.thumbnail((THUMB_SIZE, THUMB_SIZE))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        try:
            with self._thumb_lock:
                self.thumb_dir.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(target, buffer.getvalue())  # readers never see half a JPEG
        except OSError as exc:  # the temporary file is gone (atomic_path); serve from memory
            reason = exc.strerror or str(exc)
            if reason not in self._cache_failures:
                self._cache_failures.add(reason)
                _log.warning("thumbnail cache %s not writable (%s): serving thumbnails "
                             "uncached", self.thumb_dir, reason)
            return buffer.getvalue()
        return target


def load_resources(index_dir: str | os.PathLike | list, embedder=None, api_key: str | None = None,
                   thumb_dir: str | os.PathLike | None = None,
                   rerank: str | os.PathLike | None = None) -> Resources:
    """Open the index and load its query model (so the first search is not slow).

    Args:
        index_dir: index folder, or several (the shards of one index, searched as one).
        embedder: query embedder (default: the index's recorded model).
        api_key: require this X-API-Key on /api routes (health excepted).
        thumb_dir: thumbnail cache (default: INDEX/thumbs, of the first shard).
        rerank: an MLMM folder to serve `rerank_k` with (frame features in
            INDEX/rerank-features; one index, not shards).

    Returns:
        `Resources`.
    """
    index = open_index(index_dir, embedder=embedder)
    index.warm_up()  # load now: fail at startup, not on the first request
    first = index_dir if isinstance(index_dir, (str, os.PathLike)) else index_dir[0]
    if rerank is not None and first is not index_dir and len(index_dir) > 1:
        raise ValueError("a re-ranker serves one index, not shards")
    reranker = None if rerank is None else load_reranker(rerank,
                                                         Path(first) / "rerank-features")
    return Resources(index=index, thumb_dir=Path(thumb_dir or Path(first) / "thumbs"),
                     api_key=api_key, reranker=reranker)

