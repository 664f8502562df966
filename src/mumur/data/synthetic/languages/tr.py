"""Turkish captions: SOV order, `bir` between the adjectives and the noun, suffixes by vowel
harmony with buffer consonants and final-stop softening (dairenin, üçgenin, kalbin; sahilde,
karda), participles for relative phrases (hareket eden, dönen), Turkish capitalisation (i → İ)."""

from __future__ import annotations

__all__ = ["genitive", "image_captions", "locative", "noun_phrase", "video_captions"]

# shape -> (noun, softens its final stop before a vowel, takes front-vowel suffixes despite a
# back last vowel: the loanword `kalp` has a palatal l, hence kalbi, kalbin)
NOUNS = {"circle": ("daire", False, False), "square": ("kare", False, False),
         "triangle": ("üçgen", False, False), "star": ("yıldız", False, False),
         "heart": ("kalp", True, True)}
ADJ = {"small": "küçük", "large": "büyük", "red": "kırmızı", "green": "yeşil", "blue": "mavi",
       "yellow": "sarı", "purple": "mor", "orange": "turuncu", "white": "beyaz",
       "black": "siyah"}
# motion -> (finite present continuous, present participle)
MOTIONS = {
    "moves left": ("sola hareket ediyor", "sola hareket eden"),
    "moves right": ("sağa hareket ediyor", "sağa hareket eden"),
    "moves up": ("yukarı hareket ediyor", "yukarı hareket eden"),
    "moves down": ("aşağı hareket ediyor", "aşağı hareket eden"),
    "rotates": ("dönüyor", "dönen"), "grows": ("büyüyor", "büyüyen"),
    "shrinks": ("küçülüyor", "küçülen"), "stays still": ("yerinde duruyor", "yerinde duran"),
}
SOUNDS = {"beeps": "bip sesi çıkarıyor", "hums": "uğulduyor", "clicks": "tıkırdıyor"}
# place -> noun taking the locative (night is the adverb `gece`).
PLACE_NOUNS = {"beach": "sahil", "grass": "çimen", "snow": "kar"}

_VOWELS = "aıoueiöü"
_SOFTEN = {"p": "b", "ç": "c", "t": "d", "k": "ğ"}


def _last_vowel(word: str) -> str:
    return next(c for c in reversed(word) if c in _VOWELS)


def locative(word: str) -> str:
    """-da/-de by two-way harmony, -ta/-te after a voiceless consonant (sahilde, karda)."""
    vowel = "a" if _last_vowel(word) in "aıou" else "e"
    consonant = "t" if word[-1] in "fstkçşhp" else "d"
    return word + consonant + vowel


def genitive(word: str, softens: bool = False, front: bool = False) -> str:
    """-(n)ın/in/un/ün by four-way harmony; `n` after a vowel; p/ç/t/k soften when `softens`;
    `front` forces front harmony for exceptional loanwords (daire -> dairenin, yıldız ->
    yıldızın, kalp -> kalbin)."""
    v = "e" if front else _last_vowel(word)
    suffix_vowel = {"a": "ı", "ı": "ı", "o": "u", "u": "u", "e": "i", "i": "i", "ö": "ü",
                    "ü": "ü"}[v]
    if word[-1] in _VOWELS:
        return word + "n" + suffix_vowel + "n"
    if softens and word[-1] in _SOFTEN:
        word = word[:-1] + _SOFTEN[word[-1]]
    return word + suffix_vowel + "n"


def capitalize(text: str) -> str:
    """Turkish sentence capitalisation: i -> İ, ı -> I."""
    first = {"i": "İ", "ı": "I"}.get(text[:1], text[:1].upper())
    return first + text[1:]


def _place(place: str) -> str:
    return "gece" if place == "night" else locative(PLACE_NOUNS[place])


def noun_phrase(obj, case: str = "nom", with_size: bool = True) -> str:
    """'büyük kırmızı bir daire'; genitive 'büyük kırmızı bir dairenin'."""
    noun, softens, front = NOUNS[obj.shape]
    if case == "gen":
        noun = genitive(noun, softens, front)
    return " ".join(([ADJ[obj.size]] if with_size else []) + [ADJ[obj.colour], "bir", noun])


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at = noun_phrase(obj, "nom", with_size), _place(place)
    finite, participle = MOTIONS[obj.motion]
    out = [
        f"{capitalize(np_)} {at} {finite}.",
        f"{capitalize(at)} {np_} {finite}.",
        f"{capitalize(at)} {participle} {np_} görülüyor.",
    ]
    if obj.sound:
        out.append(f"{capitalize(np_)} {at} {finite} ve {SOUNDS[obj.sound]}.")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at = noun_phrase(obj, "nom", with_size), _place(place)
    return [
        f"{capitalize(at)} {np_} var.",
        f"{capitalize(noun_phrase(obj, 'gen', with_size))} {at} çekilmiş fotoğrafı.",
        f"{capitalize(at)} duran {np_}.",
    ]
