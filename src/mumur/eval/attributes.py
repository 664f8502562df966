"""What a retrieval got right when it got the item wrong: per-attribute top-1 agreement, and
whether a video result's timestamp falls inside the shot the query describes.

Works on datasets whose items carry the synthetic world's scene metadata (`RetrievalDataset.extra`
with ``scene``, or ``shots`` + ``caption_shots`` for multi-shot videos; DESIGN.md, manifest). A
val/test caption names the main object (``objects[0]``) of the scene or shot it describes: its
size, colour, shape, motion (videos) and the place.

Definitions:
  * agreement on attribute a for a caption: the top-1 item has a scene (any shot, for a
    multi-shot video) whose place (a = place) or main object's a equals the caption's; averaged
    over captions. ``all`` is the top-1 item being the caption's own item (R@1 / 100).
  * in-shot share: over captions of multi-shot videos whose own item is ranked first, the share
    whose returned timestamp t (the best-matching frame's time) satisfies start <= t <= end of the
    described shot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..data.dataset import RetrievalDataset

__all__ = ["ATTRIBUTES", "attribute_agreement", "attribute_hits", "caption_scenes",
           "item_scenes", "scene_value", "timestamps_in_shot"]

ATTRIBUTES = ("place", "shape", "colour", "size", "motion")


def item_scenes(extra: dict) -> list[dict]:
    """Every scene of an item: its shots' scenes in order, or its one scene."""
    if extra.get("shots"):
        return [shot["scene"] for shot in extra["shots"]]
    return [extra["scene"]]


def caption_scenes(dataset: RetrievalDataset, language: str) -> list[tuple[dict, dict | None]]:
    """For each caption of `language` (in `dataset.captions_for(language)` order): the scene it
    describes and, for a multi-shot video, its shot (``{"start", "end", "scene"}``), else None.

    Raises:
        ValueError: the dataset has no scene metadata.
    """
    if dataset.extra is None:
        raise ValueError(f"dataset {dataset.name!r} has no scene metadata (extra)")
    seen: dict[int, int] = {}
    out = []
    for item, lang, _ in dataset.captions:
        if lang != language:
            continue
        k = seen.get(item, 0)  # index of this caption among the item's captions in `language`
        seen[item] = k + 1
        extra = dataset.extra[item]
        if extra.get("shots"):
            shot = extra["shots"][extra["caption_shots"][language][k]]
            out.append((shot["scene"], shot))
        else:
            out.append((extra["scene"], None))
    return out


def scene_value(scene: dict, attribute: str):
    """The value a caption states of `attribute` in `scene`: the place, or the main object's."""
    return scene["place"] if attribute == "place" else scene["objects"][0].get(attribute)


def attribute_hits(top1: Sequence[int], described: Sequence[dict],
                   items: Sequence[Sequence[dict]], attribute: str) -> np.ndarray:
    """Per caption: 1 if its top-1 item has a scene agreeing with it on `attribute`, 0 if not,
    -1 if the caption states no value of it (an image caption's motion). (n_captions,) int64."""
    return np.array([-1 if scene_value(scene, attribute) is None else
                     int(any(scene_value(s, attribute) == scene_value(scene, attribute)
                             for s in items[j]))
                     for j, scene in zip(top1, described)], dtype=np.int64)


def attribute_agreement(top1: Sequence[int], caption_item: Sequence[int],
                        described: Sequence[dict], items: Sequence[Sequence[dict]],
                        attributes: Sequence[str] = ATTRIBUTES) -> dict[str, float]:
    """Share of captions whose top-1 item agrees with the caption on each attribute.

    Args:
        top1: (n_captions,) index of the top-ranked item per caption.
        caption_item: (n_captions,) the caption's own item.
        described: the scene each caption describes (`caption_scenes`).
        items: per item, its scenes (`item_scenes`).
        attributes: attributes to score; one whose caption value is None (images have no
            motion) is scored over the captions that state it.

    Returns:
        ``{attribute: fraction, ..., "all": fraction, "n": n_captions}``; an attribute no
        caption states is absent.
    """
    top1, caption_item = np.asarray(top1), np.asarray(caption_item)
    if not len(top1) == len(caption_item) == len(described):
        raise ValueError("top1, caption_item and described must have one entry per caption")
    out: dict[str, float] = {}
    for attribute in attributes:
        hits = attribute_hits(top1, described, items, attribute)
        if (hits >= 0).any():
            out[attribute] = float(hits[hits >= 0].mean())
    out["all"] = float(np.mean(top1 == caption_item)) if len(top1) else 0.0
    out["n"] = len(top1)
    return out


def timestamps_in_shot(timestamps: Sequence[float | None],
                       shots: Sequence[dict | None]) -> dict[str, float]:
    """Share of timestamps inside the described shot (module docstring).

    Args:
        timestamps: per caption, the returned timestamp of its own item (None to skip).
        shots: per caption, the described shot (None for single-shot items: skipped).

    Returns:
        ``{"in_shot": fraction, "n": count}`` (fraction 0.0 when n == 0).
    """
    inside = []
    for t, shot in zip(timestamps, shots):
        if shot is None or t is None:
            continue
        inside.append(shot["start"] <= t <= shot["end"])
    return {"in_shot": float(np.mean(inside)) if inside else 0.0, "n": len(inside)}
