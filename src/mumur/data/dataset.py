"""The one dataset shape every adapter returns (real benchmarks and the synthetic world)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import MissingMediaError

__all__ = ["RetrievalDataset", "Caption"]

# (item_index, language, text)
Caption = tuple[int, str, str]


@dataclass
class RetrievalDataset:
    """Items (unique media ids, in file order) and captions pointing at them.

    Args:
        name: benchmark name (`msrvtt-1ka`, `synthetic`, ...).
        split: `train`, `val` or `test`.
        items: unique media ids in file order.
        captions: `(item_index, language, text)` triples.
        media_root: folder that holds the media files.
        media_pattern: format string giving a file name from an id, e.g. `"{id}.mp4"`; or
            `media_paths` overrides it per item.
        media_types: per-item "video" | "image" (defaults to `default_media_type`).
        extra: adapter-specific per-item metadata (scene, description, ...), parallel to `items`.
    """

    name: str
    split: str
    items: list[str]
    captions: list[Caption]
    media_root: Path | None = None
    media_pattern: str = "{id}"
    media_paths: list[str] | None = None
    media_types: list[str] | None = None
    default_media_type: str = "video"
    extra: list[dict] | None = None
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def media_path(self, i: int) -> Path:
        """Path of item `i`'s media file (not checked for existence)."""
        name = self.media_paths[i] if self.media_paths is not None else self.media_pattern.format(
            id=self.items[i])
        root = Path(self.media_root) if self.media_root is not None else Path(".")
        return root / name

    def media_type(self, i: int) -> str:
        return self.media_types[i] if self.media_types is not None else self.default_media_type

    @property
    def languages(self) -> list[str]:
        """Caption languages present, English first then sorted."""
        langs = sorted({lang for _, lang, _ in self.captions})
        return sorted(langs, key=lambda x: (x != "en", x))

    def captions_for(self, language: str) -> tuple[list[str], list[int]]:
        """Texts in `language` and, parallel to them, their item indices (`caption_item`)."""
        texts, caption_item = [], []
        for item, lang, text in self.captions:
            if lang == language:
                texts.append(text)
                caption_item.append(item)
        return texts, caption_item

    def check_media(self, exists: Callable[[Path], bool] = Path.exists) -> None:
        """Raise MissingMediaError listing how many media files are missing (before any epoch)."""
        missing = [str(self.media_path(i)) for i in range(len(self.items))
                   if not exists(self.media_path(i))]
        if missing:
            raise MissingMediaError(
                missing, len(self.items),
                hint=f"media_root={self.media_root}, pattern={self.media_pattern!r}")
