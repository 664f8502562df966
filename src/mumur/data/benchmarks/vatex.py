"""VATEX: English (`enCap`) and Chinese (`chCap`) captions, 10 each per video.

Files under `root` (original names): `vatex_training_v1.0.json`, `vatex_validation_v1.0.json`,
`vatex_public_test_english_v1.1.json` (no `chCap`). Each is a list of
`{"videoID": "<ytid>_<start:06d>_<end:06d>", "enCap": [...], "chCap": [...]}`.

Options:
- `languages`: subset of en, zh (default: both where the file has them). Asking for zh on the
  public test raises, since that file has no Chinese.
- `protocol="official"` (default): train / val / test = the three files above.
- `protocol="ccr"` (NRCCR/LECCR, 25,991 / 1,500 / 1,500): train is the training file; val and test
  are the two halves of the official validation file, selected by an id list: option `ids_file`,
  else `root/video_id/{split}_id.txt` or `root/{split}_id.txt` (LECCR layout). No built-in guess
  of which half is which: the published halves were not available to verify.

Media: `<media_root>/<videoID>.mp4`; `media_root` defaults to `root/videos`, else `root`.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError, DatasetError
from .. import BENCHMARKS
from ..dataset import RetrievalDataset
from ._io import (
    build_dataset,
    find_file,
    parse_languages,
    pop_media_options,
    read_id_list,
    read_json,
    reject_unknown_options,
    require_split,
)

__all__ = ["FILES", "load"]

NAME = "vatex"
FILES = {
    "train": "vatex_training_v1.0.json",
    "val": "vatex_validation_v1.0.json",
    "test": "vatex_public_test_english_v1.1.json",
}
KEYS = {"en": "enCap", "zh": "chCap"}


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load VATEX.

    Args:
        root: annotation folder.
        split: "train", "val" or "test".
        **options: `languages`, `protocol` ("official" | "ccr"), `ids_file`, `media_root`,
            `media_pattern` (default `{id}.mp4`), `check_media`.

    Returns:
        Items in file order (restricted to the id list under the CCR protocol).
    """
    root = Path(root)
    require_split(NAME, split, ("train", "val", "test"))
    langs = parse_languages(options.pop("languages", None), known=("en", "zh"))
    protocol = options.pop("protocol", "official")
    ids_file = options.pop("ids_file", None)
    media = pop_media_options(root, options, ("videos",), "{id}.mp4")
    reject_unknown_options(NAME, options)
    if protocol not in ("official", "ccr"):
        raise ConfigError(f"{NAME}: protocol must be 'official' or 'ccr', got {protocol!r}")

    keep = None
    file_split = split
    if protocol == "ccr" and split != "train":
        file_split = "val"
        ids_path = Path(ids_file) if ids_file else find_file(
            root, [f"video_id/{split}_id.txt", f"{split}_id.txt"], f"VATEX CCR {split} id list")
        keep = read_id_list(ids_path)
    elif ids_file:
        raise ConfigError(f"{NAME}: ids_file applies only to protocol='ccr' val/test")
    path = find_file(root, [FILES[file_split]], f"VATEX {file_split} file")
    records = read_json(path)
    if not isinstance(records, list):
        raise DatasetError(f"{path}: expected a list of records")
    by_id = {r["videoID"]: r for r in records}
    if keep is not None:
        absent = [v for v in keep if v not in by_id]
        if absent:
            raise DatasetError(f"{NAME}: {len(absent)} ids of the {split} list are not in {path.name}"
                               f" (e.g. {', '.join(absent[:5])})")
        records = [by_id[v] for v in keep]

    wanted = langs or [lang for lang in ("en", "zh") if any(KEYS[lang] in r for r in records)]
    for lang in wanted:
        lacking = sum(KEYS[lang] not in r for r in records)
        if lacking:
            raise DatasetError(f"{path}: {lacking} records have no {KEYS[lang]} ({lang}); "
                               f"the public test file has English only")
    items, captions = [], []
    for i, r in enumerate(records):
        items.append(r["videoID"])
        for lang in wanted:
            captions.extend((i, lang, c.strip()) for c in r[KEYS[lang]])
    info = {"protocol": protocol, "languages": wanted, "file": path.name}
    return build_dataset(NAME, split, items, captions, media, info=info)
