"""MSR-VTT in the CLIP4Clip layout: 1k-A test, 9k and 7k training splits.

Files under `root` (original names):
- `MSRVTT_JSFUSION_test.csv`: header `key,vid_key,video_id,sentence`; the 1k-A test, one caption
  per video, in CSV order.
- `MSRVTT_train.9k.csv` / `MSRVTT_train.7k.csv`: one column `video_id`.
- `MSRVTT_data.json`: `{"videos": [...], "sentences": [{"caption", "video_id", "sen_id"}, ...]}`;
  all 20 captions of each training video come from here.

Media: `<media_root>/<video_id>.mp4`; `media_root` defaults to `root/videos/all` (CLIP4Clip),
else `root/videos`, else `root`.

Protocol: train on 9k (or 7k) with every caption; test on 1k-A with the single CSV caption. There
is no separate validation split in this protocol (CLIP4Clip validates on 1k-A), so `split="val"`
is refused rather than silently aliased.
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
    read_csv_rows,
    read_json,
    reject_unknown_options,
    require_split,
)

__all__ = ["load_1ka_test", "load_msrvtt", "load_msrvtt_train_captions"]

MEDIA_SUBFOLDERS = ("videos/all", "videos")
TRAIN_LISTS = {"9k": "MSRVTT_train.9k.csv", "7k": "MSRVTT_train.7k.csv"}


def load_1ka_test(root: Path) -> tuple[list[str], list[str]]:
    """The 1k-A test videos and their single captions, in CSV order.

    Args:
        root: folder with `MSRVTT_JSFUSION_test.csv`.

    Returns:
        `(video_ids, sentences)`, parallel lists.
    """
    path = find_file(root, ["MSRVTT_JSFUSION_test.csv"], "MSR-VTT 1k-A test CSV")
    rows = read_csv_rows(path, required=["video_id"])
    # EAT commit 532baeb renamed the column to `sentences` (later reverted); accept both.
    header = rows[0].keys() if rows else ()
    col = next((c for c in ("sentence", "sentences") if c in header), None)
    if col is None:
        raise DatasetError(f"{path}: no 'sentence' column or no rows")
    return [r["video_id"].strip() for r in rows], [r[col].strip() for r in rows]


def load_msrvtt_train_captions(root: Path, video_ids: list[str]) -> list[tuple[int, str, str]]:
    """Every caption of `video_ids` from `MSRVTT_data.json`, in the file's sentence order.

    Args:
        root: folder with `MSRVTT_data.json`.
        video_ids: the split's videos.

    Returns:
        `(item_index, "en", caption)` triples; a listed video without captions raises.
    """
    path = find_file(root, ["MSRVTT_data.json"], "MSRVTT_data.json")
    data = read_json(path)
    if not isinstance(data, dict) or "sentences" not in data:
        raise DatasetError(f"{path}: expected an object with a 'sentences' list")
    index = {v: i for i, v in enumerate(video_ids)}
    captions = []
    for s in data["sentences"]:
        i = index.get(s["video_id"])
        if i is not None:
            captions.append((i, "en", s["caption"].strip()))
    covered = {i for i, _, _ in captions}
    if len(covered) != len(video_ids):
        missing = [v for v, i in index.items() if i not in covered]
        raise DatasetError(f"{path}: {len(missing)} of {len(video_ids)} training videos have no "
                           f"sentence (e.g. {', '.join(missing[:5])})")
    return captions


def load_msrvtt(name: str, train_list: str, root, split: str, **options) -> RetrievalDataset:
    """Load MSR-VTT with training list `train_list` ("9k" or "7k") and the 1k-A test.

    Args:
        name: registered benchmark name.
        train_list: "9k" or "7k".
        root: annotation folder.
        split: "train" or "test".
        **options: `media_root`, `media_pattern` (default `{id}.mp4`), `check_media`.

    Returns:
        The RetrievalDataset.
    """
    root = Path(root)
    require_split(name, split, ("train", "test"))
    media = pop_media_options(root, options, MEDIA_SUBFOLDERS, "{id}.mp4")
    reject_unknown_options(name, options)
    if split == "test":
        items, sentences = load_1ka_test(root)
        captions = [(i, "en", s) for i, s in enumerate(sentences)]
        info = {"protocol": "1k-A (JSFusion), 1 caption per video"}
    else:
        path = find_file(root, [TRAIN_LISTS[train_list]], f"MSR-VTT {train_list} train list")
        items = [r["video_id"].strip() for r in read_csv_rows(path, required=["video_id"])]
        captions = load_msrvtt_train_captions(root, items)
        info = {"protocol": f"{train_list} train, all captions per video"}
    return build_dataset(name, split, items, captions, media, info=info)


@BENCHMARKS.register("msrvtt-1ka")
def load_1ka(root, split: str = "test", **options) -> RetrievalDataset:
    """MSR-VTT 1k-A: test = JSFusion 1k-A; train = the matching 9k list (see `load_msrvtt`)."""
    return load_msrvtt("msrvtt-1ka", "9k", root, split, **options)


@BENCHMARKS.register("msrvtt-9k")
def load_9k(root, split: str = "test", **options) -> RetrievalDataset:
    """MSR-VTT 9k train / 1k-A test (see `load_msrvtt`)."""
    return load_msrvtt("msrvtt-9k", "9k", root, split, **options)


@BENCHMARKS.register("msrvtt-7k")
def load_7k(root, split: str = "test", **options) -> RetrievalDataset:
    """MSR-VTT 7k train (official train+val) / 1k-A test (see `load_msrvtt`)."""
    return load_msrvtt("msrvtt-7k", "7k", root, split, **options)
