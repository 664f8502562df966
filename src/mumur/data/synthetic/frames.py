"""What one frame of a synthetic item shows: every object's geometry at the frame's time, a
spatial caption, and canonical geometry targets.

The renderer knows where each object is in every frame (`render.object_state`); these functions
turn that into the single-frame facts that web image captions carry for real CLIP ("a small red
star at the top left on the beach") and into numbers for an auxiliary regression target. They are
used to pretrain world-CLIP on frames; nothing here changes the generated corpus.

Positions are named on a 3 x 3 grid of the frame (x right, y down, both in [0, 1]):
"at the top left", "at the top", "at the top right", "on the left", "in the centre", "on the
right", "at the bottom left", "at the bottom", "at the bottom right".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .languages import capitalize as cap
from .languages.en import PLACE as EN_PLACE
from .languages.en import image_captions, noun_phrase, video_captions
from .render import OBJECT_RADIUS, object_state
from .world import COLOURS, SHAPES, SIZES, Scene

__all__ = [
    "CELL_FIELDS",
    "GEOMETRY_FIELDS",
    "ObjectView",
    "cell_targets",
    "frame_time",
    "frame_views",
    "geometry_targets",
    "grid_cell",
    "position_phrase",
    "spatial_caption",
    "template_caption",
]

#: Per-slot fields of `geometry_targets`: present flag, centre, radius, and the angle as cos/sin.
GEOMETRY_FIELDS = ("present", "x", "y", "radius", "cos", "sin")
_ROWS = ("top", "", "bottom")
_COLS = ("left", "", "right")


@dataclass(frozen=True)
class ObjectView:
    """One object as it appears in one frame.

    Args:
        shape, colour, size: vocabulary strings.
        x, y: centre in [0, 1] frame coordinates (x right, y down).
        radius: drawn radius as a fraction of the frame side (size x grow/shrink scale).
        angle: rotation in degrees (the marker dot points along it).
    """

    shape: str
    colour: str
    size: str
    x: float
    y: float
    radius: float
    angle: float


def frame_time(frame_index: int, num_frames: int) -> float:
    """Clip time in [0, 1] of frame `frame_index` of a `num_frames`-frame video (the renderer's
    `t = i / (num_frames - 1)`)."""
    return frame_index / max(1, num_frames - 1)


def frame_views(scene: Scene, t: float) -> list[ObjectView]:
    """The objects of `scene` at clip time `t` (images: `t = 0`), in scene order (main first)."""
    views = []
    for obj in scene.objects:
        x, y, angle, scale = object_state(obj, t)
        views.append(ObjectView(obj.shape, obj.colour, obj.size, x, y,
                                OBJECT_RADIUS[obj.size] * scale, angle))
    return views


def grid_cell(x: float, y: float) -> tuple[int, int]:
    """(row, column) of a point on the 3 x 3 grid, each in {0, 1, 2}."""
    return min(2, int(y * 3)), min(2, int(x * 3))


def position_phrase(x: float, y: float) -> str:
    """The English phrase of a point's grid cell, e.g. "at the top left", "in the centre"."""
    row, col = grid_cell(x, y)
    if row == 1 and col == 1:
        return "in the centre"
    if row == 1:
        return f"on the {_COLS[col]}"
    if col == 1:
        return f"at the {_ROWS[row]}"
    return f"at the {_ROWS[row]} {_COLS[col]}"


def spatial_caption(scene: Scene, t: float, rng: np.random.Generator) -> str:
    """A caption naming every object of the frame with its size, colour, shape and grid position,
    and the place; objects in a random order, the place first or last.

    Args:
        scene: the item's scene.
        t: clip time of the frame.
        rng: source of the object order and the sentence form.

    Returns:
        e.g. "A small red star at the top left and a large blue circle in the centre, on the
        beach."
    """
    views = frame_views(scene, t)
    order = rng.permutation(len(views))
    parts = [f"{noun_phrase(views[i])} {position_phrase(views[i].x, views[i].y)}"
             for i in order]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    place = EN_PLACE[scene.place]
    if rng.random() < 0.5:
        return f"{cap(listed)}, {place}."
    return f"{cap(place)}: {listed}."


def template_caption(scene: Scene, rng: np.random.Generator, video: bool) -> str:
    """One of the world's English caption templates for the scene's main object (the short,
    human-like caption of an item), with or without the size.

    Args:
        scene: the item's scene.
        rng: source of the template and of the size choice.
        video: the video templates (with the motion), else the image templates.
    """
    with_size = bool(rng.random() < 0.5)
    render = video_captions if video else image_captions
    options = render(scene.main, scene.place, with_size=with_size)
    return options[int(rng.integers(len(options)))]


def _canonical_key(view: ObjectView) -> tuple[int, int, int]:
    return SHAPES.index(view.shape), COLOURS.index(view.colour), SIZES.index(view.size)


def geometry_targets(scene: Scene, t: float, slots: int = 3) -> np.ndarray:
    """Per-object geometry of a frame, in slots ordered by what is visible (shape, colour, size),
    so that the slot of an object can be told from the frame alone (the main object cannot).

    Args:
        scene: the item's scene.
        t: clip time of the frame.
        slots: number of slots (>= the number of objects; extra slots are all zeros).

    Returns:
        `(slots, 6)` float32: `GEOMETRY_FIELDS` per slot (present 1/0, x, y, radius, cos, sin of
        the angle).
    """
    views = sorted(frame_views(scene, t), key=_canonical_key)
    if len(views) > slots:
        raise ValueError(f"scene has {len(views)} objects, more than {slots} slots")
    out = np.zeros((slots, len(GEOMETRY_FIELDS)), np.float32)
    for k, v in enumerate(views):
        theta = math.radians(v.angle)
        out[k] = (1.0, v.x, v.y, v.radius, math.cos(theta), math.sin(theta))
    return out


#: Per-cell fields of `cell_targets` and their class counts (0 = empty cell, then the vocabulary).
CELL_FIELDS = {"shape": 1 + len(SHAPES), "colour": 1 + len(COLOURS), "size": 1 + len(SIZES)}


def cell_targets(scene: Scene, t: float) -> np.ndarray:
    """What each cell of the 3 x 3 grid shows at clip time `t`: the shape, colour and size of
    the object whose centre lies in it (the one drawn last, i.e. on top, when several do).

    Unlike `geometry_targets` this needs no object order: a cell is a fixed place in the frame,
    so every target can be read off the frame alone.

    Returns:
        `(9, 3)` int64, cells row-major, columns `CELL_FIELDS` (0 = empty, k = vocabulary
        index k - 1).
    """
    out = np.zeros((9, len(CELL_FIELDS)), np.int64)
    for v in reversed(frame_views(scene, t)):  # drawing order: the main object last, on top
        row, col = grid_cell(v.x, v.y)
        out[3 * row + col] = (SHAPES.index(v.shape) + 1, COLOURS.index(v.colour) + 1,
                              SIZES.index(v.size) + 1)
    return out
