"""Chinese (simplified) captions: numeral + classifier (一个圆, 一颗星星; 一段视频, 一张照片),
的-modification, 在 + place + 上/里 before the verb, pivotal 有-sentences, 一边…一边… for sounds."""

from __future__ import annotations

__all__ = ["image_captions", "noun_phrase", "video_captions"]

# shape -> (noun, classifier)
NOUNS = {"circle": ("圆", "个"), "square": ("正方形", "个"), "triangle": ("三角形", "个"),
         "star": ("星星", "颗"), "heart": ("爱心", "颗")}
COLOURS = {"red": "红色", "green": "绿色", "blue": "蓝色", "yellow": "黄色", "purple": "紫色",
           "orange": "橙色", "white": "白色", "black": "黑色"}
SIZES = {"small": "小", "large": "大"}
MOTIONS = {"moves left": "向左移动", "moves right": "向右移动", "moves up": "向上移动",
           "moves down": "向下移动", "rotates": "不停地旋转", "grows": "慢慢变大",
           "shrinks": "慢慢变小", "stays still": "静止不动"}
SOUNDS = {"beeps": "发出哔哔声", "hums": "发出嗡嗡声", "clicks": "发出咔嗒声"}
# place -> (location noun phrase, background noun)
PLACES = {"beach": ("海滩上", "海滩"), "grass": ("草地上", "草地"), "snow": ("雪地里", "雪地"),
          "night": ("夜色中", "夜空")}


def noun_phrase(obj, with_size: bool = True, counted: bool = True) -> str:
    """'一个红色的大圆', '一颗黄色的小星星'; uncounted form (inside a larger 的-phrase) '红色大圆'."""
    noun, classifier = NOUNS[obj.shape]
    colour, size = COLOURS[obj.colour], SIZES[obj.size] if with_size else ""
    if counted:
        return f"一{classifier}{colour}的{size}{noun}"
    return f"{colour}{size}{noun}"


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, loc = noun_phrase(obj, with_size), PLACES[place][0]
    motion = MOTIONS[obj.motion]
    out = [
        f"{np_}在{loc}{motion}。",
        f"{loc}有{np_}{motion}。",
        f"一段{loc}{noun_phrase(obj, with_size, counted=False)}{motion}的视频。",
    ]
    if obj.sound:
        out.append(f"{np_}在{loc}一边{SOUNDS[obj.sound]}一边{motion}。")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, (loc, background) = noun_phrase(obj, with_size), PLACES[place]
    return [f"{loc}有{np_}。", f"一张{loc}{noun_phrase(obj, with_size, counted=False)}的照片。",
            f"画面中是{np_}，背景是{background}。"]
