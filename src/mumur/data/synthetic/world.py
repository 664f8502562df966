"""Scene sampling for the synthetic world: the vocabulary, scenes, and per-item random streams.

A scene is a place (background) and 1 to 3 objects. Each object has a shape, colour and size;
in videos also a motion and a sound (or none). Objects also carry layout parameters (start
position, start angle) that the renderer uses but the manifest does not list. The manifest's
`scene` fields use exactly the English strings of the vocabulary below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "COLOURS",
    "MEDIA_TYPES",
    "MOTIONS",
    "PLACES",
    "SHAPES",
    "SIZES",
    "SOUNDS",
    "Scene",
    "SceneObject",
    "Shot",
    "item_rng",
    "sample_scene",
    "sample_shot_frames",
]

SHAPES = ("circle", "square", "triangle", "star", "heart")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
SIZES = ("small", "large")
MOTIONS = ("moves left", "moves right", "moves up", "moves down", "rotates", "grows", "shrinks",
           "stays still")
PLACES = ("beach", "grass", "snow", "night")
SOUNDS = ("beeps", "hums", "clicks")
MEDIA_TYPES = ("video", "image")

# Probability that a video object is silent (its `sound` is null).
_P_SILENT = 0.4
# Horizontal/vertical travel of a moving object over the clip, as a fraction of the frame side.
TRAVEL = 0.35


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene.

    Args:
        shape, colour, size: vocabulary strings (`SHAPES`, `COLOURS`, `SIZES`).
        motion: one of `MOTIONS` for videos, None for images.
        sound: one of `SOUNDS` or None (silent; always None for images).
        x, y: start centre in [0, 1] frame coordinates (x right, y down); chosen so that the
            whole path stays inside the frame.
        angle: start rotation in degrees.
    """

    shape: str
    colour: str
    size: str
    motion: str | None
    sound: str | None
    x: float
    y: float
    angle: float

    def to_manifest(self) -> dict:
        return {"shape": self.shape, "colour": self.colour, "size": self.size,
                "motion": self.motion, "sound": self.sound}


@dataclass(frozen=True)
class Scene:
    """A place and its objects; `objects[0]` is the main (salient) object named by captions."""

    media_type: str
    place: str
    objects: tuple[SceneObject, ...]

    @property
    def main(self) -> SceneObject:
        return self.objects[0]

    def to_manifest(self) -> dict:
        return {"place": self.place, "objects": [o.to_manifest() for o in self.objects]}


@dataclass(frozen=True)
class Shot:
    """One shot of a multi-shot video: frames `start_frame` (inclusive) to `end_frame`
    (exclusive) show `scene`, whose motions run over the shot."""

    start_frame: int
    end_frame: int
    scene: Scene

    def to_manifest(self, fps: int) -> dict:
        return {"start": round(self.start_frame / fps, 6), "end": round(self.end_frame / fps, 6),
                "scene": self.scene.to_manifest()}


# Shortest shot, as a fraction of the clip: long enough for a motion to show over several
# sampled frames (3 of 12 uniformly sampled frames of a 24-frame clip).
MIN_SHOT_FRACTION = 0.25


def sample_shot_frames(rng: np.random.Generator, num_frames: int) -> list[tuple[int, int]]:
    """Frame ranges `[(start, end), ...]` of 2 or 3 shots covering `num_frames` frames, cut
    mid-video (every shot at least `MIN_SHOT_FRACTION` of the clip).

    Args:
        rng: the item's shot-layout stream.
        num_frames: frames of the clip (>= 12).
    """
    shortest = max(2, round(num_frames * MIN_SHOT_FRACTION))
    n_shots = int(rng.integers(2, 4))
    if n_shots == 2:
        lo, hi = max(shortest, round(num_frames * 0.35)), min(num_frames - shortest,
                                                              round(num_frames * 0.65))
        cuts = [int(rng.integers(lo, hi + 1))]
    else:
        first = int(rng.integers(shortest, round(num_frames * 0.4) + 1))
        second = int(rng.integers(first + shortest, num_frames - shortest + 1))
        cuts = [first, second]
    bounds = [0, *cuts, num_frames]
    return [(bounds[k], bounds[k + 1]) for k in range(len(bounds) - 1)]


def item_rng(seed: int, media_type: str, index: int, stream: int = 0) -> np.random.Generator:
    """The random stream of an item: a function of (seed, media type, index, stream) only, so
    neither the number of worker processes, nor the order of work, nor the number of items of
    the other media type changes an item.

    Args:
        seed: corpus seed.
        media_type: "video" or "image".
        index: the item's index among items of its media type.
        stream: 0 scene sampling, 1 rendering details (textures, tones), 2 split assignment,
            3 multi-shot choice and shot layout, 10 + k captions of language k.
    """
    return np.random.default_rng([int(seed), MEDIA_TYPES.index(media_type), int(index),
                                  int(stream)])


def _pick(rng: np.random.Generator, values: tuple[str, ...]) -> str:
    return values[int(rng.integers(len(values)))]


def _start_position(rng: np.random.Generator, size: str, motion: str | None) -> tuple[float, float]:
    # Leave room for the object and its travel, so direction is visible and never clipped; the
    # start is uniform over the admissible range so one frame does not reveal the direction.
    margin = 0.12 if size == "small" else 0.23
    lo, hi = margin, 1.0 - margin
    x_lo, x_hi, y_lo, y_hi = lo, hi, lo, hi
    if motion == "moves left":
        x_lo = lo + TRAVEL
    elif motion == "moves right":
        x_hi = hi - TRAVEL
    elif motion == "moves up":
        y_lo = lo + TRAVEL
    elif motion == "moves down":
        y_hi = hi - TRAVEL
    return float(rng.uniform(x_lo, x_hi)), float(rng.uniform(y_lo, y_hi))


def sample_scene(rng: np.random.Generator, media_type: str) -> Scene:
    """Draw one scene.

    Args:
        rng: the item's random stream.
        media_type: "video" (motion and sound per object) or "image" (both None).

    Returns:
        A `Scene` with 1 to 3 objects; the main object is `objects[0]`.
    """
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"media_type must be one of {MEDIA_TYPES}, got {media_type!r}")
    place = _pick(rng, PLACES)
    n_objects = int(rng.integers(1, 4))
    objects = []
    for _ in range(n_objects):
        shape, colour, size = _pick(rng, SHAPES), _pick(rng, COLOURS), _pick(rng, SIZES)
        motion = sound = None
        if media_type == "video":
            motion = _pick(rng, MOTIONS)
            sound = None if rng.random() < _P_SILENT else _pick(rng, SOUNDS)
        x, y = _start_position(rng, size, motion)
        angle = float(rng.uniform(0.0, 360.0))
        objects.append(SceneObject(shape, colour, size, motion, sound, x, y, angle))
    return Scene(media_type, place, tuple(objects))

