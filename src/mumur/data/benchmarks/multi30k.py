"""Multi30K (official repository layout): Flickr30K images with en / de / fr / cs sentences.

`root` is the repository root (holding `data/task1`, `data/task2`), or `data/`, or the task
folder itself. Sentence files are gzipped in the official repo (`raw/<split>.<lang>.gz`); plain
files are read too. Line i of every sentence file is aligned with line i of
`image_splits/<split>.txt`; a length mismatch raises.

- `task=1` (default): 1 sentence per image per language (de/fr/cs translate one English caption).
  Split names: train, val, test; `test_set` picks the test file (default `test_2016_flickr`; also
  `test_2017_flickr`, `test_2017_mscoco`, `test_2018_flickr`). Languages: en, de, fr, cs (default:
  those whose files exist).
- `task=2`: 5 independent descriptions per image (`raw/<split>.<k>.<lang>.gz`, k=1..5, en/de)
  with `image_splits/<split>_images.txt`; the test split is `test_2016`.

Item ids are image file names without extension; `test_2017_mscoco` lines
`COCO_train2014_000000117071.jpg#367178` name the file before `#`.
Media: `<media_root>/<file name>`; `media_root` defaults to `root/flickr30k-images`, else
`root/images`, else `root`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ...errors import ConfigError, DatasetError
from .. import BENCHMARKS
from ..dataset import RetrievalDataset
from ._io import (
    build_dataset,
    find_file,
    parse_languages,
    pop_media_options,
    read_id_list,
    read_lines,
    reject_unknown_options,
    require_split,
)

__all__ = ["LANGUAGES", "TEST_SETS", "load"]

NAME = "multi30k"
LANGUAGES = ("en", "de", "fr", "cs")
TEST_SETS = ("test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


def _task_dir(root: Path, task: int) -> Path:
    for d in (root / "data" / f"task{task}", root / f"task{task}", root):
        if (d / "image_splits").is_dir():
            return d
    raise DatasetError(f"{NAME}: no task{task}/image_splits folder under {root}")


def _read_sentences(task_dir: Path, stem: str, n_images: int) -> list[str]:
    # Empty lines are kept: alignment is by line number.
    path = find_file(task_dir, [f"raw/{stem}", stem], f"Multi30K {stem}")
    lines = read_lines(path, skip_empty=False)
    if len(lines) != n_images:
        raise DatasetError(f"{path}: {len(lines)} sentences for {n_images} images in the split")
    return lines


@BENCHMARKS.register(NAME)
def load(root, split: str = "test", **options) -> RetrievalDataset:
    """Load Multi30K.

    Args:
        root: repository root (or `data/`, or the task folder).
        split: "train", "val" or "test".
        **options: `task` (1 | 2), `test_set` (task 1), `languages`, `media_root`,
            `check_media`.

    Returns:
        Images in split-file order; captions per language, line-aligned.
    """
    root = Path(root)
    require_split(NAME, split, ("train", "val", "test"))
    task = int(options.pop("task", 1))
    test_set = options.pop("test_set", "test_2016_flickr")
    langs = parse_languages(options.pop("languages", None), LANGUAGES)
    media = pop_media_options(root, options, ("flickr30k-images", "images"), None)
    reject_unknown_options(NAME, options)
    if task not in (1, 2):
        raise ConfigError(f"{NAME}: task must be 1 or 2, got {task}")
    if test_set not in TEST_SETS:
        raise ConfigError(f"{NAME}: test_set must be one of {', '.join(TEST_SETS)}")
    task_dir = _task_dir(root, task)

    if task == 1:
        file_split = test_set if split == "test" else split
        images_file = f"image_splits/{file_split}.txt"
        per_image = [""]  # one sentence file per language: <split>.<lang>
        known = LANGUAGES
    else:
        file_split = "test_2016" if split == "test" else split
        images_file = f"image_splits/{file_split}_images.txt"
        per_image = [f".{k}" for k in range(1, 6)]
        known = ("en", "de")
    names = [line.split("#", 1)[0] for line in
             read_id_list(find_file(task_dir, [images_file], f"Multi30K {images_file}"))]
    if langs is None:
        langs = [lang for lang in known if any(
            (task_dir / "raw" / f"{file_split}{per_image[0]}.{lang}{gz}").is_file()
            for gz in ("", ".gz"))]
    elif set(langs) - set(known):
        raise ConfigError(f"{NAME}: task {task} has languages {', '.join(known)} only")
    if not langs:
        raise DatasetError(f"{NAME}: no sentence files for {file_split} under {task_dir / 'raw'}")

    captions = []
    for lang in langs:
        for k in per_image:
            sentences = _read_sentences(task_dir, f"{file_split}{k}.{lang}", len(names))
            captions.extend((i, lang, s.strip()) for i, s in enumerate(sentences) if s.strip())
    items = [PurePosixPath(n).stem for n in names]
    media_paths = None if media.media_pattern else names
    info = {"task": task, "file_split": file_split, "languages": langs}
    return build_dataset(NAME, split, items, captions, media, media_paths=media_paths,
                         default_media_type="image", info=info)
