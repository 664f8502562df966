"""Sentence frames shared by the Romance grammars (fr, es, it, pt): subject-verb-place order,
a fronted place with a comma, a relative clause after "a video of", coordination with the sound
verb. Each language supplies its own agreeing noun phrase, verb phrases and function words."""

from __future__ import annotations

from . import capitalize as cap

__all__ = ["image_sentences", "video_sentences"]


def video_sentences(np_: str, motion: str, at: str, sound: str | None, *, video_of: str,
                    that: str, conjunction: str) -> list[str]:
    """Video captions from an indefinite noun phrase `np_`, an agreeing `motion` verb phrase,
    the place phrase `at` and an optional `sound` verb phrase.

    Args:
        video_of: prefix glued to the noun phrase ("Une vidéo d'", "Un vídeo de ").
        that: relative pronoun (qui, que, che).
        conjunction: "and" before the sound verb (et, y, e/ed).
    """
    out = [f"{cap(np_)} {motion} {at}.", f"{cap(at)}, {np_} {motion}.",
           f"{video_of}{np_} {that} {motion} {at}."]
    if sound:
        out.append(f"{cap(np_)} {motion} {conjunction} {sound} {at}.")
    return out


def image_sentences(np_: str, at: str, *, photo_of: str, there_is: str) -> list[str]:
    """Image captions: the bare noun phrase with its place, "a photo of ...", "there is ..."."""
    return [f"{cap(np_)} {at}.", f"{photo_of}{np_} {at}.", f"{there_is} {np_} {at}."]
