"""Shared readers for benchmark annotation files and the media-lookup options of every adapter.

The annotation files of the standard benchmarks come in many small formats: id lists with or
without a final newline, CSV with CRLF line endings, gzipped sentence files, `<cap_id> <caption>`
caption files (NRCCR/LECCR), JSON. The readers here handle all of them in one place so that each
adapter only states its protocol.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import ConfigError, DatasetError
from ..dataset import Caption, RetrievalDataset

__all__ = [
    "MediaOptions",
    "ResolvingDataset",
    "build_dataset",
    "find_file",
    "open_text",
    "parse_languages",
    "pop_media_options",
    "read_caption_file",
    "read_csv_rows",
    "read_id_list",
    "read_json",
    "read_lines",
    "reject_unknown_options",
    "require_split",
    "video_id_from_cap_id",
]


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a UTF-8 text file for reading; `.gz` files are decompressed transparently.

    Universal newlines are *off* (`newline=""`): callers that need lines use `read_lines`, which
    strips `\\n` and `\\r\\n`; the csv module needs `newline=""` to see quoted line breaks.

    Args:
        path: file path (`*.gz` is read through gzip).

    Returns:
        A text stream. A leading UTF-8 BOM is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path}")
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def read_lines(path: str | Path, skip_empty: bool = True) -> list[str]:
    """Lines of a text file without their line ending (`\\n` or `\\r\\n`).

    A file with or without a newline after its last line gives the same list.

    Args:
        path: file path, plain or `.gz`.
        skip_empty: drop lines that are empty after stripping the line ending.

    Returns:
        The lines in file order.
    """
    with open_text(path) as f:
        text = f.read()
    # Only \n and \r\n end a line: str.splitlines would also split on U+2028, \x1c, ... that can
    # sit inside a caption.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()  # the newline after the last line, when there is one
    return [line for line in lines if line.strip()] if skip_empty else lines


def read_id_list(path: str | Path) -> list[str]:
    """Ids, one per line (surrounding whitespace stripped), in file order.

    Args:
        path: file path, plain or `.gz`.

    Returns:
        The ids; a duplicate id raises DatasetError (split lists never repeat an id).
    """
    ids = [line.strip() for line in read_lines(path)]
    seen: set[str] = set()
    for i, item in enumerate(ids):
        if item in seen:
            raise DatasetError(f"{path}: id {item!r} repeated (line {i + 1})")
        seen.add(item)
    return ids


def read_caption_file(path: str | Path, sep: str | None = " ") -> list[tuple[str, str]]:
    """Read `<cap_id><sep><caption>` lines (NRCCR/LECCR `*.caption.txt`, COCO-CN files).

    Args:
        path: file path, plain or `.gz`.
        sep: separator between id and caption; the line is split at its first occurrence only
            (captions contain spaces). `None` splits at the first run of any whitespace.

    Returns:
        `(cap_id, caption)` pairs in file order, caption stripped.
    """
    pairs = []
    for n, line in enumerate(read_lines(path), start=1):
        parts = line.split(sep, 1)
        if len(parts) != 2 or not parts[1].strip():
            raise DatasetError(
                f"{path}: line {n} is not '<cap_id>{'<whitespace>' if sep is None else repr(sep)}"
                f"<caption>': {line[:80]!r}")
        pairs.append((parts[0].strip(), parts[1].strip()))
    return pairs


def video_id_from_cap_id(cap_id: str) -> str:
    """NRCCR/LECCR `getVideoId`: the text before the first `#`, with `.jpg`/`.mp4` removed.

    Args:
        cap_id: e.g. `video7010#enc2zh#3`.

    Returns:
        The media id, e.g. `video7010`.
    """
    vid = cap_id.split("#", 1)[0]
    for ext in (".jpg", ".mp4"):
        vid = vid.removesuffix(ext)
    return vid


def read_csv_rows(path: str | Path, required: Sequence[str] = ()) -> list[dict[str, str]]:
    """Rows of a CSV file with a header, as dicts (csv module: quoting, CRLF, commas in fields).

    Args:
        path: file path, plain or `.gz`.
        required: column names that must be in the header.

    Returns:
        One dict per data row, keyed by the header names.
    """
    with open_text(path) as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {missing}; header is {header}")
        return list(reader)


def read_json(path: str | Path) -> Any:
    """Parse a JSON file (plain or `.gz`), raising DatasetError on malformed content.

    Args:
        path: file path.

    Returns:
        The decoded object.
    """
    with open_text(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{path}: invalid JSON ({e})") from e


def parse_languages(value, known: Sequence[str]) -> list[str] | None:
    """Normalise a `languages` option (None, "en,de" or a list) and check the codes.

    Args:
        value: the option value.
        known: the accepted language codes.

    Returns:
        The list of codes, or None when `value` is None.
    """
    if value is None:
        return None
    langs = [x.strip() for x in value.split(",")] if isinstance(value, str) else list(value)
    unknown = [x for x in langs if x not in known]
    if unknown or not langs:
        raise ConfigError(f"unknown or empty languages {unknown or langs}; known: {', '.join(known)}")
    return langs


def find_file(root: Path, candidates: Iterable[str], what: str) -> Path:
    """First existing `root/candidate` (a candidate may end without `.gz`; `.gz` is also tried).

    Args:
        root: annotation folder.
        candidates: relative paths in order of preference.
        what: human-readable name of the file for the error message.

    Returns:
        The path found.
    """
    tried = []
    for rel in candidates:
        for name in (rel, rel + ".gz"):
            p = root / name
            tried.append(name)
            if p.is_file():
                return p
    raise DatasetError(f"{what} not found under {root}; tried: {', '.join(tried)}")


def require_split(benchmark: str, split: str, allowed: Sequence[str]) -> None:
    """Raise ConfigError unless `split` is one of `allowed`."""
    if split not in allowed:
        raise ConfigError(f"{benchmark}: split {split!r} is not available; use one of "
                          f"{', '.join(allowed)}")


def reject_unknown_options(benchmark: str, options: dict) -> None:
    """Raise ConfigError naming any option the adapter did not consume."""
    if options:
        raise ConfigError(f"{benchmark}: unknown option(s) {', '.join(sorted(options))}")


@dataclass(frozen=True)
class MediaOptions:
    """Where an adapter looks for media files.

    Args:
        media_root: folder holding the media files.
        media_pattern: format string giving a file name from an id (`{id}.mp4`), or None when the
            adapter keeps the file names recorded in the annotations.
        check_media: whether the loader checks every file exists (raises MissingMediaError).
    """

    media_root: Path
    media_pattern: str | None
    check_media: bool


def pop_media_options(root: Path, options: dict, subfolders: Sequence[str],
                      pattern: str | None) -> MediaOptions:
    """Take `media_root`, `media_pattern` and `check_media` out of `options`.

    The default media root is the first of `root/<subfolder>` that exists, else `root`.

    Args:
        root: annotation folder of the benchmark.
        options: adapter options (consumed keys are removed).
        subfolders: conventional media subfolders of this benchmark, in order of preference.
        pattern: the adapter's default file-name pattern.

    Returns:
        The resolved MediaOptions.
    """
    media_root = options.pop("media_root", None)
    if media_root is None:
        media_root = next((root / s for s in subfolders if (root / s).is_dir()), root)
    media_pattern = options.pop("media_pattern", None) or pattern
    if media_pattern is not None and "{id}" not in media_pattern:
        raise ConfigError(f"media_pattern {media_pattern!r} must contain '{{id}}'")
    return MediaOptions(Path(media_root), media_pattern, bool(options.pop("check_media", False)))


class ResolvingDataset(RetrievalDataset):
    """A RetrievalDataset whose media lookup falls back to `<stem>.*` when the file is absent.

    Used where the extension on disk may differ from the recorded one (DiDeMo's mixed and
    missing extensions, videos re-encoded to `.mp4`). The glob runs lazily, per call, only when
    the recorded or pattern path does not exist.
    """

    def media_path(self, i: int) -> Path:
        path = super().media_path(i)
        if path.exists():
            return path
        name = path.name
        stem = name[: name.rfind(".")] if "." in name else name
        matches = sorted(glob.glob(glob.escape(str(path.parent / stem)) + ".*"))
        return Path(matches[0]) if matches else path


def build_dataset(name: str, split: str, items: list[str], captions: list[Caption],
                  media: MediaOptions, *, media_paths: list[str] | None = None,
                  default_media_type: str = "video", extra: list[dict] | None = None,
                  info: dict | None = None, resolve_extensions: bool = False) -> RetrievalDataset:
    """Assemble the dataset, validate it, and check media files when asked.

    Args:
        name: benchmark name.
        split: split name.
        items: unique media ids in file order.
        captions: `(item_index, language, text)` triples.
        media: the options from `pop_media_options`.
        media_paths: per-item file names relative to the media root (overrides the pattern).
        default_media_type: "video" or "image".
        extra: per-item metadata parallel to `items`.
        info: dataset-level facts (counts of excluded records, warnings, ...).
        resolve_extensions: use `ResolvingDataset` (fallback to `<stem>.*`).

    Returns:
        The RetrievalDataset.
    """
    if len(set(items)) != len(items):
        raise DatasetError(f"{name}/{split}: media ids are not unique")
    if not items:
        raise DatasetError(f"{name}/{split}: no items found in the annotation files")
    cls = ResolvingDataset if resolve_extensions else RetrievalDataset
    ds = cls(name=name, split=split, items=items, captions=captions,
             media_root=media.media_root, media_pattern=media.media_pattern or "{id}",
             media_paths=media_paths, default_media_type=default_media_type, extra=extra,
             info=dict(info or {}))
    if media.check_media:
        ds.check_media()
    return ds
