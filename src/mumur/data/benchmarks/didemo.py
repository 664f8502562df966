"""DiDeMo, CLIP4Clip video-paragraph setting: one paragraph query per video.

Files under `root`: `{split}_data.json` (LocalizingMoments records `{"video", "description",
"times", ...}`) and `{split}_list.txt` (collaborative-experts split list).

Protocol (CLIP4Clip): keep the records whose `video` is in the list, concatenate each video's
descriptions in file order with `" "`, clip 0-31 s. Items are the videos in order of first
appearance in the JSON (CLIP4Clip's dict order).

Traps handled: `video` is the full Flickr file name with mixed extensions, and some names end in a
bare dot (`..._5762149bfc.`); the item id is the recorded name unchanged. JSON videos missing from
the list are excluded and counted in `info["excluded_videos_not_in_list"]`; list entries without
any record are counted in `info["list_videos_without_records"]`.

Media: the recorded file name under `media_root` (default `root/videos`, else `root`); when that
file is absent, `<name without final extension>.*` is tried (e.g. re-encoded `.mp4`).
A `media_pattern` option replaces the recorded name (`{id}` is the recorded name).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DatasetError
from .. import BENCHMARKS
from ..dataset import RetrievalDataset
from ._io import (
    build_dataset,
    find_file,
    pop_media_options,
    read_id_list,
    read_json,
    reject_unknown_options,
    require_split,
)

__all__ = ["CLIP_SECONDS", "load"]

NAME = "didemo"
CLIP_SECONDS = (0.0, 31.0)  # CLIP4Clip: start 0, end 30 + 1 (six 5-s chunks, end inclusive)


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load DiDeMo paragraphs.

    Args:
        root: annotation folder.
        split: "train", "val" or "test".
        **options: `media_root`, `media_pattern` (default: the recorded file name),
            `check_media`.

    Returns:
        One English paragraph caption per video; `extra[i]` holds `start`, `end` (seconds) and
        `times` (per-description annotator chunk spans).
    """
    root = Path(root)
    require_split(NAME, split, ("train", "val", "test"))
    media = pop_media_options(root, options, ("videos",), None)
    reject_unknown_options(NAME, options)
    listed = read_id_list(find_file(root, [f"{split}_list.txt"], f"DiDeMo {split} list"))
    listed_set = set(listed)
    data_path = find_file(root, [f"{split}_data.json"], f"DiDeMo {split}_data.json")
    records = read_json(data_path)
    if not isinstance(records, list):
        raise DatasetError(f"{data_path}: expected a list of records")

    items: list[str] = []
    sentences: dict[str, list[str]] = {}
    times: dict[str, list] = {}
    excluded: set[str] = set()
    n_excluded_records = 0
    for r in records:
        vid = r["video"]
        if vid not in listed_set:
            excluded.add(vid)
            n_excluded_records += 1
            continue
        if vid not in sentences:
            items.append(vid)
            sentences[vid], times[vid] = [], []
        sentences[vid].append(r["description"].strip())
        times[vid].append(r.get("times"))
    captions = [(i, "en", " ".join(sentences[v])) for i, v in enumerate(items)]
    extra = [{"start": CLIP_SECONDS[0], "end": CLIP_SECONDS[1], "times": times[v]} for v in items]
    info = {
        "excluded_videos_not_in_list": len(excluded),
        "excluded_records_not_in_list": n_excluded_records,
        "list_videos_without_records": len(listed_set - set(sentences)),
        "protocol": "paragraph (descriptions joined in file order), clip 0-31 s",
    }
    media_paths = None if media.media_pattern else list(items)
    return build_dataset(NAME, split, items, captions, media, media_paths=media_paths, extra=extra,
                         info=info, resolve_extensions=True)
