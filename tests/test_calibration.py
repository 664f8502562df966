"""The relevance-flag figures on known answers."""

from __future__ import annotations

import math

from mumur.index.calibration import AttributeQuery, Result, flag_figures, sweep


def test_flag_figures_known_answer():
    hit = AttributeQuery("q1", frozenset({"x"}), [Result("x", 0.9, 5.0, True),
                                                  Result("y", 0.5, 4.0, True)])
    missed = AttributeQuery("q2", frozenset({"x"}), [Result("x", 0.8, 2.0, False),
                                                     Result("y", 0.4, 1.0, False)])
    none = AttributeQuery("q3", frozenset(), [Result("y", 0.7, 4.5, True)])
    figures = flag_figures([hit, missed, none])
    assert figures["flagged_precision"] == round(1 / 3, 4)  # 1 relevant of 3 flagged
    assert figures["top_relevant_flagged"] == 0.5
    assert figures["no_match_flagged"] == 1.0
    strict = flag_figures([hit, missed, none], threshold=4.8)
    assert (strict["flagged_precision"], strict["no_match_flagged"]) == (1.0, 0.0)
    by_score = flag_figures([hit, missed, none], threshold=0.75, statistic="score")
    assert (by_score["flagged_precision"], by_score["top_relevant_flagged"],
            by_score["no_match_flagged"]) == (1.0, 1.0, 0.0)
    assert math.isnan(sweep([none], [9.0])[0]["flagged_precision"])
