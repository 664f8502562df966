"""MSR-VTT-CN (NRCCR / LECCR cross-lingual setting): human Chinese test queries on 1k-A.

Caption files are `<cap_id> <caption>` lines (split at the first space) in `root/TextData/` or
`root/`. Two file-name prefixes exist: LECCR `msrvtt10kcn` and NRCCR `msrvttcn`; both are tried.
- train: `{p}train.caption.txt` (English, `#enc#` ids) and, unless `machine_translated=False`,
  `{p}train_google_enc2zh.caption.txt` (Google zh, `#enc2zh#` ids).
- val: `{p}val_zh.caption.txt` (LECCR only).
- test: `{p}test_zh.caption.txt` (human Chinese).
The language of a line comes from the file it is in; the video id is NRCCR's `getVideoId` (text
before the first `#`, `.mp4`/`.jpg` removed). Back-translated `#enc2zh2enc#` lines in a file count
as English.

Media: `<media_root>/<id>.mp4`; `media_root` defaults to `root/videos`, else `root`.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DatasetError
from .. import BENCHMARKS
from ..dataset import RetrievalDataset
from ._io import (
    build_dataset,
    pop_media_options,
    read_caption_file,
    reject_unknown_options,
    require_split,
    video_id_from_cap_id,
)

__all__ = ["PREFIXES", "caption_files", "load"]

NAME = "msrvtt-cn"
PREFIXES = ("msrvtt10kcn", "msrvttcn")  # LECCR, NRCCR


def caption_files(root: Path, split: str, machine_translated: bool = True
                  ) -> list[tuple[Path, str, bool]]:
    """The caption files of `split` as `(path, language, machine_translated)`.

    Args:
        root: annotation folder (or the collection folder holding `TextData/`).
        split: "train", "val" or "test".
        machine_translated: include the Google zh training captions.

    Returns:
        The files found, for the first prefix that has the split's primary file.
    """
    wanted = {
        "train": [("train.caption.txt", "en", False)]
        + ([("train_google_enc2zh.caption.txt", "zh", True)] if machine_translated else []),
        "val": [("val_zh.caption.txt", "zh", False)],
        "test": [("test_zh.caption.txt", "zh", False)],
    }[split]
    tried = []
    for folder in (root / "TextData", root):
        for prefix in PREFIXES:
            paths = [(folder / f"{prefix}{suffix}", lang, mt) for suffix, lang, mt in wanted]
            tried.append(str(paths[0][0]))
            if paths[0][0].is_file():
                absent = [str(p) for p, _, _ in paths if not p.is_file()]
                if absent:
                    raise DatasetError(f"{NAME}: missing {', '.join(absent)}")
                return paths
    raise DatasetError(f"{NAME}: no {split} caption file; tried {', '.join(tried)}")


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load MSR-VTT-CN.

    Args:
        root: annotation folder.
        split: "train", "val" or "test".
        **options: `machine_translated` (train only, default True), `media_root`,
            `media_pattern` (default `{id}.mp4`), `check_media`.

    Returns:
        Items in first-appearance order over the files; `info["machine_translated_captions"]`
        counts the Google-translated ones.
    """
    root = Path(root)
    require_split(NAME, split, ("train", "val", "test"))
    machine_translated = bool(options.pop("machine_translated", True))
    media = pop_media_options(root, options, ("videos",), "{id}.mp4")
    reject_unknown_options(NAME, options)

    items: list[str] = []
    index: dict[str, int] = {}
    captions = []
    n_mt = 0
    files = caption_files(root, split, machine_translated)
    for path, lang, mt in files:
        for cap_id, text in read_caption_file(path, sep=" "):
            vid = video_id_from_cap_id(cap_id)
            if vid not in index:
                index[vid] = len(items)
                items.append(vid)
            captions.append((index[vid], lang, text))
            n_mt += mt
    info = {"files": [p.name for p, _, _ in files], "machine_translated_captions": n_mt}
    return build_dataset(NAME, split, items, captions, media, info=info)
