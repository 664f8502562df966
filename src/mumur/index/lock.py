"""One writer per index folder: an advisory lock on `INDEX/index.lock`, held for a whole index run.

SQLite already keeps concurrent writers from corrupting the database, but two runs started at
once would both plan the same files and both embed them (the second overwriting the first's
rows). The lock makes the second run refuse at once with `IndexLockedError`, or wait for the
first to finish (`wait=True`, `mumur index --wait`) and then find the files unchanged.

POSIX record locks (`fcntl.lockf`): the kernel drops them when the holding process exits, however
it exits (`kill -9` included), so a stale lock file never blocks anyone; unlike `flock` they are
not inherited by forked decode workers, which may outlive a killed parent by a few seconds. They
do not exclude two holders in one process, so a per-process table does that. Readers (search,
the server) never take the lock. Without `fcntl` (Windows) only the per-process lock applies.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import IndexLockedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["LOCK_NAME", "writer_lock"]

LOCK_NAME = "index.lock"
_held: dict[str, threading.Lock] = {}
_held_guard = threading.Lock()


def _process_lock(path: Path) -> threading.Lock:
    with _held_guard:
        return _held.setdefault(os.path.realpath(path), threading.Lock())


def _holder(fd: int) -> str:
    text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    return text or "pid unknown"


@contextlib.contextmanager
def writer_lock(root: str | os.PathLike, wait: bool = False,
                on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the index folder's writer lock for the duration of the block.

    Args:
        root: index folder (created when missing).
        wait: block until the other writer finishes instead of refusing.
        on_wait: called once with a one-line message before blocking.

    Raises:
        IndexLockedError: another run holds the lock and `wait` is False.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    local = _process_lock(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        if not _acquire(fd, local, blocking=False):
            message = (f"{root} is being written by another mumur index run "
                       f"({_holder(fd)})")
            if not wait:
                raise IndexLockedError(f"{message}; wait for it to finish or pass --wait")
            if on_wait is not None:
                on_wait(f"{message}; waiting for it to finish")
            _acquire(fd, local, blocking=True)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)  # who holds it, for the message
            yield
        finally:
            if fcntl is not None:
                fcntl.lockf(fd, fcntl.LOCK_UN)
            local.release()
    finally:
        os.close(fd)


def _acquire(fd: int, local: threading.Lock, blocking: bool) -> bool:
    if not local.acquire(blocking=blocking):
        return False
    if fcntl is None:
        return True
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):  # EAGAIN / EACCES: held by another process
        local.release()
        return False
    except BaseException:
        local.release()
        raise
    return True
