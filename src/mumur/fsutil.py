"""Crash-safe writes: every file or folder mumur keeps for later goes through these helpers.

New content is written under a temporary sibling name (same folder, so the rename stays on one
file system), fsync'ed, then moved over the target with `os.replace`, which is atomic: a reader,
or a process killed at any instant, sees the old content or the new, never a mix. The folder is
fsync'ed after the rename so that the new name itself survives a power loss.

Temporary names start with a dot and keep the target's suffix (`.NAME.tmp-1a2b3c4d.SUFFIX`):
globs such as `shard-*.safetensors` never match a half-written file, and writers that choose the
format by suffix (`np.save`, PyAV) still see the right one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_directory",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
]


def _sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.stem}.{tag}-{uuid.uuid4().hex[:8]}{path.suffix}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(path: Path) -> None:
    # Some platforms (Windows) cannot open a folder, some file systems refuse to sync one; the
    # rename has happened either way, only its durability across a power loss is weaker there.
    with contextlib.suppress(OSError):
        _fsync(path)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Give a writer a temporary path; on a clean exit its file replaces `path` atomically.

    On an exception the temporary file is removed and `path` keeps its old content (or stays
    absent).

    Args:
        path: the file to (re)write; its folder must exist.
        fsync: flush the new file and the folder to disk before returning (crash and power-loss
            safety); False only for data that is cheap to rebuild.

    Yields:
        The temporary path to write (the writer creates the file).
    """
    path = Path(path)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        if fsync:
            _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_folder(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Replace the file `path` with `data` atomically (see `atomic_path`)."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = True) -> None:
    """Replace the file `path` with `text` (UTF-8) atomically (see `atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | os.PathLike, data: Any, *, indent: int | None = None,
                      sort_keys: bool = False, fsync: bool = True) -> None:
    """Replace the file `path` with `data` as UTF-8 JSON (non-ASCII kept, newline-terminated)
    atomically (see `atomic_path`)."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
    atomic_write_text(path, text + "\n", fsync=fsync)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """Give a writer an empty temporary folder; on a clean exit it replaces folder `path` whole.

    An existing `path` is renamed aside, the new folder renamed into place, then the old one
    removed. A crash between those two renames leaves the complete old folder under a hidden
    `.NAME.old-XXXXXXXX` name and no `path`, never a half-written `path`. On an exception the
    temporary folder is removed and `path` is untouched.

    Args:
        path: the folder to (re)write; its parent is created when missing.
        fsync: flush every new file and the parent folder to disk before returning.

    Yields:
        The temporary folder (it exists and is empty).
    """
    path = Path(path)
    tmp = _sibling(path, "tmp")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if fsync:
            for file in tmp.rglob("*"):
                if file.is_file():
                    _fsync(file)
        if path.exists():
            old = _sibling(path, "old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if fsync:
        _fsync_folder(path.parent)
