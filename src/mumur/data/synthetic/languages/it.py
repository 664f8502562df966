"""Italian captions: noun gender with article (un/uno/una/un') and adjective agreement, size
before and colour after the noun, agreeing predicate (fermo/ferma)."""

from __future__ import annotations

from ._romance import image_sentences, video_sentences

__all__ = ["image_captions", "indefinite_article", "noun_phrase", "video_captions"]

NOUNS = {"circle": ("cerchio", "m"), "square": ("quadrato", "m"),
         "triangle": ("triangolo", "m"), "star": ("stella", "f"), "heart": ("cuore", "m")}
COLOURS = {"red": ("rosso", "rossa"), "green": ("verde", "verde"), "blue": ("blu", "blu"),
           "yellow": ("giallo", "gialla"), "purple": ("viola", "viola"),
           "orange": ("arancione", "arancione"), "white": ("bianco", "bianca"),
           "black": ("nero", "nera")}
SIZES = {"small": ("piccolo", "piccola"), "large": ("grande", "grande")}
MOTIONS = {
    "moves left": ("si sposta verso sinistra",) * 2,
    "moves right": ("si sposta verso destra",) * 2,
    "moves up": ("sale",) * 2, "moves down": ("scende",) * 2, "rotates": ("ruota",) * 2,
    "grows": ("cresce",) * 2, "shrinks": ("si rimpicciolisce",) * 2,
    "stays still": ("resta fermo", "resta ferma"),
}
SOUNDS = {"beeps": "emette dei bip", "hums": "ronza", "clicks": "fa dei clic"}
PLACE = {"beach": "sulla spiaggia", "grass": "sull'erba", "snow": "sulla neve",
         "night": "di notte"}


def indefinite_article(next_word: str, gender: str) -> str:
    """un/uno (before s+consonant, z, gn, ps, x, y) for masculine; una/un' for feminine."""
    w = next_word.lower()
    if gender == "f":
        return "un'" if w[0] in "aeiouàèéìòù" else "una "
    impure = (w[0] == "s" and len(w) > 1 and w[1] not in "aeiou") or w[0] in "zxy" \
        or w.startswith(("gn", "ps", "pn"))
    return "uno " if impure else "un "


def noun_phrase(obj, with_size: bool = True) -> str:
    """'un grande cerchio rosso', 'una piccola stella bianca'."""
    noun, gender = NOUNS[obj.shape]
    g = 0 if gender == "m" else 1
    rest = " ".join(([SIZES[obj.size][g]] if with_size else []) + [noun, COLOURS[obj.colour][g]])
    return indefinite_article(rest, gender) + rest


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    motion = MOTIONS[obj.motion][0 if NOUNS[obj.shape][1] == "m" else 1]
    sound = SOUNDS[obj.sound] if obj.sound else None
    conjunction = "ed" if sound and sound.startswith("e") else "e"  # euphonic d: ed emette
    return video_sentences(noun_phrase(obj, with_size), motion, PLACE[place], sound,
                           video_of="Un video di ", that="che", conjunction=conjunction)


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    return image_sentences(noun_phrase(obj, with_size), PLACE[place], photo_of="Una foto di ",
                           there_is="C'è")
