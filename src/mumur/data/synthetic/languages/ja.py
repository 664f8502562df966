"""Japanese captions: SOV order, attributive adjectives and の-colours before the noun, particles
が (subject), で (place of action), に (place of existence), の (attribution), は/には (topic),
the counter 一つ, plain-form relative clauses (左に動く大きな赤い円) and -ながら for sounds."""

from __future__ import annotations

__all__ = ["image_captions", "noun_phrase", "video_captions"]

NOUNS = {"circle": "円", "square": "正方形", "triangle": "三角形", "star": "星",
         "heart": "ハート"}
COLOURS = {"red": "赤い", "green": "緑色の", "blue": "青い", "yellow": "黄色い",
           "purple": "紫色の", "orange": "オレンジ色の", "white": "白い", "black": "黒い"}
SIZES = {"small": "小さな", "large": "大きな"}
# motion -> (polite progressive, plain attributive form)
MOTIONS = {
    "moves left": ("左に動いています", "左に動く"),
    "moves right": ("右に動いています", "右に動く"),
    "moves up": ("上に動いています", "上に動く"),
    "moves down": ("下に動いています", "下に動く"),
    "rotates": ("回転しています", "回転する"),
    "grows": ("大きくなっています", "大きくなっていく"),
    "shrinks": ("小さくなっています", "小さくなっていく"),
    "stays still": ("じっと止まっています", "じっと止まっている"),
}
SOUNDS = {"beeps": "ピーピーと鳴りながら", "hums": "ブーンとうなりながら",
          "clicks": "カチカチと音を立てながら"}
# place -> (place of action + で, place of existence + に, attributive + の)
PLACES = {"beach": ("浜辺で", "浜辺に", "浜辺の"), "grass": ("草の上で", "草の上に", "草の上の"),
          "snow": ("雪の中で", "雪の中に", "雪の中の"), "night": ("夜に", "夜空の下に", "夜の")}


def noun_phrase(obj, with_size: bool = True) -> str:
    """'大きな赤い円', '小さなオレンジ色の星'."""
    return (SIZES[obj.size] if with_size else "") + COLOURS[obj.colour] + NOUNS[obj.shape]


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, (de, _, _) = noun_phrase(obj, with_size), PLACES[place]
    polite, plain = MOTIONS[obj.motion]
    out = [
        f"{de}{np_}が{polite}。",
        f"{np_}が{de}{polite}。",
        f"{de}{plain}{np_}の動画。",
        f"この動画では、{de}{np_}が{polite}。",
    ]
    if obj.sound:
        out.append(f"{np_}が{de}{SOUNDS[obj.sound]}{polite}。")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, (_, ni, no) = noun_phrase(obj, with_size), PLACES[place]
    return [f"{ni}{np_}が一つあります。", f"{no}{np_}の写真。",
            f"この写真には、{ni}{np_}が写っています。"]
