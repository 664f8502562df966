"""The relevance-flag figures on known answers."""

from __future__ import annotations

import math

from mumur.index.calibration import AttributeQuery, attribute_queries, flag_figures, sweep


def test_attribute_queries_use_every_shot():
    items = [{"path": "a.jpg", "scene": {"objects": [{"shape": "circle", "colour": "red"}]}},
             {"path": "b.mp4", "shots": [{"scene": {"objects": [{"shape": "star",
                                                                 "colour": "red"}]}},
                                         {"scene": {"objects": [{"shape": "circle",
                                                                 "colour": "red"}]}}]}]
    queries = {q.text: q for q in attribute_queries(items, ("circle", "star"), ("red", "blue"))}
    assert queries["a red circle"].relevant == {"a.jpg", "b.mp4"}
    assert queries["a red star"].relevant == {"b.mp4"}
    assert queries["a blue star"].no_match


def test_flag_figures_known_answer():
    hit = AttributeQuery("q1", frozenset({"x"}), [("x", 5.0, True), ("y", 4.0, True)])
    missed = AttributeQuery("q2", frozenset({"x"}), [("x", 2.0, False), ("y", 1.0, False)])
    none = AttributeQuery("q3", frozenset(), [("y", 4.5, True)])
    figures = flag_figures([hit, missed, none])
    assert figures["flagged_precision"] == round(1 / 3, 4)  # 1 relevant of 3 flagged
    assert figures["top_relevant_flagged"] == 0.5
    assert figures["no_match_flagged"] == 1.0
    strict = flag_figures([hit, missed, none], threshold=4.8)
    assert (strict["flagged_precision"], strict["no_match_flagged"]) == (1.0, 0.0)
    assert math.isnan(sweep([none], [9.0])[0]["flagged_precision"])
