"""Arabic captions (Modern Standard Arabic, unvocalised): adjectives follow the noun and agree
in gender (دائرة حمراء / مربع أحمر, colour adjectives with their فعلاء feminines), verbs take the
gender prefix (يتحرك / تتحرك) in both verb-subject and subject-verb order, the reflexive and
the predicate agree (حول نفسه / حول نفسها, ثابتًا / ثابتة), the preposition لـ attaches."""

from __future__ import annotations

__all__ = ["image_captions", "noun_phrase", "video_captions"]

NOUNS = {"circle": ("دائرة", "f"), "square": ("مربع", "m"), "triangle": ("مثلث", "m"),
         "star": ("نجمة", "f"), "heart": ("قلب", "m")}
# (masculine, feminine)
COLOURS = {"red": ("أحمر", "حمراء"), "green": ("أخضر", "خضراء"), "blue": ("أزرق", "زرقاء"),
           "yellow": ("أصفر", "صفراء"), "purple": ("بنفسجي", "بنفسجية"),
           "orange": ("برتقالي", "برتقالية"), "white": ("أبيض", "بيضاء"),
           "black": ("أسود", "سوداء")}
SIZES = {"small": ("صغير", "صغيرة"), "large": ("كبير", "كبيرة")}
# motion -> ((verb m, verb f), (complement m, complement f))
MOTIONS = {
    "moves left": (("يتحرك", "تتحرك"), ("إلى اليسار",) * 2),
    "moves right": (("يتحرك", "تتحرك"), ("إلى اليمين",) * 2),
    "moves up": (("يتحرك", "تتحرك"), ("إلى الأعلى",) * 2),
    "moves down": (("يتحرك", "تتحرك"), ("إلى الأسفل",) * 2),
    "rotates": (("يدور", "تدور"), ("حول نفسه", "حول نفسها")),
    "grows": (("يكبر", "تكبر"), ("",) * 2),
    "shrinks": (("يصغر", "تصغر"), ("",) * 2),
    "stays still": (("يبقى", "تبقى"), ("ثابتًا", "ثابتة")),
}
SOUNDS = {"beeps": ("يصدر صفيرًا", "تصدر صفيرًا"), "hums": ("يطن", "تطن"),
          "clicks": ("يصدر طقطقة", "تصدر طقطقة")}
PLACE = {"beach": "على الشاطئ", "grass": "على العشب", "snow": "في الثلج", "night": "في الليل"}


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def noun_phrase(obj, with_size: bool = True) -> str:
    """'دائرة حمراء كبيرة' (noun, colour, size; all agreeing in gender)."""
    noun, gender = NOUNS[obj.shape]
    g = 0 if gender == "m" else 1
    return _join(noun, COLOURS[obj.colour][g], SIZES[obj.size][g] if with_size else "")


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    g = 0 if NOUNS[obj.shape][1] == "m" else 1
    np_, at = noun_phrase(obj, with_size), PLACE[place]
    verbs, complements = MOTIONS[obj.motion]
    verb, comp = verbs[g], complements[g]
    out = [
        _join(np_, verb, comp, at) + ".",
        _join(verb, np_, comp, at) + ".",
        _join("مقطع فيديو ل" + np_, verb, comp, at) + ".",
    ]
    if obj.sound:
        out.append(_join(np_, verb, comp, at, "و" + SOUNDS[obj.sound][g]) + ".")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at = noun_phrase(obj, with_size), PLACE[place]
    return [f"{np_} {at}.", f"صورة ل{np_} {at}.", f"هناك {np_} {at}."]
