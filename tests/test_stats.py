"""Seed summaries and query-bootstrap intervals."""

import numpy as np
import pytest

from mumur.eval.stats import bootstrap_ci, seed_summary, summarize_ranks


def test_seed_summary_known_values():
    assert seed_summary([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert seed_summary([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        seed_summary([])


def test_bootstrap_interval_matches_binomial_width():
    rng = np.random.default_rng(0)
    n, p = 1000, 0.6
    ranks = np.where(rng.random(n) < p, 1, 7)[None]  # R@1 hits with probability p
    lo, hi = bootstrap_ci(ranks, "R1", n_boot=2000, seed=1)
    half = 100 * 1.96 * np.sqrt(p * (1 - p) / n)  # 3.04 points
    assert hi - lo == pytest.approx(2 * half, rel=0.15)
    assert lo < 100 * np.mean(ranks <= 1) < hi
    assert bootstrap_ci(ranks, "R1", n_boot=2000, seed=1) == (lo, hi)  # deterministic


def test_constant_ranks_give_a_point_interval():
    assert bootstrap_ci(np.full((3, 50), 2), "MdR") == (2.0, 2.0)
    assert bootstrap_ci(np.full((3, 50), 2), "R1") == (0.0, 0.0)


def test_summarize_ranks_means_and_keys():
    a, b = np.array([1, 1, 2, 10]), np.array([1, 3, 3, 10])
    out = summarize_ranks([a, b], n_candidates=10, n_boot=200)
    assert out["R1"] == pytest.approx(37.5) and out["R1_std"] == pytest.approx(
        np.std([50.0, 25.0], ddof=1), abs=1e-4)
    assert out["MdR"] == pytest.approx((1.5 + 3.0) / 2)
    assert out["n_seeds"] == 2 and out["n_queries"] == 4 and len(out["R5_ci95"]) == 2
    single = summarize_ranks([a], n_candidates=10, n_boot=50)
    assert "R1_std" not in single and "R1_ci95" in single
    with pytest.raises(ValueError):
        summarize_ranks([a, b[:3]], 10)
