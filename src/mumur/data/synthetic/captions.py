"""Captions of synthetic scenes: short captions in every language (templates per language in
`languages/`), and the long English description (the stand-in for an MLLM description).

A short caption names the scene's main object (colour and shape, and size in every val/test
caption), its motion (videos) and the place; train items get 2-3 paraphrases per language drawn
from all templates, with and without the size.
"""

from __future__ import annotations

import numpy as np

from .languages import LANGUAGES, get_language
from .languages import capitalize as cap
from .languages.en import PLACE as EN_PLACE
from .languages.en import noun_phrase as en_noun_phrase
from .world import Scene

__all__ = ["LANGUAGES", "caption_templates", "describe", "describe_shots", "sample_captions",
           "sample_shot_captions"]

_NUMBERS = {1: "one object", 2: "two objects", 3: "three objects"}


def caption_templates(scene: Scene, language: str, with_size: bool = True) -> list[str]:
    """Every template of `language` rendered for the scene's main object and place.

    Args:
        scene: the scene.
        language: a code in `LANGUAGES`.
        with_size: whether the object's size is named.

    Returns:
        At least three distinct sentences.
    """
    grammar = get_language(language)
    render = grammar.video_captions if scene.media_type == "video" else grammar.image_captions
    return render(scene.main, scene.place, with_size=with_size)


def sample_captions(scene: Scene, language: str, split: str,
                    rng: np.random.Generator) -> list[str]:
    """The captions of one item in one language.

    Args:
        scene: the scene.
        language: a code in `LANGUAGES`.
        split: "train" gives 2 or 3 distinct paraphrases; "val"/"test" one caption that names
            size, colour and shape of the main object, its motion and the place.
        rng: the item's caption stream for this language.

    Returns:
        The caption texts.
    """
    full = caption_templates(scene, language, with_size=True)
    if split != "train":
        return [full[int(rng.integers(len(full)))]]
    pool = full + caption_templates(scene, language, with_size=False)
    k = int(rng.integers(2, 4))
    picks = rng.choice(len(pool), size=k, replace=False)
    return [pool[int(i)] for i in sorted(picks)]


def sample_shot_captions(scenes: list[Scene], order: list[int], language: str, split: str,
                         rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """The captions of a multi-shot video in one language; each describes one shot.

    Args:
        scenes: the shots' scenes, in time order.
        order: the shot each caption position describes (the same for every language, so the
            captions of one position are parallel across languages).
        language: a code in `LANGUAGES`.
        split: "train" gives 2 or 3 captions (with or without the size); "val"/"test" one that
            names size, colour and shape of the described shot's main object, its motion and
            the place.
        rng: the item's caption stream for this language.

    Returns:
        `(texts, shot_of_each_text)`.
    """
    n = 1 if split != "train" else int(rng.integers(2, 4))
    texts, shots = [], []
    for j in range(n):
        k = order[j % len(order)]
        pool = caption_templates(scenes[k], language, with_size=True)
        if split == "train":
            pool = pool + caption_templates(scenes[k], language, with_size=False)
        texts.append(pool[int(rng.integers(len(pool)))])
        shots.append(int(k))
    return texts, shots


def _object_sentence(obj) -> str:
    noun = en_noun_phrase(obj)
    if obj.sound is None:
        return f"{cap(noun)} {obj.motion} and makes no sound."
    return f"{cap(noun)} {obj.motion} and {obj.sound}."


def describe(scene: Scene) -> str:
    """The long English description: the place and every object with its size, colour, shape,
    and (videos) its motion and sound.

    Args:
        scene: the scene.

    Returns:
        e.g. "A video on the beach with two objects. A large red circle moves left and beeps.
        A small blue star rotates and makes no sound."
    """
    place, count = EN_PLACE[scene.place], _NUMBERS[len(scene.objects)]
    if scene.media_type == "image":
        nouns = [en_noun_phrase(o) for o in scene.objects]
        listed = nouns[0] if len(nouns) == 1 else ", ".join(nouns[:-1]) + " and " + nouns[-1]
        return f"A picture {place} with {count}: {listed}."
    sentences = " ".join(_object_sentence(o) for o in scene.objects)
    return f"A video {place} with {count}. {sentences}"


def describe_shots(scenes: list[Scene], bounds: list[tuple[float, float]]) -> str:
    """The long English description of a multi-shot video: each shot's time span and its
    `describe` text.

    Args:
        scenes: the shots' scenes.
        bounds: `(start, end)` seconds of each shot.

    Returns:
        e.g. "A video in two shots. From 0.0 s to 1.5 s: A video on the beach with one object.
        A large red circle moves left and beeps. From 1.5 s to 3.0 s: ..."
    """
    count = {2: "two", 3: "three"}.get(len(scenes), str(len(scenes)))
    parts = [f"From {a:.1f} s to {b:.1f} s: {describe(s)}" for s, (a, b) in zip(scenes, bounds)]
    return f"A video in {count} shots. " + " ".join(parts)
