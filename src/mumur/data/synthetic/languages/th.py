"""Thai captions: noun before its modifiers (วงกลมสีแดงขนาดใหญ่), counting with numeral +
classifier after the noun phrase (หนึ่งวง, หนึ่งดวง, หนึ่งรูป), relative ที่ with progressive กำลัง,
existential มี; no spaces inside a clause."""

from __future__ import annotations

__all__ = ["image_captions", "noun_phrase", "video_captions"]

# shape -> (noun, classifier)
NOUNS = {"circle": ("วงกลม", "วง"), "square": ("สี่เหลี่ยมจัตุรัส", "รูป"),
         "triangle": ("สามเหลี่ยม", "รูป"), "star": ("ดาว", "ดวง"), "heart": ("หัวใจ", "ดวง")}
COLOURS = {"red": "สีแดง", "green": "สีเขียว", "blue": "สีน้ำเงิน", "yellow": "สีเหลือง",
           "purple": "สีม่วง", "orange": "สีส้ม", "white": "สีขาว", "black": "สีดำ"}
SIZES = {"small": "ขนาดเล็ก", "large": "ขนาดใหญ่"}
MOTIONS = {"moves left": "เคลื่อนที่ไปทางซ้าย", "moves right": "เคลื่อนที่ไปทางขวา",
           "moves up": "เคลื่อนที่ขึ้นด้านบน", "moves down": "เคลื่อนที่ลงด้านล่าง",
           "rotates": "หมุนรอบตัวเอง", "grows": "ขยายใหญ่ขึ้น", "shrinks": "หดเล็กลง",
           "stays still": "อยู่นิ่งกับที่"}
SOUNDS = {"beeps": "ส่งเสียงบี๊บ", "hums": "ส่งเสียงหึ่ง", "clicks": "ส่งเสียงคลิก"}
PLACE = {"beach": "บนชายหาด", "grass": "บนสนามหญ้า", "snow": "บนหิมะ",
         "night": "ในเวลากลางคืน"}


def noun_phrase(obj, with_size: bool = True) -> str:
    """'วงกลมสีแดงขนาดใหญ่' (noun, colour, size)."""
    return NOUNS[obj.shape][0] + COLOURS[obj.colour] + (SIZES[obj.size] if with_size else "")


def _one(obj) -> str:
    return "หนึ่ง" + NOUNS[obj.shape][1]


def video_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at, motion = noun_phrase(obj, with_size), PLACE[place], MOTIONS[obj.motion]
    out = [
        f"{np_}{motion}{at}",
        f"{at}มี{np_}{motion}",
        f"วิดีโอ{np_}{_one(obj)}ที่กำลัง{motion}{at}",
    ]
    if obj.sound:
        out.append(f"{np_}{SOUNDS[obj.sound]}และ{motion}{at}")
    return out


def image_captions(obj, place: str, with_size: bool = True) -> list[str]:
    np_, at = noun_phrase(obj, with_size), PLACE[place]
    return [f"{np_}{at}", f"ภาพ{np_}{at}", f"{at}มี{np_}{_one(obj)}"]
