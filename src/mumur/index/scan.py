"""Recursive media scan and cheap file fingerprints.

Paths are kept as `str` with Python's `surrogateescape` for non-UTF-8 names (what `os.scandir`
returns on Linux), stored as their exact bytes (`os.fsencode`) and shown with U+FFFD replacements
(`display_path`). Symlinked folders are followed once: a folder reached again (same device and
inode) is a loop and is skipped with a reason; the same file reached through two names is indexed
once.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from dataclasses import dataclass, field

__all__ = [
    "HASH_CHUNK",
    "MediaFile",
    "ScanResult",
    "SkippedFile",
    "display_path",
    "fingerprint",
    "scan_media",
]

HASH_CHUNK = 1 << 20  # bytes read from each end of a file for its fingerprint


@dataclass(frozen=True)
class MediaFile:
    """One media file found by the scan.

    Attributes:
        path: absolute path (str, surrogate-escaped where the name is not UTF-8).
        media_type: "image" or "video".
        size: bytes.
        mtime_ns: modification time in nanoseconds.
    """

    path: str
    media_type: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SkippedFile:
    """A file (or folder) left out, with the reason shown in the summary."""

    path: str
    reason: str


@dataclass
class ScanResult:
    """Outcome of `scan_media`: media files in a stable order plus what was skipped."""

    roots: list[str]
    files: list[MediaFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def display_path(path: str | bytes) -> str:
    """A printable (valid UTF-8) form of a path: undecodable bytes become U+FFFD."""
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    return raw.decode("utf-8", errors="replace")


def fingerprint(path: str, size: int, chunk: int = HASH_CHUNK) -> str:
    """Content fingerprint: BLAKE2b of the size, the first and the last `chunk` bytes.

    Only computed when size or mtime changed (or for a new file), so an unchanged index run
    reads no file content. A change confined to the middle of a large file that also keeps its
    size is caught by the mtime check, not by this hash; the hash exists to recognise files that
    were merely touched or copied back unchanged.

    Args:
        path: the file.
        size: its size in bytes (from the scan's stat).
        chunk: bytes read from each end.

    Returns:
        Hex digest (32 hex characters).

    Raises:
        OSError: the file cannot be read (e.g. PermissionError).
    """
    digest = hashlib.blake2b(str(size).encode(), digest_size=16)
    with open(path, "rb") as handle:
        digest.update(handle.read(chunk))
        if size > chunk:
            handle.seek(max(chunk, size - chunk))
            digest.update(handle.read(chunk))
    return digest.hexdigest()


def _media_type_of(path: str) -> str | None:
    from ..media.decode import media_type_of

    return media_type_of(path)


def _stat_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "broken symlink or vanished file"
    if exc.errno == errno.EACCES or isinstance(exc, PermissionError):
        return "permission denied"
    return f"cannot stat: {exc.strerror or exc}"


def scan_media(paths: list[str | os.PathLike]) -> ScanResult:
    """Find media files under `paths` (files or folders, recursively).

    Args:
        paths: files and/or folders.

    Returns:
        `ScanResult` with absolute paths sorted per folder; non-media files are ignored silently,
        unusable entries (missing roots, symlink loops, broken links, empty files, permission
        errors on folders) are listed in `skipped` with a reason.
    """
    roots = [os.path.abspath(os.fsdecode(p)) for p in paths]
    result = ScanResult(roots=roots)
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: dict[tuple[int, int], str] = {}

    def add_file(path: str, st: os.stat_result) -> None:
        media_type = _media_type_of(path)
        if media_type is None:
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_files:
            twin = display_path(seen_files[key])
            result.skipped.append(SkippedFile(path, f"same file as {twin}"))
            return
        seen_files[key] = path
        if st.st_size == 0:
            result.skipped.append(SkippedFile(path, "empty file (0 bytes)"))
            return
        result.files.append(MediaFile(path, media_type, st.st_size, st.st_mtime_ns))

    def walk(folder: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            result.skipped.append(SkippedFile(folder, "symlink loop (folder already scanned)"))
            return
        seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            result.skipped.append(SkippedFile(folder, _stat_reason(exc)))
            return
        for entry in entries:
            try:
                est = os.stat(entry.path)  # follows symlinks
            except OSError as exc:
                if _media_type_of(entry.path) is not None or entry.is_symlink():
                    result.skipped.append(SkippedFile(entry.path, _stat_reason(exc)))
                continue
            if _is_dir(est):
                walk(entry.path, est)
            elif _is_file(est):
                add_file(entry.path, est)

    for root in roots:
        try:
            st = os.stat(root)
        except OSError as exc:
            reason = "not found" if exc.errno == errno.ENOENT else _stat_reason(exc)
            result.skipped.append(SkippedFile(root, reason))
            continue
        if _is_dir(st):
            walk(root, st)
        elif _is_file(st):
            if _media_type_of(root) is None:
                result.skipped.append(SkippedFile(root, "not a supported media type"))
            else:
                add_file(root, st)
    return result



def _is_dir(st: os.stat_result) -> bool:
    return stat.S_ISDIR(st.st_mode)


def _is_file(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)
