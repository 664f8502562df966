"""Polish captions: noun gender (m/f/n) with adjective agreement in nominative, accusative and
genitive (duża czerwona gwiazda / widać dużą czerwoną gwiazdę / zdjęcie dużej czerwonej
gwiazdy); k/g stems take -i- (niebieski, niebieskiego); no articles."""

from __future__ import annotations

from . import capitalize as cap

__all__ = ["image_captions", "noun_phrase", "video_captions"]

# shape -> (gender, nominative, accusative, genitive); masculine nouns here are inanimate.
NOUNS = {"circle": ("n", "koło", "koło", "koła"),
         "square": ("m", "kwadrat", "kwadrat", "kwadratu"),
         "triangle": ("m", "trójkąt", "trójkąt", "trójkąta"),
         "star": ("f", "gwiazda", "gwiazdę", "gwiazdy"),
         "heart": ("n", "serce", "serce", "serca")}
# Adjective stems (hard declension).
STEMS = {"small": "mał", "large": "duż", "red": "czerwon", "green": "zielon",
         "blue": "niebiesk", "yellow": "żółt", "purple": "fioletow", "orange": "pomarańczow",
         "white": "biał", "black": "czarn"}
# (case, gender) -> ending; m inanimate accusative = nominative.
_ENDINGS = {("nom", "m"): "y", ("nom", "f"): "a", ("nom", "n"): "e",
            ("acc", "m"): "y", ("acc", "f"): "ą", ("acc", "n"): "e",
            ("gen", "m"): "ego", ("gen", "f"): "ej", ("gen", "n"): "ego"}
MOTIONS = {"moves left": "porusza się w lewo", "moves right": "porusza się w prawo",
           "moves up": "porusza się w górę", "moves down": "porusza się w dół",
           "rotates": "obraca się", "grows": "rośnie", "shrinks": "maleje",
           "stays still": "stoi w miejscu"}
SOUNDS = {"beeps": "pika", "hums": "buczy", "clicks": "klika"}
PLACE = {"beach": "na plaży", "grass": "na trawie", "snow": "na śniegu", "night": "w nocy"}


def adjective(stem: str, case: str, gender: str) -> str:
    """Decline a hard-stem adjective; after k/g the endings y/e/ego/ej take i (niebieski)."""
    ending = _ENDINGS[(case, gender)]
    if stem[-1] in "kg" and ending[0] in "ye":
        ending = "i" + ending[1:] if ending[0] == "y" else "i" + ending
    return stem + ending


def noun_phrase(obj, case: str = "nom", with_size: bool = True) -> str:
    """'duże czerwone koło' (nom), 'dużą czerwoną gwiazdę' (acc), 'dużej czerwonej gwiazdy'
    (gen)."""
    gender, *forms = NOUNS[obj.shape]
    noun = forms[("nom", "acc", "gen").index(case)]
    stems = ([STEMS[obj.size]] if with_size else []) + [STEMS[obj.colour]]
    return " ".join([adjective(s, case, gender) for s in stems] + [noun])


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at, motion = noun_phrase(obj, "nom", with_size), PLACE[place], MOTIONS[obj.motion]
    out = [
        f"{cap(np_)} {motion} {at}.",
        f"{cap(at)} {np_} {motion}.",
        f"Film, na którym {np_} {motion} {at}.",
    ]
    if obj.sound:
        out.append(f"{cap(np_)} {motion} i {SOUNDS[obj.sound]} {at}.")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    at = PLACE[place]
    return [
        f"{cap(noun_phrase(obj, 'nom', with_size))} {at}.",
        f"Zdjęcie {noun_phrase(obj, 'gen', with_size)} {at}.",
        f"{cap(at)} widać {noun_phrase(obj, 'acc', with_size)}.",
    ]
