"""Typed errors. Each carries the offending input and the reason; the CLI prints one line."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatasetError",
    "EncoderLoadError",
    "FeatureCacheError",
    "FeatureCacheMismatchError",
    "IndexCorruptError",
    "IndexLockedError",
    "IndexMismatchError",
    "IndexWriteError",
    "MediaDecodeError",
    "MissingMediaError",
    "ModelLoadError",
    "MumurError",
    "TranslationError",
    "UnsupportedLanguageError",
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


class IndexLockedError(MumurError):
    """Another index run is writing the index folder."""


class IndexWriteError(MumurError):
    """A write to the index failed (disk full, read-only, I/O error); the last committed batch is
    kept and a rerun continues from it."""


class TranslationError(MumurError):
    """A machine-translation model cannot be used for the requested job."""


class UnsupportedLanguageError(TranslationError):
    """A language has no code in a translation model family (or is missing from the checkpoint)."""

    def __init__(self, language: str, family: str, reason: str = ""):
        self.language = language
        self.family = family
        self.reason = reason
        msg = f"language {language!r} is not supported by the {family} translation family"
        super().__init__(msg + (f": {reason}" if reason else ""))


class FeatureCacheError(MumurError):
    """A feature-cache folder is unreadable, or an item asked for is not in it."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"feature cache {self.path}: {reason}")


class FeatureCacheMismatchError(FeatureCacheError):
    """A feature cache was built with another encoder identity, frame count or sampling."""


class QueryError(MumurError):
    """A search query (text, k, type) is invalid."""

    def __init__(self, query, reason: str):
        self.query = query
        self.reason = reason
        shown = repr(query) if len(str(query)) <= 60 else repr(str(query)[:57] + "...")
        super().__init__(f"invalid query {shown}: {reason}")
