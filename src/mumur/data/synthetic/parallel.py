"""Parallel (translation) text from a synthetic world, for multilingual knowledge distillation.

The manifest's `captions` are *not* index-aligned across languages: each language draws its
captions from its own random stream (`item_rng(..., stream=10 + k)`, see `captions.py`), and a
train item gets 2-3 templates per language picked independently, with or without the size. Caption
i in German is therefore not the translation of caption i in English. What *is* parallel is the
fact set: every template of `caption_templates(scene, language, with_size)` states the same facts
about the scene's main object (colour, shape, size when `with_size`, motion, place), except the
sound template that a sounding object adds (the last one in every language), which also names the
sound. So translation pairs are derived from the scenes the manifest lists:

    for every scene (an item's `scene`, or each of its `shots`), for with_size in (True, False),
    for every language l and every template t of l: (source = the English template with the same
    facts and, where the counts agree, the same index; target = t).

English itself is included (source = target), so the student keeps encoding English as the
teacher does (M-CLIP's students are used for English queries too).

`caption_bitext` gives the evaluation side: the manifest captions of a split, grouped by what they
describe (item, and shot for multi-shot videos), one caption per group and language.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .captions import caption_templates
from .languages import LANGUAGES
from .world import Scene, SceneObject

__all__ = ["BitextGroup", "ParallelPair", "caption_bitext", "parallel_pairs", "scenes_of_item",
           "sound_captions", "template_pairs"]


@dataclass(frozen=True)
class ParallelPair:
    """One translation pair: `source` (English, the teacher's input) and `target` in `language`."""

    language: str
    source: str
    target: str


@dataclass(frozen=True)
class BitextGroup:
    """The captions of one described thing (item, or item shot) in several languages.

    Attributes:
        item: index of the item in the manifest's item list (after the split filter: in `items`).
        key: `(item id, shot index or None)`.
        captions: language -> caption text.
    """

    item: int
    key: tuple[str, int | None]
    captions: dict[str, str]


def _scene(media_type: str, scene: dict) -> Scene:
    # Layout (x, y, angle) is not in the manifest and captions do not depend on it.
    objects = tuple(SceneObject(o["shape"], o["colour"], o["size"], o.get("motion"),
                                o.get("sound"), 0.0, 0.0, 0.0) for o in scene["objects"])
    return Scene(media_type, scene["place"], objects)


def scenes_of_item(item: dict) -> list[Scene]:
    """The scenes a manifest item describes: its `scene`, or one per entry of `shots`.

    Args:
        item: a manifest item.

    Returns:
        One `Scene` (single-shot items, images) or one per shot.
    """
    if "shots" in item:
        return [_scene(item["type"], shot["scene"]) for shot in item["shots"]]
    return [_scene(item["type"], item["scene"])]


def _fact_groups(scene: Scene, language: str, with_size: bool) -> list[list[str]]:
    """Templates split into groups that state the same facts: [plain] or [plain, with sound]."""
    rendered = caption_templates(scene, language, with_size)
    if scene.main.sound is None:
        return [rendered]
    silent = replace(scene, objects=(replace(scene.main, sound=None),) + scene.objects[1:])
    plain = caption_templates(silent, language, with_size)
    if rendered[:len(plain)] != plain or len(rendered) == len(plain):
        raise ValueError(f"templates of {language!r} do not append the sound template(s) after "
                         "the silent ones; cannot tell which facts each template states")
    return [plain, rendered[len(plain):]]


def sound_captions(media_type: str, scene: dict, language: str) -> set[str]:
    """The caption texts of a manifest scene (an item's `scene` or a shot's) that state its main
    object's sound (the sound template group of `_fact_groups`, with and without the size);
    empty for a silent main object or an image.

    Args:
        media_type: "video" or "image".
        scene: the manifest scene dict.
        language: caption language.
    """
    out: set[str] = set()
    for with_size in (True, False):
        groups = _fact_groups(_scene(media_type, scene), language, with_size)
        if len(groups) > 1:
            out.update(groups[1])
    return out


def template_pairs(scene: Scene, language: str, with_size: bool) -> list[ParallelPair]:
    """Translation pairs (English -> `language`) of one scene's templates.

    Target template k of a fact group is paired with English template k of the same group
    (k modulo the English count when `language` has more templates than English).

    Args:
        scene: the scene.
        language: target language code.
        with_size: whether the templates name the main object's size.

    Returns:
        One pair per target template.
    """
    english = _fact_groups(scene, "en", with_size)
    target = _fact_groups(scene, language, with_size)
    pairs = []
    for en_group, l_group in zip(english, target, strict=True):
        for k, text in enumerate(l_group):
            pairs.append(ParallelPair(language, en_group[k % len(en_group)], text))
    return pairs


def parallel_pairs(manifest: dict, languages: Sequence[str] | None = None,
                   splits: Sequence[str] | None = None) -> list[ParallelPair]:
    """Distinct translation pairs of every scene of a world, in a deterministic order.

    Args:
        manifest: a synthetic manifest (`build_manifest` output or a parsed `manifest.json`).
        languages: target languages (default: the manifest's); English may be among them.
        splits: keep only items of these splits (default: all).

    Returns:
        Pairs in first-seen order (items in manifest order, then with_size True/False, then
        languages in the given order), without duplicates.

    Raises:
        ValueError: a language without caption templates.
    """
    languages = list(languages or manifest.get("languages") or LANGUAGES)
    unknown = [lang for lang in languages if lang not in LANGUAGES]
    if unknown:
        raise ValueError(f"no synthetic captions for languages {unknown}; known: {LANGUAGES}")
    seen: set[ParallelPair] = set()
    pairs: list[ParallelPair] = []
    for item in manifest["items"]:
        if splits is not None and item["split"] not in splits:
            continue
        for scene in scenes_of_item(item):
            for with_size in (True, False):
                for lang in languages:
                    for pair in template_pairs(scene, lang, with_size):
                        if pair not in seen:
                            seen.add(pair)
                            pairs.append(pair)
    return pairs


def caption_bitext(manifest: dict, split: str = "test",
                   languages: Sequence[str] | None = None) -> tuple[list[dict], list[BitextGroup]]:
    """Manifest captions of one split grouped by what they describe (the evaluation bitext).

    Args:
        manifest: a synthetic manifest.
        split: `train`, `val`, `test` or `all`.
        languages: languages to keep (default: the manifest's).

    Returns:
        `(items, groups)`: the items of the split (manifest order) and, per item and shot, the
        first caption of each language describing it (`caption_shots` tells the shot of a
        multi-shot caption). A group lacking a language simply has no entry for it.
    """
    languages = list(languages or manifest.get("languages") or LANGUAGES)
    items = [it for it in manifest["items"] if split == "all" or it["split"] == split]
    groups = []
    for index, item in enumerate(items):
        by_key: dict[tuple[str, int | None], dict[str, str]] = {}
        for lang in languages:
            shots = item.get("caption_shots", {}).get(lang)
            for j, text in enumerate(item["captions"].get(lang, [])):
                key = (item["id"], None if shots is None else int(shots[j]))
                by_key.setdefault(key, {}).setdefault(lang, text)
        groups.extend(BitextGroup(index, key, caps) for key, caps in by_key.items())
    return items, groups
