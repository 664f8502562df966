"""Per-attribute top-1 agreement and in-shot timestamps: known-answer cases."""

import pytest

from mumur.data.dataset import RetrievalDataset
from mumur.eval.attributes import (attribute_agreement, caption_scenes, item_scenes,
                                   timestamps_in_shot)


def scene(place, shape, colour, size, motion=None):
    return {"place": place, "objects": [{"shape": shape, "colour": colour, "size": size,
                                         "motion": motion, "sound": None}]}


A = scene("beach", "circle", "red", "small", "moves left")
B = scene("snow", "circle", "blue", "large", "moves right")
C = scene("beach", "star", "red", "small", "rotates")
SHOTS = [{"start": 0.0, "end": 1.5, "scene": B}, {"start": 1.5, "end": 3.0, "scene": C}]


def dataset():
    extra = [{"scene": A}, {"shots": SHOTS, "caption_shots": {"en": [1, 0]}}]
    captions = [(0, "en", "a"), (1, "en", "c shot"), (1, "en", "b shot"), (1, "de", "x")]
    return RetrievalDataset("synthetic", "test", ["a", "m"], captions, extra=extra)


def test_caption_scenes_follow_caption_shots():
    got = caption_scenes(dataset(), "en")
    assert [s for s, _ in got] == [A, C, B]
    assert got[0][1] is None and got[1][1] is SHOTS[1] and got[2][1] is SHOTS[0]
    assert item_scenes(dataset().extra[1]) == [B, C]


def test_attribute_agreement_known_answer():
    ds = dataset()
    described = [s for s, _ in caption_scenes(ds, "en")]
    items = [item_scenes(e) for e in ds.extra]
    # caption 0 (A) retrieves item 1 (shots B, C): C shares place, colour, size; B shares shape.
    # captions 1 and 2 retrieve their own item 1.
    out = attribute_agreement([1, 1, 1], [0, 1, 1], described, items)
    assert out == {"place": 1.0, "shape": 1.0, "colour": 1.0, "size": 1.0,
                   "motion": pytest.approx(2 / 3), "all": pytest.approx(2 / 3), "n": 3}
    out = attribute_agreement([0, 0, 0], [0, 1, 1], described, items)
    # item 0 = A: vs C (caption 1) place/colour/size agree, shape/motion not; vs B nothing but
    # shape.
    assert out["place"] == pytest.approx(2 / 3) and out["shape"] == pytest.approx(2 / 3)
    assert out["motion"] == pytest.approx(1 / 3) and out["all"] == pytest.approx(1 / 3)


def test_images_without_motion_are_left_out_of_motion():
    img = scene("night", "heart", "white", "large")
    out = attribute_agreement([0], [0], [img], [[img]])
    assert "motion" not in out and out["shape"] == 1.0


def test_timestamps_in_shot():
    shots = [None, SHOTS[1], SHOTS[0], SHOTS[1]]
    out = timestamps_in_shot([0.3, 2.0, 2.0, 1.5], shots)
    assert out == {"in_shot": pytest.approx(2 / 3), "n": 3}
    assert timestamps_in_shot([], []) == {"in_shot": 0.0, "n": 0}
