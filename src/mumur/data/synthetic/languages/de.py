"""German captions: gender (m/f/n), case (nominative, accusative, dative) with mixed adjective
declension after `ein`, V2 word order with inversion, verb-final relative clauses."""

from __future__ import annotations

from . import capitalize as cap
from . import join

__all__ = ["image_captions", "noun_phrase", "video_captions"]

# shape -> (noun, gender, dative form)
NOUNS = {"circle": ("Kreis", "m", "Kreis"), "square": ("Quadrat", "n", "Quadrat"),
         "triangle": ("Dreieck", "n", "Dreieck"), "star": ("Stern", "m", "Stern"),
         "heart": ("Herz", "n", "Herzen")}
ADJ = {"small": "klein", "large": "groß", "red": "rot", "green": "grün", "blue": "blau",
       "yellow": "gelb", "purple": "violett", "orange": "orangefarben", "white": "weiß",
       "black": "schwarz"}
# (case, gender) -> (article, strong-mixed adjective ending)
_ARTICLE = {
    ("nom", "m"): ("ein", "er"), ("nom", "f"): ("eine", "e"), ("nom", "n"): ("ein", "es"),
    ("acc", "m"): ("einen", "en"), ("acc", "f"): ("eine", "e"), ("acc", "n"): ("ein", "es"),
    ("dat", "m"): ("einem", "en"), ("dat", "f"): ("einer", "en"), ("dat", "n"): ("einem", "en"),
}
_RELATIVE = {"m": "der", "f": "die", "n": "das"}
# motion -> (finite verb [+ reflexive], sentence-final rest, verb-final subordinate form)
MOTIONS = {
    "moves left": ("bewegt sich", "nach links", "sich", "nach links bewegt"),
    "moves right": ("bewegt sich", "nach rechts", "sich", "nach rechts bewegt"),
    "moves up": ("bewegt sich", "nach oben", "sich", "nach oben bewegt"),
    "moves down": ("bewegt sich", "nach unten", "sich", "nach unten bewegt"),
    "rotates": ("dreht sich", "", "sich", "dreht"),
    "grows": ("wird", "größer", "", "größer wird"),
    "shrinks": ("wird", "kleiner", "", "kleiner wird"),
    "stays still": ("steht", "still", "", "stillsteht"),
}
SOUNDS = {"beeps": "piept", "hums": "brummt", "clicks": "klickt"}
PLACE = {"beach": "am Strand", "grass": "auf der Wiese", "snow": "im Schnee",
         "night": "in der Nacht"}


def noun_phrase(obj, case: str = "nom", with_size: bool = True) -> str:
    """'ein großer roter Kreis' (nom), 'einen großen roten Kreis' (acc), 'einem großen roten
    Herzen' (dat)."""
    noun, gender, dative = NOUNS[obj.shape]
    article, ending = _ARTICLE[(case, gender)]
    adjectives = ([ADJ[obj.size]] if with_size else []) + [ADJ[obj.colour]]
    return join(article, *(a + ending for a in adjectives), dative if case == "dat" else noun)


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    nom, dat = noun_phrase(obj, "nom", with_size), noun_phrase(obj, "dat", with_size)
    finite, rest, reflexive, subordinate = MOTIONS[obj.motion]
    at = PLACE[place]
    relative = _RELATIVE[NOUNS[obj.shape][1]]
    out = [
        join(cap(nom), finite, at, rest) + ".",
        join(cap(at), finite, nom, rest) + ".",
        f"Ein Video von {dat}, " + join(relative, reflexive, at, subordinate) + ".",
    ]
    if obj.sound:
        out.append(join(cap(nom), SOUNDS[obj.sound], "und", finite, at, rest) + ".")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    at = PLACE[place]
    return [
        f"{cap(noun_phrase(obj, 'nom', with_size))} {at}.",
        f"Ein Foto von {noun_phrase(obj, 'dat', with_size)} {at}.",
        f"{cap(at)} ist {noun_phrase(obj, 'nom', with_size)} zu sehen.",
        f"Man sieht {noun_phrase(obj, 'acc', with_size)} {at}.",
    ]
