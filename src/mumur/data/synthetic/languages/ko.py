"""Korean captions: SOV order, particles chosen by the final consonant of the noun (이/가,
은/는, 을/를: 원이 / 하트가), place particles 에서 (action) and 에 (existence), adnominal verb forms
for relative phrases (왼쪽으로 움직이는 큰 빨간 원), -며 for sounds, the count 하나."""

from __future__ import annotations

__all__ = ["image_captions", "noun_phrase", "particle", "video_captions"]

NOUNS = {"circle": "원", "square": "정사각형", "triangle": "삼각형", "star": "별",
         "heart": "하트"}
COLOURS = {"red": "빨간", "green": "초록색", "blue": "파란", "yellow": "노란",
           "purple": "보라색", "orange": "주황색", "white": "흰", "black": "검은"}
SIZES = {"small": "작은", "large": "큰"}
# motion -> (formal polite, adnominal)
MOTIONS = {
    "moves left": ("왼쪽으로 움직입니다", "왼쪽으로 움직이는"),
    "moves right": ("오른쪽으로 움직입니다", "오른쪽으로 움직이는"),
    "moves up": ("위로 움직입니다", "위로 움직이는"),
    "moves down": ("아래로 움직입니다", "아래로 움직이는"),
    "rotates": ("회전합니다", "회전하는"), "grows": ("커집니다", "커지는"),
    "shrinks": ("작아집니다", "작아지는"), "stays still": ("가만히 있습니다", "가만히 있는"),
}
SOUNDS = {"beeps": "삐삐 소리를 내며", "hums": "윙윙거리며", "clicks": "딸깍거리며"}
# place -> (action + 에서, existence + 에, attributive + 의)
PLACES = {"beach": ("해변에서", "해변에", "해변의"), "grass": ("풀밭에서", "풀밭에", "풀밭의"),
          "snow": ("눈밭에서", "눈밭에", "눈밭의"), "night": ("밤에", "밤하늘 아래에", "밤의")}


def particle(word: str, after_consonant: str, after_vowel: str) -> str:
    """Attach the particle form that fits the last syllable: 이/은/을 after a final consonant
    (batchim), 가/는/를 after a vowel."""
    code = ord(word[-1]) - 0xAC00
    has_final = 0 <= code < 11172 and code % 28 != 0
    return word + (after_consonant if has_final else after_vowel)


def noun_phrase(obj, with_size: bool = True) -> str:
    """'큰 빨간 원', '작은 주황색 하트'."""
    return " ".join(([SIZES[obj.size]] if with_size else []) + [COLOURS[obj.colour],
                                                               NOUNS[obj.shape]])


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, (eseo, _, _) = noun_phrase(obj, with_size), PLACES[place]
    polite, adnominal = MOTIONS[obj.motion]
    subject = particle(np_, "이", "가")
    out = [
        f"{eseo} {subject} {polite}.",
        f"{subject} {eseo} {polite}.",
        f"{eseo} {adnominal} {particle(np_, '을', '를')} 보여 주는 영상.",
    ]
    if obj.sound:
        out.append(f"{subject} {eseo} {SOUNDS[obj.sound]} {polite}.")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, (_, e, ui) = noun_phrase(obj, with_size), PLACES[place]
    return [f"{e} {particle(np_, '이', '가')} 하나 있습니다.", f"{ui} {np_} 사진.",
            f"{particle(np_, '은', '는')} {e} 있습니다."]
