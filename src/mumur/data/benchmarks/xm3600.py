"""Crossmodal-3600 (XM3600, Thapliyal et al. 2022): 3,600 images with human captions written
natively (not translated) in 36 languages; a test-only benchmark (text -> image R@k per language,
as the SigLIP 2, mSigLIP and NLLB-CLIP cards report it).

Files as distributed: `captions.jsonl` (from `captions.zip`) beside `images/` (from `images.tgz`,
`<image/key>.jpg`). One JSON object per line:
``{"image/key": "<16 hex>", "image/locale": "<the language whose region the photo is from>",
"<lang>": {"caption": [...], "caption/tokenized": [...], "caption/tokenized/lowercase": [...]},
...}`` for the 36 languages below.

What the loader takes care of (format traps):
- the number of captions per image differs by language and image (about 2 on average; the paper
  counts 261,375 in all); every caption is a query;
- `caption` is the raw text (the default); the two tokenized variants are pre-tokenized
  (space-separated tokens, one of them lower-cased), not what a user types (`field` option to
  choose them anyway);
- codes are XM3600's own: `fil` (Filipino), `quz` (Cusco Quechua), `mi` (Maori), `no`
  (Norwegian Bokmal), `he`, `zh` (simplified); a text encoder that needs a language code gets
  it from `mumur.translate.codes` (NLLB-CLIP has none for `quz`: the evaluation reports that
  language as skipped rather than guess a neighbouring Quechua);
- empty lines (and a missing final newline) are accepted; an image without captions in a
  requested language keeps its place in the gallery (it is a distractor there);
- `image/locale` is kept per item (`extra`), for per-region breakdowns.

Split: "test" only (all 3,600 images).
"""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import ConfigError, DatasetError
from .. import BENCHMARKS
from ..dataset import RetrievalDataset
from ._io import (
    build_dataset,
    find_file,
    open_text,
    parse_languages,
    pop_media_options,
    reject_unknown_options,
    require_split,
)

__all__ = ["FIELDS", "LANGUAGES", "load"]

NAME = "xm3600"
LANGUAGES = ("ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr", "he", "hi",
             "hr", "hu", "id", "it", "ja", "ko", "mi", "nl", "no", "pl", "pt", "quz", "ro", "ru",
             "sv", "sw", "te", "th", "tr", "uk", "vi", "zh")
FIELDS = ("caption", "caption/tokenized", "caption/tokenized/lowercase")


def _records(path: Path) -> list[dict]:
    records = []
    with open_text(path) as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: invalid JSON ({exc})") from None
            if not isinstance(record, dict) or not isinstance(record.get("image/key"), str):
                raise DatasetError(f"{path}:{number}: expected an object with 'image/key'")
            records.append(record)
    return records


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load Crossmodal-3600.

    Args:
        root: folder holding `captions.jsonl` (and `images/`).
        split: "test" (the benchmark has no other).
        **options: `languages` (default: the 36), `field` (one of `FIELDS`, default
            "caption"), `media_root` (default `root/images`, else `root`), `media_pattern`
            (default `{id}.jpg`), `check_media`.

    Returns:
        Images in file order; every caption of every requested language.
    """
    root = Path(root)
    require_split(NAME, split, ("test",))
    langs = parse_languages(options.pop("languages", None), LANGUAGES) or list(LANGUAGES)
    field = options.pop("field", "caption")
    if field not in FIELDS:
        raise ConfigError(f"{NAME}: field must be one of {', '.join(FIELDS)}, got {field!r}")
    media = pop_media_options(root, options, ("images",), "{id}.jpg")
    reject_unknown_options(NAME, options)
    path = find_file(root, ["captions.jsonl"], "XM3600 captions.jsonl")
    items, captions, extra = [], [], []
    for record in _records(path):
        i = len(items)
        items.append(record["image/key"])
        extra.append({"locale": record.get("image/locale")})
        for lang in langs:
            entry = record.get(lang) or {}
            texts = entry.get(field, [])
            if isinstance(texts, str):
                texts = [texts]
            captions.extend((i, lang, t.strip()) for t in texts if t and t.strip())
    missing = sorted(set(langs) - {lang for _, lang, _ in captions})
    return build_dataset(NAME, split, items, captions, media, default_media_type="image",
                         extra=extra, info={"field": field, "languages_without_captions": missing})
