"""MSCOCO: Karpathy split (English), COCO-CN (Chinese) and STAIR Captions (Japanese).

Files (original names; each looked up in `root` and in the listed subfolder):
- Karpathy `dataset_coco.json`: `{"images": [{"filepath", "filename", "cocoid", "split",
  "sentences": [{"raw"}, ...]}]}`, split in train / restval / val / test.
- COCO-CN (`coco-cn-version1805/`): `coco-cn_{train,val,test}.txt` (one `COCO_train2014_%012d` per
  line, `coco-cn_val.txt` has no final newline), `imageid.caption.txt` (`<img>#<k>\\t<sentence>`,
  TAB, human-written) and `imageid.manually-translated-caption.txt` (`<img>#zhm#<k> <sentence>`,
  SPACE, human translations of the 5 English captions of the test images, lines not in k order).
- STAIR (`stair/`): `stair_captions_v1.2_{train,val}.json`, COCO caption format
  (`annotations: [{"image_id", "caption"}]`).

Options:
- `languages`: subset of en, zh, ja (default `["en"]`).
- `image_split`: which split defines the items: "karpathy" or "coco-cn" (default "coco-cn" when
  zh is requested, else "karpathy"). Captions of the other languages are attached by COCO id;
  items without captions in a requested language are counted in `info["items_without"]`.
- `restval` (Karpathy train, default True): merge the 30,504 restval images into train (113,287).
- `fold` (Karpathy test, 0..4): the 1K test protocol's fold, images `1000*fold .. 1000*fold+999`
  of the 5K test in file order; None (default) = the 5K test.
- `zh_source`: "human" (imageid.caption.txt, default), "translated"
  (imageid.manually-translated-caption.txt, test images only) or "both".

Leakage: COCO-CN test/val images come from train2014 and val2014, so some are in Karpathy
train/restval. Loading a COCO-CN val/test split with `dataset_coco.json` present records them in
`info["karpathy_train_overlap"]` and a line in `info["warnings"]`; `coco_cn_karpathy_overlap`
computes the same list on its own.

Media: `<media_root>/<train2014|val2014>/<id>.jpg`; `media_root` defaults to `root/images`, else
`root`.
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
    read_caption_file,
    read_id_list,
    read_json,
    reject_unknown_options,
    require_split,
)
from .flickr30k import read_karpathy

__all__ = [
    "LANGUAGES",
    "coco_cn_karpathy_overlap",
    "cocoid_of",
    "load",
    "read_coco_cn_captions",
    "read_stair_captions",
]

NAME = "mscoco"
LANGUAGES = ("en", "zh", "ja")
COCO_CN_DIRS = ("", "coco-cn-version1805", "coco-cn")
STAIR_DIRS = ("", "stair", "stair_captions")


def cocoid_of(image_id: str) -> int:
    """The numeric COCO id of `COCO_train2014_000000503310` (-> 503310)."""
    try:
        return int(image_id.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        raise DatasetError(f"not a COCO image id: {image_id!r}") from None


def _media_path(image_id: str) -> str:
    # COCO_<subset>_<%012d>: the file is <subset>/<id>.jpg, as in Karpathy's filepath/filename.
    return f"{image_id.split('_')[1]}/{image_id}.jpg"


def _candidates(dirs: tuple[str, ...], name: str) -> list[str]:
    return [f"{d}/{name}" if d else name for d in dirs]


def read_coco_cn_captions(root: Path, source: str = "human") -> dict[int, list[str]]:
    """COCO-CN Chinese sentences per COCO id, each image's sentences ordered by `k`.

    Args:
        root: folder holding the COCO-CN files (or its `coco-cn-version1805/` parent).
        source: "human" (TAB-separated imageid.caption.txt), "translated" (SPACE-separated
            imageid.manually-translated-caption.txt) or "both" (human first).

    Returns:
        `{cocoid: [sentence, ...]}`.
    """
    files = {"human": [("imageid.caption.txt", "\t")],
             "translated": [("imageid.manually-translated-caption.txt", " ")]}
    files["both"] = files["human"] + files["translated"]
    if source not in files:
        raise ConfigError(f"{NAME}: zh_source must be human, translated or both, got {source!r}")
    out: dict[int, list[str]] = {}
    for name, sep in files[source]:
        path = find_file(root, _candidates(COCO_CN_DIRS, name), f"COCO-CN {name}")
        keyed: dict[int, list[tuple[int, str]]] = {}
        for cap_id, text in read_caption_file(path, sep=sep):
            parts = cap_id.split("#")  # img#k or img#zhm#k
            try:
                k = int(parts[-1])
            except ValueError:
                raise DatasetError(f"{path}: caption id {cap_id!r} does not end in #<k>") from None
            keyed.setdefault(cocoid_of(parts[0]), []).append((k, text))
        for cid, pairs in keyed.items():
            out.setdefault(cid, []).extend(t for _, t in sorted(pairs, key=lambda p: p[0]))
    return out


def read_stair_captions(root: Path) -> dict[int, list[str]]:
    """STAIR Japanese captions per COCO id, from every `stair_captions_v1.2_{train,val}.json`.

    Args:
        root: folder holding the files (or its `stair/` parent).

    Returns:
        `{cocoid: [caption, ...]}` in annotation order.
    """
    paths = [root / c for name in ("stair_captions_v1.2_train.json", "stair_captions_v1.2_val.json")
             for c in _candidates(STAIR_DIRS, name) if (root / c).is_file()]
    if not paths:
        raise DatasetError(f"{NAME}: no stair_captions_v1.2_{{train,val}}.json under {root}")
    out: dict[int, list[str]] = {}
    for path in paths:
        data = read_json(path)
        if not isinstance(data, dict) or "annotations" not in data:
            raise DatasetError(f"{path}: expected COCO caption JSON with 'annotations'")
        for a in data["annotations"]:
            out.setdefault(int(a["image_id"]), []).append(a["caption"].strip())
    return out


def coco_cn_karpathy_overlap(coco_cn_ids: list[str], karpathy: Path | dict,
                             splits: tuple[str, ...] = ("train", "restval")) -> list[str]:
    """COCO-CN images that are also in Karpathy `splits` (train leakage into a COCO-CN test).

    Args:
        coco_cn_ids: COCO-CN image ids (`COCO_train2014_%012d`).
        karpathy: path of `dataset_coco.json` or its parsed content.
        splits: the Karpathy splits a model was trained on.

    Returns:
        The overlapping COCO-CN ids, in their order.
    """
    _, _, _, images = read_karpathy(karpathy, splits)
    trained = {int(img["cocoid"]) for img in images}
    return [i for i in coco_cn_ids if cocoid_of(i) in trained]


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load MSCOCO with English, Chinese and/or Japanese captions.

    Args:
        root: annotation folder.
        split: "train", "val" or "test".
        **options: `languages`, `image_split`, `restval`, `fold`, `zh_source`, `media_root`,
            `media_pattern`, `check_media` (see the module docstring).

    Returns:
        Images in split order; captions per requested language (per language, in item order).
    """
    root = Path(root)
    require_split(NAME, split, ("train", "val", "test"))
    langs = parse_languages(options.pop("languages", None), LANGUAGES) or ["en"]
    image_split = options.pop("image_split", None) or ("coco-cn" if "zh" in langs else "karpathy")
    restval = bool(options.pop("restval", True))
    fold = options.pop("fold", None)
    zh_source = options.pop("zh_source", "human")
    media = pop_media_options(root, options, ("images",), None)
    reject_unknown_options(NAME, options)
    if image_split not in ("karpathy", "coco-cn"):
        raise ConfigError(f"{NAME}: image_split must be 'karpathy' or 'coco-cn', got {image_split!r}")
    if fold is not None and not (image_split == "karpathy" and split == "test"
                                 and int(fold) in range(5)):
        raise ConfigError(f"{NAME}: fold must be 0..4 and applies to the Karpathy test split only")

    karpathy_path = next((root / n for n in ("dataset_coco.json", "dataset_coco.json.gz")
                          if (root / n).is_file()), None)
    karpathy = read_json(karpathy_path) if karpathy_path is not None else None
    info: dict = {"image_split": image_split, "languages": langs, "warnings": []}

    if image_split == "karpathy":
        if karpathy is None:
            raise DatasetError(f"{NAME}: dataset_coco.json not found under {root}")
        splits = ("train", "restval") if split == "train" and restval else (split,)
        items, en_caps, paths, _ = read_karpathy(karpathy, splits)
        if fold is not None:
            lo, hi = 1000 * int(fold), 1000 * (int(fold) + 1)
            if hi > len(items):
                raise DatasetError(f"{NAME}: fold {fold} needs {hi} test images, found {len(items)}")
            en_caps = [(i - lo, lang, t) for i, lang, t in en_caps if lo <= i < hi]
            items, paths = items[lo:hi], paths[lo:hi]
            info["fold"] = int(fold)
        info["karpathy_splits"] = list(splits)
    else:
        coco_cn_file = find_file(root, _candidates(COCO_CN_DIRS, f"coco-cn_{split}.txt"),
                                 f"COCO-CN {split} list")
        items = read_id_list(coco_cn_file)
        paths = [_media_path(i) for i in items]
        en_caps = []
        if "en" in langs:
            if karpathy is None:
                raise DatasetError(f"{NAME}: English captions for COCO-CN images need "
                                   f"dataset_coco.json under {root}")
            _, all_caps, _, images = read_karpathy(karpathy, ("train", "restval", "val", "test"))
            by_id: dict[int, list[str]] = {}
            for i, _, text in all_caps:
                by_id.setdefault(int(images[i]["cocoid"]), []).append(text)
            index = {cocoid_of(v): n for n, v in enumerate(items)}
            en_caps = [(index[c], "en", t) for c in index for t in by_id.get(c, [])]
            en_caps.sort(key=lambda x: x[0])
        if karpathy is not None and split in ("val", "test"):
            leaked = coco_cn_karpathy_overlap(items, karpathy)
            info["karpathy_train_overlap"] = leaked
            if leaked:
                info["warnings"].append(
                    f"{len(leaked)} of {len(items)} COCO-CN {split} images are in Karpathy "
                    f"train/restval: exclude them from training on Karpathy train")

    captions = list(en_caps) if "en" in langs else []
    ids = [cocoid_of(i) for i in items]
    extra_sources = {}
    if "zh" in langs:
        extra_sources["zh"] = read_coco_cn_captions(root, zh_source)
    if "ja" in langs:
        extra_sources["ja"] = read_stair_captions(root)
    for lang, by_cocoid in extra_sources.items():
        captions.extend((n, lang, t) for n, cid in enumerate(ids) for t in by_cocoid.get(cid, []))
    with_caption = {(i, lang) for i, lang, _ in captions}
    info["items_without"] = {lang: sum((n, lang) not in with_caption for n in range(len(items)))
                             for lang in langs}
    media_paths = None if media.media_pattern else paths
    return build_dataset(NAME, split, items, captions, media, media_paths=media_paths,
                         default_media_type="image", info=info)
