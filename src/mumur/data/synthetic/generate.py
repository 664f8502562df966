"""Generate a synthetic corpus: scenes and captions (sequential, cheap), media files (parallel
worker processes), and `manifest.json`.

Manifest format (UTF-8 JSON, written byte-identically for the same arguments)::

    {"version": 1, "seed": S, "languages": ["en", ...],
     "render": {"size": 128, "fps": 8, "num_frames": 24, "sample_rate": 16000},
     "items": [{"id": "video-00000", "path": "videos/video-00000.mp4", "type": "video",
                "split": "train", "captions": {"en": [...], "de": [...], ...},
                "description": "...",
                "scene": {"place": "beach", "objects": [{"shape": "circle", "colour": "red",
                          "size": "large", "motion": "moves left", "sound": "beeps"}]}}, ...]}

Items are listed videos first, then images, each in index order. `path` is relative to the
manifest's folder. Images have `"motion": null, "sound": null`.

Uniqueness: within the val split and within the test split (videos and images together), no
item's caption can describe another item of the same split. The facts a val/test caption states
about the main object (place, shape, colour, size, motion) must not hold for any object of
another item of the split; an image caption (no motion) conflicts with any object of that place,
shape, colour and size, in an image or a video. Scenes that would break this are resampled from
the item's own random stream. There are 320 (place, shape, colour, size) combinations, so the
images of a val/test split compete with its videos: about 40 test videos leave room for 100+
test images, 200 test videos for about 50; a split too large raises `ConfigError` while
planning, before any media is rendered.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from ...errors import ConfigError
from ...fsutil import atomic_path, atomic_write_json
from .captions import describe, sample_captions
from .languages import LANGUAGES
from .render import (
    RenderConfig,
    render_audio,
    render_frames,
    render_image,
    write_image,
    write_video,
)
from .world import MEDIA_TYPES, Scene, item_rng, sample_scene

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "SynthConfig",
    "SynthReport",
    "build_manifest",
    "generate",
    "plan_corpus",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1
_MAX_RESAMPLES = 2000
_FOLDERS = {"video": ("videos", ".mp4"), "image": ("images", ".jpg")}


@dataclass(frozen=True)
class SynthConfig:
    """What to generate.

    Args:
        videos: number of videos.
        images: number of images.
        seed: corpus seed; the same config gives byte-identical manifest and media.
        languages: caption languages (codes from `LANGUAGES`; English is always included).
        val_fraction: fraction of each media type in the val split.
        test_fraction: fraction of each media type in the test split.
        render: media format.
    """

    videos: int = 200
    images: int = 100
    seed: int = 0
    languages: tuple[str, ...] = LANGUAGES
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    render: RenderConfig = field(default_factory=RenderConfig)

    def __post_init__(self):
        if self.videos < 0 or self.images < 0 or self.videos + self.images == 0:
            raise ConfigError(f"need a positive number of items, got videos={self.videos}, "
                              f"images={self.images}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction
                and self.val_fraction + self.test_fraction <= 1):
            raise ConfigError(f"val_fraction={self.val_fraction} and test_fraction="
                              f"{self.test_fraction} must be >= 0 and sum to at most 1")
        unknown = [code for code in self.languages if code not in LANGUAGES]
        if unknown:
            raise ConfigError(f"no synthetic captions for languages {unknown}; "
                              f"known: {', '.join(LANGUAGES)}")
        # English first, then the rest in the canonical order, no duplicates.
        ordered = tuple(code for code in LANGUAGES if code in set(self.languages) | {"en"})
        object.__setattr__(self, "languages", ordered)


@dataclass
class SynthReport:
    """What `generate` did: the manifest path, item counts and throughput."""

    manifest: Path
    items: int
    videos: int
    images: int
    seconds: float
    items_per_second: float
    workers: int


@dataclass(frozen=True)
class _Planned:
    media_type: str
    index: int
    split: str
    scene: Scene

    @property
    def item_id(self) -> str:
        return f"{self.media_type}-{self.index:05d}"

    @property
    def path(self) -> str:
        folder, ext = _FOLDERS[self.media_type]
        return f"{folder}/{self.item_id}{ext}"


class _SplitFacts:
    """The caption facts already claimed in one split (see the module docstring)."""

    def __init__(self):
        self.objects: dict[tuple, set] = {}  # (place, shape, colour, size) -> motions present
        self.mains: dict[tuple, set] = {}  # same, for main objects only

    @staticmethod
    def _hit(table: dict, key: tuple, motion) -> bool:
        motions = table.get(key)
        return bool(motions) and (motion is None or None in motions or motion in motions)

    def conflicts(self, scene: Scene) -> bool:
        main = scene.main
        if self._hit(self.objects, (scene.place, main.shape, main.colour, main.size),
                     main.motion):
            return True
        return any(self._hit(self.mains, (scene.place, o.shape, o.colour, o.size), o.motion)
                   for o in scene.objects)

    def add(self, scene: Scene) -> None:
        for i, o in enumerate(scene.objects):
            key = (scene.place, o.shape, o.colour, o.size)
            self.objects.setdefault(key, set()).add(o.motion)
            if i == 0:
                self.mains.setdefault(key, set()).add(o.motion)


def _splits(cfg: SynthConfig, media_type: str, n: int) -> list[str]:
    n_test = round(n * cfg.test_fraction)
    n_val = min(n - n_test, round(n * cfg.val_fraction))
    labels = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    order = item_rng(cfg.seed, media_type, 0, stream=2).permutation(n)
    return [labels[int(k)] for k in order]


def plan_corpus(cfg: SynthConfig) -> list[_Planned]:
    """Sample every item's scene and split (deterministic, sequential, no media written).

    Raises:
        ConfigError: a val/test split is too large to give every item a unique caption.
    """
    planned = []
    facts = {"val": _SplitFacts(), "test": _SplitFacts()}  # shared by both media types
    for media_type, n in (("video", cfg.videos), ("image", cfg.images)):
        for index, split in enumerate(_splits(cfg, media_type, n)):
            rng = item_rng(cfg.seed, media_type, index)
            for _ in range(_MAX_RESAMPLES):
                scene = sample_scene(rng, media_type)
                if split == "train" or not facts[split].conflicts(scene):
                    break
            else:
                raise ConfigError(
                    f"cannot give {media_type} {index} a caption unique in the {split} split "
                    f"after {_MAX_RESAMPLES} scenes; make the {split} split smaller")
            if split != "train":
                facts[split].add(scene)
            planned.append(_Planned(media_type, index, split, scene))
    return planned


def _manifest_item(item: _Planned, cfg: SynthConfig) -> dict:
    captions = {}
    for code in cfg.languages:
        rng = item_rng(cfg.seed, item.media_type, item.index, stream=10 + LANGUAGES.index(code))
        captions[code] = sample_captions(item.scene, code, item.split, rng)
    return {"id": item.item_id, "path": item.path, "type": item.media_type, "split": item.split,
            "captions": captions, "description": describe(item.scene),
            "scene": item.scene.to_manifest()}


def build_manifest(cfg: SynthConfig, planned: list | None = None) -> dict:
    """The manifest (as a dict) of the corpus `cfg` describes, without rendering any media.

    Args:
        cfg: what to generate.
        planned: the output of `plan_corpus(cfg)` when already computed.

    Returns:
        `{"version", "seed", "languages", "render", "items"}` (format in the module docstring).
    """
    planned = plan_corpus(cfg) if planned is None else planned
    render = {k: v for k, v in asdict(cfg.render).items()
              if k in ("size", "fps", "num_frames", "sample_rate")}
    return {"version": MANIFEST_VERSION, "seed": cfg.seed, "languages": list(cfg.languages),
            "render": render, "items": [_manifest_item(item, cfg) for item in planned]}


def _render_job(job: tuple) -> str:
    """Render and write one item (runs in a worker process)."""
    seed, item, path, render_cfg = job
    rng = item_rng(seed, item.media_type, item.index, stream=1)
    # No fsync: a rerun rewrites every file byte-identically.
    with atomic_path(path, fsync=False) as tmp:
        if item.media_type == "video":
            frames = render_frames(item.scene, rng, render_cfg)
            write_video(tmp, frames, render_audio(item.scene, rng, render_cfg), render_cfg)
        else:
            write_image(tmp, render_image(item.scene, rng, render_cfg), render_cfg)
    return item.item_id


def generate(out, cfg: SynthConfig | None = None, workers: int | None = None,
             progress: bool = True) -> SynthReport:
    """Write a synthetic corpus (media files + `manifest.json`) into `out`.

    Args:
        out: output folder (created; existing files of the same names are overwritten).
        cfg: what to generate (defaults to `SynthConfig()`).
        workers: render processes; default `os.cpu_count()`; 1 renders in this process.
            The output does not depend on it.
        progress: show a tqdm progress bar.

    Returns:
        A `SynthReport` with the manifest path and items/s.
    """
    cfg = cfg or SynthConfig()
    out = Path(out)
    workers = max(1, workers or os.cpu_count() or 1)
    start = time.perf_counter()
    planned = plan_corpus(cfg)
    manifest = build_manifest(cfg, planned)
    for media_type in MEDIA_TYPES:
        (out / _FOLDERS[media_type][0]).mkdir(parents=True, exist_ok=True)
    jobs = [(cfg.seed, item, out / item.path, cfg.render) for item in planned]
    bar = tqdm(total=len(jobs), desc="synth", unit="item", disable=not progress)
    if workers == 1:
        for job in jobs:
            _render_job(job)
            bar.update()
    else:
        # spawn, not fork: callers (demo, training) may hold torch threads.
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            chunksize = max(1, min(32, len(jobs) // (workers * 4)))
            for _ in pool.map(_render_job, jobs, chunksize=chunksize):
                bar.update()
    bar.close()
    atomic_write_json(out / MANIFEST_NAME, manifest, indent=1)  # last: the corpus is complete
    seconds = time.perf_counter() - start
    return SynthReport(manifest=out / MANIFEST_NAME, items=len(planned), videos=cfg.videos,
                       images=cfg.images, seconds=seconds,
                       items_per_second=len(planned) / max(seconds, 1e-9), workers=workers)
