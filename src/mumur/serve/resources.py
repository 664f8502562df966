"""What the server loads once: the opened index (query model included) and the thumbnail cache."""

from __future__ import annotations

import hmac
import io
import os
import stat
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..fsutil import atomic_write_bytes
from ..index import Index
from ..index.store import ItemRecord
from ..rerank import Reranker, load_reranker

__all__ = ["THUMB_SIZE", "Resources", "load_resources"]

THUMB_SIZE = 256


@dataclass
class Resources:
    """Shared server state.

    Attributes:
        index: the opened `Index` (its matrix cache follows concurrent index runs).
        thumb_dir: folder of cached JPEG thumbnails.
        api_key: required X-API-Key (None: open).
        reranker: a cross-encoder `rerank_k` requests use (`mumur serve --rerank`), or None.
    """

    index: Index
    thumb_dir: Path
    api_key: str | None = None
    reranker: Reranker | None = None
    _thumb_lock: threading.Lock = field(default_factory=threading.Lock)

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
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (record.size,
                                                                            record.mtime_ns):
            return None
        return record

    def thumbnail(self, record: ItemRecord) -> Path:
        """JPEG thumbnail (longest side `THUMB_SIZE`), cached by id + size + mtime.

        Raises:
            MediaDecodeError: the file cannot be decoded any more.
        """
        target = self.thumb_dir / f"{record.id}-{record.size}-{record.mtime_ns}.jpg"
        if target.exists():
            return target
        from ..media.decode import read_frames

        frames = read_frames(record.path, 1)
        image = frames.frames[0].convert("RGB")
        image.thumbnail((THUMB_SIZE, THUMB_SIZE))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        with self._thumb_lock:
            self.thumb_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, buffer.getvalue())  # readers never see half a JPEG
        return target


def load_resources(index_dir: str | os.PathLike, embedder=None, api_key: str | None = None,
                   thumb_dir: str | os.PathLike | None = None,
                   rerank: str | os.PathLike | None = None) -> Resources:
    """Open the index and load its query model (so the first search is not slow).

    Args:
        index_dir: index folder.
        embedder: query embedder (default: the index's recorded model).
        api_key: require this X-API-Key on /api routes (health excepted).
        thumb_dir: thumbnail cache (default: INDEX/thumbs).
        rerank: an MLMM folder to serve `rerank_k` with (frame features in
            INDEX/rerank-features).

    Returns:
        `Resources`.
    """
    index = Index(index_dir, embedder=embedder)
    index.warm_up()  # load now: fail at startup, not on the first request
    reranker = None if rerank is None else load_reranker(rerank,
                                                         Path(index_dir) / "rerank-features")
    return Resources(index=index, thumb_dir=Path(thumb_dir or Path(index_dir) / "thumbs"),
                     api_key=api_key, reranker=reranker)

