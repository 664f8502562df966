"""Seed summaries and query-bootstrap intervals."""

import numpy as np
import pytest

from mumur.eval.stats import bootstrap_ci, seed_summary, summarize_ranks, summarize_shares


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


def test_summarize_ranks_groups_average_within_seed_and_resample_queries_jointly():
    # Two seeds x two groups (languages) over the same 4 queries.
    s0 = np.array([[1, 1, 3, 5], [1, 2, 2, 2]])  # R@1: 50, 25 -> 37.5
    s1 = np.array([[1, 1, 1, 5], [1, 1, 2, 2]])  # R@1: 75, 50 -> 62.5
    out = summarize_ranks([s0, s1], n_candidates=10, n_boot=300)
    assert out["R1"] == pytest.approx(50.0)
    assert out["R1_std"] == pytest.approx(np.std([37.5, 62.5], ddof=1), abs=1e-3)
    assert out["n_groups"] == 2 and out["n_queries"] == 4
    lo, hi = out["R1_ci95"]
    assert 0.0 <= lo <= 50.0 <= hi <= 100.0
    # Identical groups give the same figures as one group.
    same = summarize_ranks([np.stack([s0[0], s0[0]])], 10, n_boot=300)
    assert same["R1"] == summarize_ranks([s0[0]], 10, n_boot=300)["R1"]
    assert same["R1_ci95"] == summarize_ranks([s0[0]], 10, n_boot=300)["R1_ci95"]


def test_summarize_shares_known_answer():
    a = np.array([True, True, False, False])
    b = np.array([True, True, True, False])
    out = summarize_shares([a, b], n_boot=300)
    assert out["mean"] == pytest.approx(62.5)
    assert out["std"] == pytest.approx(np.std([50.0, 75.0], ddof=1), abs=1e-3)
    assert out["n"] == 4 and out["n_seeds"] == 2
    assert summarize_shares([np.ones(5, bool)], n_boot=50)["ci95"] == [100.0, 100.0]
    assert summarize_shares([np.zeros(0, bool)])["n"] == 0
    with pytest.raises(ValueError):
        summarize_shares([a, b[:3]])


def test_paired_difference_is_exact_and_its_interval_paired():
    from mumur.eval.stats import paired_difference

    rng = np.random.default_rng(0)
    a = rng.integers(1, 4, size=(3, 400))
    same = paired_difference(a, a)
    assert same["diff"] == 0 and same["ci95"] == [0, 0]  # paired: no spread when equal
    b = a + 1  # B one rank worse on every query
    out = paired_difference(a, b, "R1")
    assert out["diff"] == pytest.approx(100 * (a == 1).mean(), abs=1e-4)
    assert out["ci95"][0] <= out["diff"] <= out["ci95"][1] and out["ci95"][0] > 0
    with pytest.raises(ValueError):
        paired_difference(a, b[:, :10])
