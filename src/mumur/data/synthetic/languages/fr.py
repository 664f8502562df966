"""French captions: noun gender with article and adjective agreement, size adjectives before and
colour adjectives after the noun, elision (d'un), agreeing reflexive (sur lui-/elle-même)."""

from __future__ import annotations

from . import join
from ._romance import image_sentences, video_sentences

__all__ = ["image_captions", "noun_phrase", "video_captions"]

NOUNS = {"circle": ("cercle", "m"), "square": ("carré", "m"), "triangle": ("triangle", "m"),
         "star": ("étoile", "f"), "heart": ("cœur", "m")}
# (masculine, feminine)
COLOURS = {"red": ("rouge", "rouge"), "green": ("vert", "verte"), "blue": ("bleu", "bleue"),
           "yellow": ("jaune", "jaune"), "purple": ("violet", "violette"),
           "orange": ("orange", "orange"), "white": ("blanc", "blanche"),
           "black": ("noir", "noire")}
SIZES = {"small": ("petit", "petite"), "large": ("grand", "grande")}
MOTIONS = {
    "moves left": ("se déplace vers la gauche",) * 2,
    "moves right": ("se déplace vers la droite",) * 2,
    "moves up": ("monte",) * 2, "moves down": ("descend",) * 2,
    "rotates": ("tourne sur lui-même", "tourne sur elle-même"),
    "grows": ("grandit",) * 2, "shrinks": ("rétrécit",) * 2,
    "stays still": ("reste immobile",) * 2,
}
SOUNDS = {"beeps": "émet des bips", "hums": "bourdonne", "clicks": "fait des clics"}
PLACE = {"beach": "sur la plage", "grass": "dans l'herbe", "snow": "dans la neige",
         "night": "la nuit"}


def noun_phrase(obj, with_size: bool = True) -> str:
    """'un grand cercle rouge', 'une petite étoile blanche'."""
    noun, gender = NOUNS[obj.shape]
    g = 0 if gender == "m" else 1
    size = SIZES[obj.size][g] if with_size else ""
    return join("un" if g == 0 else "une", size, noun, COLOURS[obj.colour][g])


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    motion = MOTIONS[obj.motion][0 if NOUNS[obj.shape][1] == "m" else 1]
    sound = SOUNDS[obj.sound] if obj.sound else None
    return video_sentences(noun_phrase(obj, with_size), motion, PLACE[place], sound,
                           video_of="Une vidéo d'", that="qui", conjunction="et")


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    return image_sentences(noun_phrase(obj, with_size), PLACE[place], photo_of="Une photo d'",
                           there_is="Il y a")
