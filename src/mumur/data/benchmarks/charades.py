"""Charades (ECLIPSE / MuMUR setting): the `script` of each video is its single caption.

Files under `root`: `Charades_v1_{train,test}.csv`, header
`id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length`, CRLF line
endings, `;`-separated lists inside fields, quoted only when they contain a comma. Read with the
csv module. `actions` and `relevance` may be empty.

Media: `<media_root>/<id>.mp4`; `media_root` defaults to `root/Charades_v1_480`, else
`root/videos`, else `root`. When `<id>.mp4` is absent, `<id>.*` is tried.
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
    reject_unknown_options,
    require_split,
)

__all__ = ["load", "parse_actions"]

NAME = "charades"
COLUMNS = ("id", "scene", "script", "objects", "actions", "length")


def parse_actions(field: str) -> list[tuple[str, float, float]]:
    """Parse an `actions` field `c092 11.90 21.20;c147 0.00 12.60` (empty -> []).

    Args:
        field: the raw CSV field.

    Returns:
        `(class_id, start_s, end_s)` per action.
    """
    out = []
    for part in field.split(";"):
        if not part.strip():
            continue
        tokens = part.split()
        if len(tokens) != 3:
            raise DatasetError(f"charades: malformed action {part!r}")
        out.append((tokens[0], float(tokens[1]), float(tokens[2])))
    return out


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load Charades.

    Args:
        root: annotation folder.
        split: "train" or "test".
        **options: `media_root`, `media_pattern` (default `{id}.mp4`), `check_media`.

    Returns:
        Items in CSV order, the script as the English caption; `extra[i]` holds `scene`,
        `objects`, `actions` (parsed) and `length` (seconds or None). Rows with an empty script
        are skipped and counted in `info["skipped_empty_script"]`.
    """
    root = Path(root)
    require_split(NAME, split, ("train", "test"))
    media = pop_media_options(root, options, ("Charades_v1_480", "videos"), "{id}.mp4")
    reject_unknown_options(NAME, options)
    path = find_file(root, [f"Charades_v1_{split}.csv"], f"Charades {split} CSV")
    items, captions, extra = [], [], []
    skipped = 0
    for row in read_csv_rows(path, required=COLUMNS):
        script = row["script"].strip()
        if not script:
            skipped += 1
            continue
        captions.append((len(items), "en", script))
        items.append(row["id"].strip())
        extra.append({
            "scene": row["scene"],
            "objects": [o for o in row["objects"].split(";") if o],
            "actions": parse_actions(row["actions"]),
            "length": float(row["length"]) if row["length"].strip() else None,
        })
    return build_dataset(NAME, split, items, captions, media, extra=extra,
                         info={"skipped_empty_script": skipped}, resolve_extensions=True)
