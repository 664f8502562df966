"""Russian captions: noun gender with adjective agreement in nominative, accusative and genitive
(hard, soft, stressed and velar adjective types), short-form predicate agreement
(виден/видна/видно); no articles."""

from __future__ import annotations

from . import capitalize as cap

__all__ = ["image_captions", "noun_phrase", "video_captions"]

# shape -> (gender, nominative, accusative, genitive); masculine nouns here are inanimate.
NOUNS = {"circle": ("m", "круг", "круг", "круга"),
         "square": ("m", "квадрат", "квадрат", "квадрата"),
         "triangle": ("m", "треугольник", "треугольник", "треугольника"),
         "star": ("f", "звезда", "звезду", "звезды"),
         "heart": ("n", "сердце", "сердце", "сердца")}
# adjective -> (stem, declension type)
ADJ = {"small": ("маленьк", "velar"), "large": ("больш", "stressed"),
       "red": ("красн", "hard"), "green": ("зелён", "hard"), "blue": ("син", "soft"),
       "yellow": ("жёлт", "hard"), "purple": ("фиолетов", "hard"),
       "orange": ("оранжев", "hard"), "white": ("бел", "hard"), "black": ("чёрн", "hard")}
# type -> endings for (nom m, nom f, nom n, acc f, gen m/n, gen f)
_ENDINGS = {"hard": ("ый", "ая", "ое", "ую", "ого", "ой"),
            "soft": ("ий", "яя", "ее", "юю", "его", "ей"),
            "stressed": ("ой", "ая", "ое", "ую", "ого", "ой"),
            "velar": ("ий", "ая", "ое", "ую", "ого", "ой")}
MOTIONS = {"moves left": "движется влево", "moves right": "движется вправо",
           "moves up": "движется вверх", "moves down": "движется вниз",
           "rotates": "вращается", "grows": "растёт", "shrinks": "уменьшается",
           "stays still": "стоит на месте"}
SOUNDS = {"beeps": "пищит", "hums": "гудит", "clicks": "щёлкает"}
PLACE = {"beach": "на пляже", "grass": "на траве", "snow": "на снегу", "night": "ночью"}
VISIBLE = {"m": "виден", "f": "видна", "n": "видно"}


def adjective(name: str, case: str, gender: str) -> str:
    """Decline adjective `name` (vocabulary word) for case nom/acc/gen and gender m/f/n
    (masculine accusative of an inanimate noun = nominative)."""
    stem, kind = ADJ[name]
    e = _ENDINGS[kind]
    if case == "gen":
        return stem + (e[5] if gender == "f" else e[4])
    if case == "acc" and gender == "f":
        return stem + e[3]
    return stem + e[{"m": 0, "f": 1, "n": 2}[gender]]


def noun_phrase(obj, case: str = "nom", with_size: bool = True) -> str:
    """'большой красный круг', 'большую красную звезду' (acc), 'большой красной звезды' (gen)."""
    gender, *forms = NOUNS[obj.shape]
    noun = forms[("nom", "acc", "gen").index(case)]
    names = ([obj.size] if with_size else []) + [obj.colour]
    return " ".join([adjective(n, case, gender) for n in names] + [noun])


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at, motion = noun_phrase(obj, "nom", with_size), PLACE[place], MOTIONS[obj.motion]
    out = [
        f"{cap(np_)} {motion} {at}.",
        f"{cap(at)} {np_} {motion}.",
        f"Видео, на котором {np_} {motion} {at}.",
    ]
    if obj.sound:
        out.append(f"{cap(np_)} {motion} и {SOUNDS[obj.sound]} {at}.")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    at, gender = PLACE[place], NOUNS[obj.shape][0]
    return [
        f"{cap(noun_phrase(obj, 'nom', with_size))} {at}.",
        f"Фотография {noun_phrase(obj, 'gen', with_size)} {at}.",
        f"{cap(at)} {VISIBLE[gender]} {noun_phrase(obj, 'nom', with_size)}.",
    ]
