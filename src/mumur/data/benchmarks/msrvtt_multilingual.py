"""Multilingual MSR-VTT (Huang et al. 2021, "VTT in 9 languages"): zero-shot test on 1k-A.

Files (MCLIP4VLA layout): `test_{lang}.json` in `root/multilingual_test/` or `root/`; each is a
dict `{"video7020.mp4": [caption, ...], ...}` (the key includes `.mp4`). As in MCLIP4VLA only the
first caption of each video is a query (option `all_captions=True` keeps every one).

Languages (ISO 639-1): en, de, fr, cs, zh, ru, vi, sw, es. Option `languages`: a list, or a
comma-separated string; by default every language whose file exists.

Media: `<media_root>/<id>.mp4` where id is the key without `.mp4`; `media_root` defaults to
`root/videos/all`, else `root/videos`, else `root`.

Only the test split is supported: the training files (`ref_captions_{lang}.json`) were not
available to check their format.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DatasetError
from .. import BENCHMARKS
from ..dataset import RetrievalDataset
from ._io import (
    build_dataset,
    parse_languages,
    pop_media_options,
    read_json,
    reject_unknown_options,
    require_split,
)

__all__ = ["LANGUAGES", "load"]

LANGUAGES = ("en", "de", "fr", "cs", "zh", "ru", "vi", "sw", "es")
NAME = "msrvtt-multilingual"


def _file_for(root: Path, lang: str) -> Path | None:
    for folder in (root / "multilingual_test", root):
        p = folder / f"test_{lang}.json"
        if p.is_file():
            return p
    return None


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load the multilingual MSR-VTT test set.

    Args:
        root: annotation folder.
        split: "test" only.
        **options: `languages`, `all_captions` (default False), `media_root`, `media_pattern`
            (default `{id}.mp4`), `check_media`.

    Returns:
        Items in first-appearance order over the languages (in the order requested); captions
        per language.
    """
    root = Path(root)
    require_split(NAME, split, ("test",))
    langs = parse_languages(options.pop("languages", None), LANGUAGES)
    all_captions = bool(options.pop("all_captions", False))
    media = pop_media_options(root, options, ("videos/all", "videos"), "{id}.mp4")
    reject_unknown_options(NAME, options)

    files = {lang: _file_for(root, lang) for lang in (langs or LANGUAGES)}
    if langs is None:
        files = {k: v for k, v in files.items() if v is not None}
        if not files:
            raise DatasetError(f"{NAME}: no test_{{lang}}.json under {root} or "
                               f"{root / 'multilingual_test'}")
    else:
        missing = [k for k, v in files.items() if v is None]
        if missing:
            raise DatasetError(f"{NAME}: missing test_{{lang}}.json for {missing} under {root}")

    items: list[str] = []
    index: dict[str, int] = {}
    captions = []
    for lang, path in files.items():
        data = read_json(path)
        if not isinstance(data, dict):
            raise DatasetError(f"{path}: expected a dict video -> [captions]")
        for key, caps in data.items():
            vid = key.removesuffix(".mp4")
            if vid not in index:
                index[vid] = len(items)
                items.append(vid)
            if isinstance(caps, str):
                caps = [caps]
            if not caps:
                raise DatasetError(f"{path}: video {key!r} has no caption")
            for text in caps if all_captions else caps[:1]:
                captions.append((index[vid], lang, text.strip()))
    info = {"languages": list(files), "captions_per_video": "all" if all_captions else "first"}
    return build_dataset(NAME, split, items, captions, media, info=info)
