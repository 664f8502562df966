"""English captions."""

from __future__ import annotations

from . import capitalize as cap
from . import join

__all__ = ["image_captions", "noun_phrase", "video_captions"]

_ING = {"moves left": "moving left", "moves right": "moving right", "moves up": "moving up",
        "moves down": "moving down", "rotates": "rotating", "grows": "growing",
        "shrinks": "shrinking", "stays still": "staying still"}
PLACE = {"beach": "on the beach", "grass": "on the grass", "snow": "in the snow",
         "night": "at night"}


def noun_phrase(obj, with_size: bool = True) -> str:
    """'a large red circle', 'an orange star' (indefinite article by the next word's sound)."""
    words = join(obj.size if with_size else "", obj.colour, obj.shape)
    article = "an" if words[0] in "aeiou" else "a"
    return f"{article} {words}"


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at = noun_phrase(obj, with_size), PLACE[place]
    out = [
        f"{cap(np_)} {obj.motion} {at}.",
        f"{cap(at)}, {np_} {obj.motion}.",
        f"A video of {np_} {_ING[obj.motion]} {at}.",
    ]
    if obj.sound:
        out.append(f"{cap(np_)} {obj.motion} and {obj.sound} {at}.")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at = noun_phrase(obj, with_size), PLACE[place]
    return [f"{cap(np_)} {at}.", f"A photo of {np_} {at}.", f"There is {np_} {at}."]
