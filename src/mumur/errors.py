"""Typed errors. Each carries the offending input and the reason; the CLI prints one line."""

from __future__ import annotations

__all__ = [
    "MumurError",
    "MediaDecodeError",
    "EncoderLoadError",
    "ModelLoadError",
    "DatasetError",
    "MissingMediaError",
    "IndexMismatchError",
    "IndexCorruptError",
    "ConfigError",
]


class MumurError(Exception):
    """Base class for every error mumur raises on purpose."""


class MediaDecodeError(MumurError):
    """A media file could not be decoded (corrupt, truncated, empty, unsupported)."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode {self.path}: {reason}")


class EncoderLoadError(MumurError):
    """An encoder name or folder could not be resolved or loaded."""


class ModelLoadError(MumurError):
    """A saved mumur model folder is missing files or has an unknown config."""


class ConfigError(MumurError):
    """A configuration file or option is invalid."""


class DatasetError(MumurError):
    """An annotation file is missing or malformed."""


class MissingMediaError(DatasetError):
    """Media files referenced by a dataset are not on disk."""

    def __init__(self, missing: list[str], total: int, hint: str = ""):
        self.missing = missing
        self.total = total
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        msg = f"{len(missing)} of {total} media files are missing (e.g. {shown})"
        super().__init__(msg + (f"; {hint}" if hint else ""))


class IndexMismatchError(MumurError):
    """The query model does not match the model the index was built with."""


class IndexCorruptError(MumurError):
    """An index folder cannot be opened."""
