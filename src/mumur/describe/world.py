"""The synthetic world's own long descriptions as a description backend (not a model).

`world-descriptions` returns the `description` field of the item's entry in the `manifest.json` of
the world the file belongs to (found by walking up from the file): the stand-in for an MLLM
description in the offline stack, correct by construction. `world-descriptions-degraded` rewrites
it from a corrupted scene, so that robustness to description errors can be measured: each fact
(the place, and every object) is corrupted with probability `share`: an object is dropped
(`mode="drop"`, or half of the time with `"mixed"`; a scene's last object is swapped instead) or
one of its attributes (shape, colour, size, motion) is swapped for another value (`"swap"`); the
place is swapped. Draws are seeded per (seed, item path), so a description never changes
between runs.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..data.synthetic.captions import describe, describe_shots
from ..data.synthetic.world import COLOURS, MOTIONS, PLACES, SHAPES, SIZES, Scene, SceneObject
from ..errors import ConfigError

__all__ = ["DEGRADE_MODES", "WorldDescriptions", "corrupt_scene", "world_entry"]

DEGRADE_MODES = ("drop", "swap", "mixed")
_ATTRIBUTES = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "motion": MOTIONS}


@lru_cache(maxsize=16)
def _manifest_items(manifest: str, mtime: float) -> dict[str, dict]:
    data = json.loads(Path(manifest).read_text(encoding="utf-8"))
    root = Path(manifest).parent
    return {str((root / item["path"]).resolve()): item for item in data["items"]}


def world_entry(path: str | Path) -> dict:
    """The manifest entry of a synthetic world's media file.

    Raises:
        ConfigError: the file is in no synthetic world (no manifest.json above it lists it).
    """
    path = Path(path).resolve()
    for folder in path.parents:
        manifest = folder / "manifest.json"
        if manifest.is_file():
            entry = _manifest_items(str(manifest), manifest.stat().st_mtime).get(str(path))
            if entry is not None:
                return entry
    raise ConfigError(f"{path}: not an item of a synthetic world (no manifest.json lists it); "
                      "the world-descriptions backend only describes world items; use an MLLM "
                      "backend (hf-caption:..., hf-chat:...) for other media")


def _scene(media_type: str, spec: dict) -> Scene:
    objects = tuple(SceneObject(o["shape"], o["colour"], o["size"], o.get("motion"),
                                o.get("sound"), 0.0, 0.0, 0.0) for o in spec["objects"])
    return Scene(media_type, spec["place"], objects)


def _other(rng: np.random.Generator, values: tuple[str, ...], current: str) -> str:
    choices = [v for v in values if v != current]
    return choices[int(rng.integers(len(choices)))]


def corrupt_scene(scene: Scene, share: float, mode: str, rng: np.random.Generator) -> Scene:
    """The scene with each fact corrupted with probability `share` (module docstring)."""
    place = _other(rng, PLACES, scene.place) if rng.random() < share else scene.place
    objects = []
    n = len(scene.objects)
    for k, obj in enumerate(scene.objects):
        if rng.random() >= share:
            objects.append(obj)
            continue
        drop = mode == "drop" or (mode == "mixed" and rng.random() < 0.5)
        if drop and (objects or k < n - 1):  # keep at least one object
            continue
        names = [a for a in _ATTRIBUTES if getattr(obj, a) is not None]
        attribute = names[int(rng.integers(len(names)))]
        fields = {**obj.__dict__, attribute: _other(rng, _ATTRIBUTES[attribute],
                                                     getattr(obj, attribute))}
        objects.append(SceneObject(**fields))
    return Scene(scene.media_type, place, tuple(objects))


class WorldDescriptions:
    """`world-descriptions` (share 0) or `world-descriptions-degraded` (module docstring).

    Args:
        share: probability that each fact is corrupted, in [0, 1].
        mode: ``drop``, ``swap`` or ``mixed``.
        seed: seed of the corruption draws.
    """

    prompt = ""  # not a model: no prompt
    cacheable = False  # a manifest lookup: nothing to save by caching

    def __init__(self, share: float = 0.0, mode: str = "mixed", seed: int = 0):
        if not 0.0 <= share <= 1.0 or mode not in DEGRADE_MODES:
            raise ConfigError(f"world descriptions: share={share} must be in [0, 1] and "
                              f"mode={mode!r} one of {DEGRADE_MODES}")
        self.share, self.mode, self.seed = float(share), mode, int(seed)

    @property
    def identity(self) -> str:
        if not self.share:
            return "world-descriptions"
        return f"world-descriptions-degraded:share={self.share:g},mode={self.mode},seed={self.seed}"

    def describe(self, paths: list[str]) -> list[str]:
        """The (possibly degraded) manifest descriptions of world media files."""
        return [self._one(p) for p in paths]

    def _one(self, path: str) -> str:
        entry = world_entry(path)
        if not self.share:
            return entry["description"]
        digest = hashlib.sha1(f"{self.seed}\x00{entry['path']}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        if entry.get("shots"):
            scenes = [corrupt_scene(_scene(entry["type"], s["scene"]), self.share, self.mode, rng)
                      for s in entry["shots"]]
            return describe_shots(scenes, [(s["start"], s["end"]) for s in entry["shots"]])
        return describe(corrupt_scene(_scene(entry["type"], entry["scene"]), self.share,
                                      self.mode, rng))
