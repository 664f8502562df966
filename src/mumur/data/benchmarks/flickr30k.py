"""Flickr30K, Karpathy split (29000 / 1014 / 1000 images, 5 captions each).

Files under `root`, tried in this order (option `format` forces one):
- `karpathy`: `dataset_flickr30k.json`, `{"images": [{"filename", "split", "sentences":
  [{"raw", ...}, ...]}, ...]}`; captions are the `raw` strings.
- `blip`: BLIP/ALBEF `flickr30k_{split}.json`, a list of `{"image": "flickr30k-images/x.jpg",
  "caption": [5 strings] | "one string"}` (the train file has one entry per caption).

Item ids are file names without extension (`1000092795`).
Media: Karpathy: `<media_root>/<filename>`, `media_root` defaults to `root/flickr30k-images`,
else `root/images`, else `root`. BLIP: `<media_root>/<image>` with `media_root` = `root` (the
recorded path already holds the folder).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ...errors import ConfigError, DatasetError
from .. import BENCHMARKS
from ..dataset import RetrievalDataset
from ._io import (
    MediaOptions,
    build_dataset,
    pop_media_options,
    read_json,
    reject_unknown_options,
    require_split,
)

__all__ = ["load", "read_karpathy"]

NAME = "flickr30k"


def read_karpathy(source: Path | dict, splits: tuple[str, ...]
                  ) -> tuple[list[str], list[tuple[int, str, str]], list[str], list[dict]]:
    """Read a Karpathy `dataset_*.json` file for the given split values.

    Args:
        source: path of `dataset_flickr30k.json` / `dataset_coco.json`, or its parsed content.
        splits: `split` values to keep (e.g. `("train", "restval")`).

    Returns:
        `(items, captions, media_paths, images)`: ids (file name without extension), English
        captions, `filepath/filename` (or `filename`), and the raw image records kept.
    """
    data = source if isinstance(source, dict) else read_json(source)
    if "images" not in data:
        raise DatasetError(f"{source if isinstance(source, Path) else 'Karpathy JSON'}: expected an "
                           f"object with an 'images' list")
    items, captions, media_paths, images = [], [], [], []
    for img in data["images"]:
        if img.get("split") not in splits:
            continue
        i = len(items)
        filename = img["filename"]
        items.append(PurePosixPath(filename).stem)
        media_paths.append(f"{img['filepath']}/{filename}" if img.get("filepath") else filename)
        captions.extend((i, "en", s["raw"].strip()) for s in img["sentences"])
        images.append(img)
    return items, captions, media_paths, images


def _read_blip(path: Path) -> tuple[list[str], list[tuple[int, str, str]], list[str]]:
    records = read_json(path)
    if not isinstance(records, list):
        raise DatasetError(f"{path}: expected a list of {{image, caption}} records")
    index: dict[str, int] = {}
    items, captions, media_paths = [], [], []
    for r in records:
        image = r["image"]
        if image not in index:
            index[image] = len(items)
            items.append(PurePosixPath(image).stem)
            media_paths.append(image)
        caps = [r["caption"]] if isinstance(r["caption"], str) else r["caption"]
        captions.extend((index[image], "en", c.strip()) for c in caps)
    return items, captions, media_paths


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load Flickr30K (Karpathy split).

    Args:
        root: annotation folder.
        split: "train", "val" or "test".
        **options: `format` ("karpathy" | "blip"; default: whichever file exists),
            `media_root`, `check_media`.

    Returns:
        Images in file order with their English captions.
    """
    root = Path(root)
    require_split(NAME, split, ("train", "val", "test"))
    fmt = options.pop("format", None)
    karpathy, blip = root / "dataset_flickr30k.json", root / f"flickr30k_{split}.json"
    if fmt is None:
        fmt = "karpathy" if karpathy.is_file() else "blip" if blip.is_file() else None
        if fmt is None:
            raise DatasetError(f"{NAME}: neither {karpathy} nor {blip} exists")
    if fmt == "karpathy":
        media = pop_media_options(root, options, ("flickr30k-images", "images"), None)
        reject_unknown_options(NAME, options)
        items, captions, media_paths, _ = read_karpathy(karpathy, (split,))
        if media.media_pattern:  # an explicit pattern replaces the recorded file names
            media_paths = None
    elif fmt == "blip":
        media_root = Path(options.pop("media_root", root))
        media = MediaOptions(media_root, None, bool(options.pop("check_media", False)))
        reject_unknown_options(NAME, options)
        items, captions, media_paths = _read_blip(blip)
    else:
        raise ConfigError(f"{NAME}: format must be 'karpathy' or 'blip', got {fmt!r}")
    return build_dataset(NAME, split, items, captions, media, media_paths=media_paths,
                         default_media_type="image", info={"format": fmt})
