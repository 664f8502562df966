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

Multi-shot videos (`multi_shot`, the fraction of videos cut into 2 or 3 shots): each shot has
its own scene (a different place per shot), its motions run over the shot, and the cuts fall
mid-video (every shot at least a quarter of the clip). Such an item has, instead of `scene`::

    "shots": [{"start": 0.0, "end": 1.25, "scene": {...}}, {"start": 1.25, "end": 3.0, ...}],
    "caption_shots": {"en": [1, 0], "de": [1, 0, 1], ...}

(seconds; `caption_shots[lang][j]` is the shot caption j of that language describes; caption
position j describes the same shot in every language). For uniqueness a multi-shot item claims
the described shot's main object and every object of every shot. The manifest then also lists
`"multi_shot": fraction`. With `multi_shot = 0` (the default) the output is byte-identical to a
world without the option; with a fraction, single-shot train items are unchanged and which videos
are cut depends only on (seed, index).

Worlds are separated by seed: the items of two seeds share no random stream. Pretraining worlds
use seeds 1000-1999 (world-CLIP: 1001 pretraining, 1002 its validation; see
`mumur/configs/pretrain/`); evaluation worlds (demo, instrument) use other seeds. Independent test
worlds for a larger instrument are simply several seeds with `test_fraction=1.0` (e.g. `mumur
synth --seed 11 --videos 200 --images 0 --val-fraction 0 --test-fraction 1`); `id_prefix`
(e.g. "s11-") keeps item ids unique when such worlds are merged, and is written to the manifest.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...errors import ConfigError
from ...fsutil import atomic_path, atomic_write_json
from .captions import describe, describe_shots, sample_captions, sample_shot_captions
from .languages import LANGUAGES
from .render import (
    RenderConfig,
    render_audio,
    render_frames,
    render_image,
    write_image,
    write_video,
)
from .world import MEDIA_TYPES, Scene, Shot, item_rng, sample_scene, sample_shot_frames

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
        multi_shot: fraction of videos cut into 2-3 shots with different scenes (0: none).
        id_prefix: prepended to every item id (e.g. "s11-" to merge several worlds).
    """

    videos: int = 200
    images: int = 100
    seed: int = 0
    languages: tuple[str, ...] = LANGUAGES
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    render: RenderConfig = field(default_factory=RenderConfig)
    multi_shot: float = 0.0
    id_prefix: str = ""

    def __post_init__(self):
        if self.videos < 0 or self.images < 0 or self.videos + self.images == 0:
            raise ConfigError(f"need a positive number of items, got videos={self.videos}, "
                              f"images={self.images}")
        if not (0 <= self.val_fraction and 0 <= self.test_fraction
                and self.val_fraction + self.test_fraction <= 1):
            raise ConfigError(f"val_fraction={self.val_fraction} and test_fraction="
                              f"{self.test_fraction} must be >= 0 and sum to at most 1")
        if not 0 <= self.multi_shot <= 1:
            raise ConfigError(f"multi_shot={self.multi_shot} must be a fraction in [0, 1]")
        if self.multi_shot > 0 and self.render.num_frames < 12:
            raise ConfigError(f"multi-shot videos need at least 12 frames per video, got "
                              f"{self.render.num_frames} (set multi_shot to 0)")
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
    """One planned item. Multi-shot videos carry `shots` (their `scene` is the first shot's) and
    `caption_order`, the shot each caption position describes."""

    media_type: str
    index: int
    split: str
    scene: Scene
    shots: tuple[Shot, ...] | None = None
    caption_order: tuple[int, ...] | None = None
    id_prefix: str = ""

    @property
    def item_id(self) -> str:
        return f"{self.id_prefix}{self.media_type}-{self.index:05d}"

    @property
    def path(self) -> str:
        folder, ext = _FOLDERS[self.media_type]
        return f"{folder}/{self.item_id}{ext}"

    @property
    def scenes(self) -> tuple[Scene, ...]:
        """Every scene of the item (one, or one per shot)."""
        return tuple(s.scene for s in self.shots) if self.shots else (self.scene,)

    @property
    def described(self) -> Scene:
        """The scene that val/test captions (caption position 0) describe."""
        return self.shots[self.caption_order[0]].scene if self.shots else self.scene


class _SplitFacts:
    """The caption facts already claimed in one split (see the module docstring)."""

    def __init__(self):
        self.objects: dict[tuple, set] = {}  # (place, shape, colour, size) -> motions present
        self.mains: dict[tuple, set] = {}  # same, for main objects only

    @staticmethod
    def _hit(table: dict, key: tuple, motion) -> bool:
        motions = table.get(key)
        return bool(motions) and (motion is None or None in motions or motion in motions)

    def conflicts(self, described: Scene, scenes: tuple[Scene, ...]) -> bool:
        """Whether the caption of `described` (one of `scenes`, the item's scenes) could
        describe an item already in the split, or a caption there could describe this one."""
        main = described.main
        if self._hit(self.objects, (described.place, main.shape, main.colour, main.size),
                     main.motion):
            return True
        return any(self._hit(self.mains, (s.place, o.shape, o.colour, o.size), o.motion)
                   for s in scenes for o in s.objects)

    def add(self, described: Scene, scenes: tuple[Scene, ...]) -> None:
        for s in scenes:
            for o in s.objects:
                self.objects.setdefault((s.place, o.shape, o.colour, o.size), set()).add(o.motion)
        main = described.main
        key = (described.place, main.shape, main.colour, main.size)
        self.mains.setdefault(key, set()).add(main.motion)


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
            layout = _shot_layout(cfg, media_type, index)
            for _ in range(_MAX_RESAMPLES):
                item = _sample_item(rng, media_type, index, split, layout, cfg.id_prefix)
                if split == "train" or not facts[split].conflicts(item.described, item.scenes):
                    break
            else:
                raise ConfigError(
                    f"cannot give {media_type} {index} a caption unique in the {split} split "
                    f"after {_MAX_RESAMPLES} scenes; make the {split} split smaller")
            if split != "train":
                facts[split].add(item.described, item.scenes)
            planned.append(item)
    return planned


def _shot_layout(cfg: SynthConfig, media_type: str, index: int):
    """`(frame ranges, caption order)` of a multi-shot video, or None (own stream 3)."""
    if media_type != "video" or cfg.multi_shot <= 0:
        return None
    rng = item_rng(cfg.seed, media_type, index, stream=3)
    if rng.random() >= cfg.multi_shot:
        return None
    ranges = sample_shot_frames(rng, cfg.render.num_frames)
    first = [int(k) for k in rng.permutation(len(ranges))]
    return ranges, tuple(first[j % len(first)] for j in range(3))


def _sample_item(rng, media_type: str, index: int, split: str, layout, id_prefix: str
                 ) -> _Planned:
    """Draw the scene(s) of one item; the shots of a multi-shot video get different places."""
    if layout is None:
        return _Planned(media_type, index, split, sample_scene(rng, media_type),
                        id_prefix=id_prefix)
    ranges, order = layout
    scenes: list[Scene] = []
    while len(scenes) < len(ranges):
        scene = sample_scene(rng, media_type)
        if all(scene.place != s.place for s in scenes):
            scenes.append(scene)
    shots = tuple(Shot(a, b, s) for (a, b), s in zip(ranges, scenes))
    return _Planned(media_type, index, split, scenes[0], shots, order, id_prefix)


def _manifest_item(item: _Planned, cfg: SynthConfig) -> dict:
    captions, caption_shots = {}, {}
    for code in cfg.languages:
        rng = item_rng(cfg.seed, item.media_type, item.index, stream=10 + LANGUAGES.index(code))
        if item.shots:
            captions[code], caption_shots[code] = sample_shot_captions(
                list(item.scenes), list(item.caption_order), code, item.split, rng)
        else:
            captions[code] = sample_captions(item.scene, code, item.split, rng)
    entry = {"id": item.item_id, "path": item.path, "type": item.media_type,
             "split": item.split, "captions": captions}
    if not item.shots:
        return {**entry, "description": describe(item.scene), "scene": item.scene.to_manifest()}
    fps = cfg.render.fps
    shots = [shot.to_manifest(fps) for shot in item.shots]
    return {**entry, "description": describe_shots(list(item.scenes),
                                                   [(s["start"], s["end"]) for s in shots]),
            "shots": shots, "caption_shots": caption_shots}


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
    manifest = {"version": MANIFEST_VERSION, "seed": cfg.seed, "languages": list(cfg.languages),
                "render": render}
    # Keys only present when used, so that worlds without them keep their exact bytes.
    if cfg.multi_shot > 0:
        manifest["multi_shot"] = cfg.multi_shot
    if cfg.id_prefix:
        manifest["id_prefix"] = cfg.id_prefix
    manifest["items"] = [_manifest_item(item, cfg) for item in planned]
    return manifest


def _render_job(job: tuple) -> str:
    """Render and write one item (runs in a worker process)."""
    seed, item, path, render_cfg = job
    rng = item_rng(seed, item.media_type, item.index, stream=1)
    # No fsync: a rerun rewrites every file byte-identically.
    with atomic_path(path, fsync=False) as tmp:
        if item.media_type == "video" and item.shots:
            frames, audio = _render_shots(item.shots, rng, render_cfg)
            write_video(tmp, frames, audio, render_cfg)
        elif item.media_type == "video":
            frames = render_frames(item.scene, rng, render_cfg)
            write_video(tmp, frames, render_audio(item.scene, rng, render_cfg), render_cfg)
        else:
            write_image(tmp, render_image(item.scene, rng, render_cfg), render_cfg)
    return item.item_id


def _render_shots(shots, rng, cfg: RenderConfig):
    """Frames and sound track of a multi-shot video: each shot rendered on its own, joined by
    hard cuts (the sound cuts at the same instants)."""
    frames, audio = [], []
    total = round(cfg.duration * cfg.sample_rate)
    for shot in shots:
        frames += render_frames(shot.scene, rng, cfg, shot.end_frame - shot.start_frame)
        a = round(shot.start_frame / cfg.fps * cfg.sample_rate)
        b = total if shot.end_frame == cfg.num_frames else round(
            shot.end_frame / cfg.fps * cfg.sample_rate)
        audio.append(render_audio(shot.scene, rng, cfg, b - a))
    return frames, np.concatenate(audio)


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
