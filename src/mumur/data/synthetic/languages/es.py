"""Spanish captions: noun gender with article and adjective agreement, apocope of `grande`
before the noun (un gran círculo), colour after the noun, agreeing predicate (quieto/quieta)."""

from __future__ import annotations

from ._romance import image_sentences, video_sentences

__all__ = ["image_captions", "noun_phrase", "video_captions"]

NOUNS = {"circle": ("círculo", "m"), "square": ("cuadrado", "m"),
         "triangle": ("triángulo", "m"), "star": ("estrella", "f"), "heart": ("corazón", "m")}
COLOURS = {"red": ("rojo", "roja"), "green": ("verde", "verde"), "blue": ("azul", "azul"),
           "yellow": ("amarillo", "amarilla"), "purple": ("morado", "morada"),
           "orange": ("naranja", "naranja"), "white": ("blanco", "blanca"),
           "black": ("negro", "negra")}
# Prenominal size: `grande` shortens to `gran` before a singular noun of either gender.
SIZES = {"small": ("pequeño", "pequeña"), "large": ("gran", "gran")}
MOTIONS = {
    "moves left": ("se mueve hacia la izquierda",) * 2,
    "moves right": ("se mueve hacia la derecha",) * 2,
    "moves up": ("sube",) * 2, "moves down": ("baja",) * 2, "rotates": ("gira",) * 2,
    "grows": ("crece",) * 2, "shrinks": ("se encoge",) * 2,
    "stays still": ("se queda quieto", "se queda quieta"),
}
SOUNDS = {"beeps": "emite pitidos", "hums": "zumba", "clicks": "hace clic"}
PLACE = {"beach": "en la playa", "grass": "en la hierba", "snow": "en la nieve",
         "night": "de noche"}


def noun_phrase(obj, with_size: bool = True) -> str:
    """'un gran círculo rojo', 'una pequeña estrella blanca'."""
    noun, gender = NOUNS[obj.shape]
    g = 0 if gender == "m" else 1
    words = ["un" if g == 0 else "una"] + ([SIZES[obj.size][g]] if with_size else [])
    return " ".join(words + [noun, COLOURS[obj.colour][g]])


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    motion = MOTIONS[obj.motion][0 if NOUNS[obj.shape][1] == "m" else 1]
    sound = SOUNDS[obj.sound] if obj.sound else None
    return video_sentences(noun_phrase(obj, with_size), motion, PLACE[place], sound,
                           video_of="Un vídeo de ", that="que", conjunction="y")


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    return image_sentences(noun_phrase(obj, with_size), PLACE[place], photo_of="Una foto de ",
                           there_is="Hay")
