"""The `synthetic` benchmark adapter: reads `manifest.json` like a real adapter reads its
annotation file (see `generate.py` for the format)."""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import DatasetError
from .. import BENCHMARKS
from ..dataset import RetrievalDataset

__all__ = ["load"]

_SPLITS = ("train", "val", "test")
_ITEM_KEYS = ("id", "path", "type", "split", "captions", "description")


def _read_manifest(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"{path}: no synthetic manifest here (make one with `mumur synth "
                           f"--out {path.parent}`)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("items"), list):
        raise DatasetError(f"{path}: expected an object with an `items` list")
    for n, item in enumerate(manifest["items"]):
        missing = [k for k in _ITEM_KEYS if not isinstance(item, dict) or k not in item]
        if isinstance(item, dict) and "scene" not in item and "shots" not in item:
            missing.append("scene (or shots)")
        if isinstance(item, dict) and "shots" in item and "caption_shots" not in item:
            missing.append("caption_shots")
        if missing:
            raise DatasetError(f"{path}: item {n} lacks {', '.join(missing)}")
    return manifest


@BENCHMARKS.register("synthetic")
def load(root, split: str = "test", languages=None, media_types=None,
         manifest: str = "manifest.json", media_root=None) -> RetrievalDataset:
    """Load a generated synthetic corpus.

    Args:
        root: folder holding `manifest.json` (and, by default, the media).
        split: "train", "val", "test", or "all" for every item.
        languages: caption languages to keep (default: all in the manifest).
        media_types: "video" and/or "image" to keep (default: both).
        manifest: the manifest's file name inside `root`.
        media_root: folder the relative `path`s start from (default `root`).

    Returns:
        A `RetrievalDataset`: items are ids in file order; captions `(item_index, language,
        text)`; `media_paths` relative to `media_root`; `extra[i]` = `{"scene", "description",
        "split"}`, and for multi-shot videos `"scene": None` with `"shots"` and
        `"caption_shots"` (caption j of language L, the j-th of that language among the item's
        captions, describes shot `caption_shots[L][j]`).

    Raises:
        DatasetError: missing or malformed manifest, unknown split, language or media type.
    """
    root = Path(root)
    path = root / manifest
    data = _read_manifest(path)
    if split not in _SPLITS + ("all",):
        raise DatasetError(f"unknown split {split!r} for synthetic; use one of "
                           f"{', '.join(_SPLITS)} or all")
    if isinstance(media_types, str):
        media_types = [media_types]
    wanted_types = set(media_types) if media_types is not None else {"video", "image"}
    if not wanted_types <= {"video", "image"}:
        raise DatasetError(f"unknown media types {sorted(wanted_types - {'video', 'image'})}; "
                           f"use video and/or image")
    available = list(data.get("languages") or sorted(
        {code for item in data["items"] for code in item["captions"]}))
    if isinstance(languages, str):
        languages = [languages]
    if languages is not None:
        unknown = [code for code in languages if code not in available]
        if unknown:
            raise DatasetError(f"{path}: no captions in {unknown}; available: "
                               f"{', '.join(available)}")
    keep = set(languages) if languages is not None else set(available)

    items, paths, types, extra, captions = [], [], [], [], []
    for item in data["items"]:
        if (split != "all" and item["split"] != split) or item["type"] not in wanted_types:
            continue
        index = len(items)
        items.append(item["id"])
        paths.append(item["path"])
        types.append(item["type"])
        entry = {"scene": item.get("scene"), "description": item["description"],
                 "split": item["split"]}
        if "shots" in item:
            entry["shots"] = item["shots"]
            entry["caption_shots"] = {code: shots for code, shots in item["caption_shots"].items()
                                      if code in keep}
        extra.append(entry)
        for code, texts in item["captions"].items():
            if code in keep:
                captions.extend((index, code, text) for text in texts)
    return RetrievalDataset(
        name="synthetic", split=split, items=items, captions=captions,
        media_root=Path(media_root) if media_root is not None else root, media_paths=paths,
        media_types=types, extra=extra,
        info={"version": data.get("version"), "seed": data.get("seed"),
              "languages": available, "render": data.get("render")})
