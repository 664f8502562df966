"""Tatoeba bitext test files (Artetxe & Schwenk 2019, LASER; one of XTREME / XTREME-R's tasks).

The test set is two line-aligned files per language, as LASER's `data/tatoeba/v1/` and XTREME's
`download_data.sh` lay them out (ISO 639-3 codes, English the other side)::

    tatoeba.<xxx>-eng.<xxx>    sentences in language xxx, one per line
    tatoeba.<xxx>-eng.eng      their English translations, same line order

Line i of one file translates line i of the other. `load_tatoeba(root, "de")` reads the pair of
`deu`; `tatoeba_languages(root)` lists what a folder holds. XTREME scores accuracy of xxx -> eng
retrieval (nearest English neighbour by cosine); `mumur bitext --tatoeba` reports both directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError

__all__ = ["ISO639_3", "TatoebaPair", "load_tatoeba", "tatoeba_languages"]

#: ISO 639-1 -> the ISO 639-3 code Tatoeba's file names use (Chinese is Mandarin, `cmn`).
ISO639_3 = {"ar": "ara", "cs": "ces", "de": "deu", "en": "eng", "es": "spa", "fr": "fra",
            "it": "ita", "ja": "jpn", "ko": "kor", "nl": "nld", "pl": "pol", "pt": "por",
            "ru": "rus", "sw": "swh", "th": "tha", "tr": "tur", "vi": "vie", "zh": "cmn"}
_ISO639_1 = {v: k for k, v in ISO639_3.items()}


@dataclass(frozen=True)
class TatoebaPair:
    """One language's test pairs: `sentences[i]` (in `language`) translates `english[i]`."""

    language: str
    sentences: list[str]
    english: list[str]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


def load_tatoeba(root: str | Path, language: str) -> TatoebaPair:
    """Read `tatoeba.<xxx>-eng.{xxx,eng}` for `language` (ISO 639-1, or a 639-3 code).

    Raises:
        DatasetError: a file is missing, or the two files differ in length.
    """
    root = Path(root)
    code = ISO639_3.get(language, language)
    source, english = root / f"tatoeba.{code}-eng.{code}", root / f"tatoeba.{code}-eng.eng"
    for path in (source, english):
        if not path.is_file():
            raise DatasetError(f"tatoeba: {path} not found (expected tatoeba.{code}-eng.{code} "
                               f"and tatoeba.{code}-eng.eng in {root})")
    sentences, translations = _lines(source), _lines(english)
    if len(sentences) != len(translations):
        raise DatasetError(f"tatoeba {code}: {len(sentences)} sentences but "
                           f"{len(translations)} English lines")
    return TatoebaPair(_ISO639_1.get(code, code), [s.strip() for s in sentences],
                       [s.strip() for s in translations])


def tatoeba_languages(root: str | Path) -> list[str]:
    """Languages (ISO 639-1 where known) with a complete file pair in `root`, sorted."""
    root = Path(root)
    found = []
    for path in root.glob("tatoeba.*-eng.eng"):
        code = path.name[len("tatoeba."):-len("-eng.eng")]
        if (root / f"tatoeba.{code}-eng.{code}").is_file():
            found.append(_ISO639_1.get(code, code))
    return sorted(found)
