"""Portuguese (Brazilian) captions: noun gender with article and adjective agreement, size
before and colour after the noun, agreeing predicate (parado/parada)."""

from __future__ import annotations

from ._romance import image_sentences, video_sentences

__all__ = ["image_captions", "noun_phrase", "video_captions"]

NOUNS = {"circle": ("círculo", "m"), "square": ("quadrado", "m"),
         "triangle": ("triângulo", "m"), "star": ("estrela", "f"), "heart": ("coração", "m")}
COLOURS = {"red": ("vermelho", "vermelha"), "green": ("verde", "verde"),
           "blue": ("azul", "azul"), "yellow": ("amarelo", "amarela"),
           "purple": ("roxo", "roxa"), "orange": ("laranja", "laranja"),
           "white": ("branco", "branca"), "black": ("preto", "preta")}
SIZES = {"small": ("pequeno", "pequena"), "large": ("grande", "grande")}
MOTIONS = {
    "moves left": ("se move para a esquerda",) * 2,
    "moves right": ("se move para a direita",) * 2,
    "moves up": ("sobe",) * 2, "moves down": ("desce",) * 2, "rotates": ("gira",) * 2,
    "grows": ("cresce",) * 2, "shrinks": ("encolhe",) * 2,
    "stays still": ("fica parado", "fica parada"),
}
SOUNDS = {"beeps": "emite bipes", "hums": "zumbe", "clicks": "faz cliques"}
PLACE = {"beach": "na praia", "grass": "na grama", "snow": "na neve", "night": "à noite"}


def noun_phrase(obj, with_size: bool = True) -> str:
    """'um grande círculo vermelho', 'uma pequena estrela branca'."""
    noun, gender = NOUNS[obj.shape]
    g = 0 if gender == "m" else 1
    words = ["um" if g == 0 else "uma"] + ([SIZES[obj.size][g]] if with_size else [])
    return " ".join(words + [noun, COLOURS[obj.colour][g]])


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    motion = MOTIONS[obj.motion][0 if NOUNS[obj.shape][1] == "m" else 1]
    sound = SOUNDS[obj.sound] if obj.sound else None
    return video_sentences(noun_phrase(obj, with_size), motion, PLACE[place], sound,
                           video_of="Um vídeo de ", that="que", conjunction="e")


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    return image_sentences(noun_phrase(obj, with_size), PLACE[place], photo_of="Uma foto de ",
                           there_is="Há")
