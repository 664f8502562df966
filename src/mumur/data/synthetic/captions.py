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

__all__ = ["LANGUAGES", "caption_templates", "describe", "sample_captions"]

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
