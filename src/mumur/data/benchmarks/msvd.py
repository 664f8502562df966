"""MSVD in the CLIP4Clip / collaborative-experts layout: every caption of a test video is a query.

Files under `root`: `{train,val,test}_list.txt` (one `<youtube_id>_<start>_<end>` per line; ids
may start with `-` and contain `_`, so they are kept whole, never split) and `raw-captions.pkl`.

`raw-captions.pkl` is a pickled dict `{video_id: [[token, ...], ...]}`; CLIP4Clip joins each token
list with `" "`. Pickle is that file's original format, so it is read with `pickle` here, and only
from the annotation file the user points `root` at (pickle can run code: load only files you
trust). Nothing else in mumur reads pickle.

Media: `<media_root>/<id>.avi` (the original YouTubeClips); `media_root` defaults to
`root/YouTubeClips`, else `root/videos`, else `root`.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from ...errors import DatasetError
from .. import BENCHMARKS
from ..dataset import RetrievalDataset
from ._io import (
    build_dataset,
    find_file,
    pop_media_options,
    read_id_list,
    reject_unknown_options,
    require_split,
)

__all__ = ["load", "read_raw_captions"]

NAME = "msvd"


def read_raw_captions(path: Path) -> dict[str, list[str]]:
    """Read `raw-captions.pkl` into `{video_id: [caption, ...]}` (token lists joined by spaces).

    Args:
        path: the user's `raw-captions.pkl`.

    Returns:
        Captions per video, in the pickle's order.
    """
    with open(path, "rb") as f:
        try:
            data = pickle.load(f)  # the dataset's own format, from the user's file only
        except Exception as e:  # a truncated or foreign pickle: any unpickling error
            raise DatasetError(f"{path}: cannot unpickle ({e})") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a dict video_id -> captions, got {type(data)}")
    out = {}
    for vid, caps in data.items():
        out[str(vid)] = [c if isinstance(c, str) else " ".join(c) for c in caps]
    return out


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load MSVD.

    Args:
        root: annotation folder.
        split: "train", "val" or "test".
        **options: `media_root`, `media_pattern` (default `{id}.avi`), `check_media`.

    Returns:
        Items in list order, every caption of each video (English).
    """
    root = Path(root)
    require_split(NAME, split, ("train", "val", "test"))
    media = pop_media_options(root, options, ("YouTubeClips", "videos"), "{id}.avi")
    reject_unknown_options(NAME, options)
    items = read_id_list(find_file(root, [f"{split}_list.txt"], f"MSVD {split} list"))
    raw = read_raw_captions(find_file(root, ["raw-captions.pkl"], "MSVD raw-captions.pkl"))
    missing = [v for v in items if not raw.get(v)]
    if missing:
        raise DatasetError(f"{NAME}: {len(missing)} of {len(items)} {split} videos have no caption "
                           f"in raw-captions.pkl (e.g. {', '.join(missing[:5])})")
    captions = [(i, "en", c.strip()) for i, v in enumerate(items) for c in raw[v]]
    return build_dataset(NAME, split, items, captions, media,
                         info={"protocol": "every caption is a query"})
