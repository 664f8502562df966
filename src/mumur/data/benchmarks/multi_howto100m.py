"""Multi-HowTo100M (Huang et al. 2021, MMP's pre-training corpus): HowTo100M's subtitles in
9 languages (en, de, fr, cs, es, ru, vi, sw, zh).

Files under `root` (original names, github.com/berniebear/Multi-HT100M): `how2_<lang>.json`, one
per language. Each is a JSON object `{video_id: {"text": [...], "start": [...], "end": [...]}}`:
a video's subtitle lines and their start / end times in seconds. There is no sample of it in
`benchmark-samples/`; the layout is the one the dataset's README states.

Every subtitle line is one caption `(video, language, text)`; `extra[i]["segments"][lang]` holds
each caption's `(start, end)` in caption order, so a clip sampler can cut the video around the
line (MMP pairs a subtitle with the clip it is spoken over). The corpus is pre-training data: it
has one split, `train`.

Options: `languages` (subset of the 9; default: every file present), `max_videos` (the first N
videos of the English file, or of the first language present), `media_root`, `media_pattern`
(default `{id}.mp4`), `check_media`.
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

__all__ = ["LANGUAGES", "load", "subtitle_file"]

NAME = "multi-howto100m"
LANGUAGES = ("en", "de", "fr", "cs", "es", "ru", "vi", "sw", "zh")


def subtitle_file(root: Path, language: str) -> Path:
    """`root/how2_<language>.json`."""
    return Path(root) / f"how2_{language}.json"


def _read(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object keyed by video id")
    for vid, entry in data.items():
        if not isinstance(entry, dict) or not {"text", "start", "end"} <= set(entry):
            raise DatasetError(f"{path}: video {vid!r} lacks text/start/end")
        if not len(entry["text"]) == len(entry["start"]) == len(entry["end"]):
            raise DatasetError(f"{path}: video {vid!r} has {len(entry['text'])} lines but "
                               f"{len(entry['start'])} starts and {len(entry['end'])} ends")
    return data


@BENCHMARKS.register(NAME)
def load(root, split: str = "train", **options) -> RetrievalDataset:
    """Load Multi-HowTo100M subtitles as a caption dataset.

    Args:
        root: folder with the `how2_<lang>.json` files.
        split: "train" (the only split).
        **options: `languages`, `max_videos`, `media_root`, `media_pattern`, `check_media`.

    Returns:
        Items: the videos of the first language's file (English when present), in file order,
        then videos only other languages have; captions: every subtitle line.

    Raises:
        DatasetError: no subtitle file, or a malformed one.
    """
    root = Path(root)
    require_split(NAME, split, ("train",))
    wanted = parse_languages(options.pop("languages", None), known=LANGUAGES)
    max_videos = options.pop("max_videos", None)
    media = pop_media_options(root, options, ("videos",), "{id}.mp4")
    reject_unknown_options(NAME, options)
    languages = [lang for lang in (wanted or LANGUAGES) if subtitle_file(root, lang).is_file()]
    missing = [lang for lang in wanted or () if lang not in languages]
    if missing or not languages:
        raise DatasetError(f"{NAME}: no subtitle file for {missing or list(LANGUAGES)} in {root} "
                           "(expected how2_<lang>.json)")
    files = {lang: _read(subtitle_file(root, lang)) for lang in languages}
    items: list[str] = []
    index: dict[str, int] = {}
    for lang in languages:
        for vid in files[lang]:
            if vid not in index and (max_videos is None or len(items) < int(max_videos)):
                index[vid] = len(items)
                items.append(vid)
    captions, extra = [], [{"segments": {}} for _ in items]
    for lang in languages:
        for vid, entry in files[lang].items():
            if vid not in index:
                continue
            i = index[vid]
            for text, start, end in zip(entry["text"], entry["start"], entry["end"]):
                if str(text).strip():
                    captions.append((i, lang, str(text).strip()))
                    extra[i]["segments"].setdefault(lang, []).append((float(start), float(end)))
    info = {"languages": languages, "files": [subtitle_file(root, lang).name
                                              for lang in languages]}
    return build_dataset(NAME, split, items, captions, media, extra=extra, info=info)
