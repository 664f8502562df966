"""Dutch captions: de/het gender decides the adjective ending after `een` (een grote rode
cirkel, een groot rood hart) and the relative pronoun (die/dat); V2 word order with inversion,
separable verbs joined in verb-final clauses (ronddraait, stilstaat)."""

from __future__ import annotations

from . import capitalize as cap
from . import join

__all__ = ["image_captions", "noun_phrase", "video_captions"]

NOUNS = {"circle": ("cirkel", "de"), "square": ("vierkant", "het"),
         "triangle": ("driehoek", "de"), "star": ("ster", "de"), "heart": ("hart", "het")}
# (uninflected, inflected with -e)
ADJ = {"small": ("klein", "kleine"), "large": ("groot", "grote"), "red": ("rood", "rode"),
       "green": ("groen", "groene"), "blue": ("blauw", "blauwe"), "yellow": ("geel", "gele"),
       "purple": ("paars", "paarse"), "orange": ("oranje", "oranje"), "white": ("wit", "witte"),
       "black": ("zwart", "zwarte")}
# motion -> (finite verb, sentence-final rest, verb-final subordinate form)
MOTIONS = {
    "moves left": ("beweegt", "naar links", "naar links beweegt"),
    "moves right": ("beweegt", "naar rechts", "naar rechts beweegt"),
    "moves up": ("beweegt", "omhoog", "omhoog beweegt"),
    "moves down": ("beweegt", "omlaag", "omlaag beweegt"),
    "rotates": ("draait", "rond", "ronddraait"),
    "grows": ("wordt", "groter", "groter wordt"),
    "shrinks": ("wordt", "kleiner", "kleiner wordt"),
    "stays still": ("staat", "stil", "stilstaat"),
}
SOUNDS = {"beeps": "piept", "hums": "bromt", "clicks": "klikt"}
PLACE = {"beach": "op het strand", "grass": "op het gras", "snow": "in de sneeuw",
         "night": "'s nachts"}
# Sentence-initial forms ('s Nachts keeps the apostrophe and capitalises the noun).
PLACE_INITIAL = {"beach": "Op het strand", "grass": "Op het gras", "snow": "In de sneeuw",
                 "night": "'s Nachts"}


def noun_phrase(obj, with_size: bool = True) -> str:
    """'een grote rode cirkel' (de-word), 'een groot rood hart' (het-word: no -e after een)."""
    noun, article = NOUNS[obj.shape]
    form = 1 if article == "de" else 0
    adjectives = ([ADJ[obj.size][form]] if with_size else []) + [ADJ[obj.colour][form]]
    return join("een", *adjectives, noun)


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at = noun_phrase(obj, with_size), PLACE[place]
    finite, rest, subordinate = MOTIONS[obj.motion]
    relative = "die" if NOUNS[obj.shape][1] == "de" else "dat"
    out = [
        join(cap(np_), finite, at, rest) + ".",
        join(PLACE_INITIAL[place], finite, np_, rest) + ".",
        f"Een video van {np_} {relative} {at} {subordinate}.",
    ]
    if obj.sound:
        out.append(join(cap(np_), SOUNDS[obj.sound], "en", finite, at, rest) + ".")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at = noun_phrase(obj, with_size), PLACE[place]
    return [f"{cap(np_)} {at}.", f"Een foto van {np_} {at}.",
            f"{PLACE_INITIAL[place]} is {np_} te zien."]
