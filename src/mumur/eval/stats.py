"""Figures over several seeds with honest uncertainty: mean +- std over seeds and a 95% interval
over test queries.

Two sources of variation are reported separately:
  * training seeds: `<key>` is the mean over seeds, `<key>_std` the sample standard deviation
    (ddof=1; 0 with one seed);
  * the test sample: `<key>_ci95` = [lo, hi], a percentile bootstrap over test queries. The same
    resampled query indices are applied to every seed (paired), and each resample's statistic is
    the mean over seeds of the metric on the resampled queries, so the interval is that of the
    reported mean. With n queries and R@1 near p, its half-width is about 1.96 sqrt(p(1-p)/n)
    (+-3 points at p = 0.6, n = 1000).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import ranks_to_metrics

__all__ = ["RANK_KEYS", "bootstrap_ci", "paired_difference", "seed_summary", "summarize_ranks",
           "summarize_shares"]

RANK_KEYS = ("R1", "R5", "R10", "MdR", "MnR")


def _statistic(key: str, ranks: np.ndarray) -> np.ndarray:
    """A rank metric along the last axis: (..., n) -> (...)."""
    if key.startswith("R"):
        k = int(key[1:])
        return 100.0 * (ranks <= k).mean(axis=-1)
    if key == "MdR":
        return np.median(ranks, axis=-1)
    if key == "MnR":
        return ranks.mean(axis=-1)
    raise ValueError(f"unknown rank metric {key!r}; expected one of {RANK_KEYS}")


def bootstrap_ci(ranks: np.ndarray, key: str = "R1", n_boot: int = 1000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval over queries of a seed-averaged rank metric.

    Args:
        ranks: (n_seeds, n_queries) 1-based ranks; the same query order in every row.
        key: R1, R5, R10, MdR or MnR.
        n_boot: bootstrap resamples.
        level: interval coverage.
        seed: resampling seed (the interval is deterministic given it).

    Returns:
        (lo, hi).
    """
    ranks = np.atleast_2d(np.asarray(ranks, dtype=np.float64))
    n = ranks.shape[1]
    if n == 0:
        raise ValueError("no queries to bootstrap")
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for start in range(0, n_boot, 100):  # blocks bound the (block, seeds, n) temporary
        idx = rng.integers(0, n, size=(min(100, n_boot - start), n))  # (b, n)
        resampled = ranks[:, idx].transpose(1, 0, 2)  # (b, n_seeds, n)
        stats[start:start + len(idx)] = _statistic(key, resampled).mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_difference(ranks_a: np.ndarray, ranks_b: np.ndarray, key: str = "R1",
                      n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Difference of a rank metric between two systems on the same queries: A - B, each the
    mean over its rows (seeds, or seeds x query groups), with a paired percentile-bootstrap
    interval (each resample draws the same queries for both systems).

    Args:
        ranks_a, ranks_b: (rows, n_queries) 1-based ranks, the same query order in both.
        key: R1, R5, R10, MdR or MnR.

    Returns:
        ``{"diff", "ci95": [lo, hi], "n_queries", "n_rows"}`` and, with several rows,
        ``"std"``: the sample std of the per-row differences (rows of A and B paired: seed i of
        A with seed i of B).
    """
    a = np.atleast_2d(np.asarray(ranks_a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(ranks_b, dtype=np.float64))
    if a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError(f"need the same, non-zero number of queries: {a.shape} vs {b.shape}")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for start in range(0, n_boot, 100):
        idx = rng.integers(0, n, size=(min(100, n_boot - start), n))  # (b, n)
        stats[start:start + len(idx)] = (
            _statistic(key, a[:, idx].transpose(1, 0, 2)).mean(axis=1)
            - _statistic(key, b[:, idx].transpose(1, 0, 2)).mean(axis=1))
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    diff = float(_statistic(key, a).mean() - _statistic(key, b).mean())
    out = {"diff": round(diff, 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
           "n_queries": int(n), "n_rows": int(a.shape[0])}
    if a.shape == b.shape and a.shape[0] > 1:
        out["std"] = round(seed_summary(_statistic(key, a) - _statistic(key, b))[1], 4)
    return out


def seed_summary(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std with ddof=1; 0.0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to summarise")
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return float(values.mean()), std


def summarize_ranks(ranks_per_seed: Sequence[np.ndarray], n_candidates: int,
                    n_boot: int = 1000, seed: int = 0) -> dict:
    """The DESIGN contract's figure: every rank metric as the mean over seeds, with `<key>_std`
    and `<key>_ci95` beside it when several seeds ran (the interval is always given).

    Args:
        ranks_per_seed: per training seed, an (n_queries,) rank array, or an (n_groups,
            n_queries) array whose rows are query groups aligned on the query axis (e.g. the
            14 non-English languages of the same test captions): each seed's metric is then the
            mean over its groups, and the bootstrap resamples queries jointly across groups, so
            the interval accounts for the groups describing the same items.
        n_candidates: gallery size (reported as ``n_candidates``).
        n_boot: bootstrap resamples for the intervals.
        seed: bootstrap seed.

    Returns:
        ``{"R1", "R1_std", "R1_ci95", ..., "n_queries", "n_candidates", "n_seeds"}`` (and
        ``n_groups`` for grouped input).
    """
    runs = [np.atleast_2d(np.asarray(r)) for r in ranks_per_seed]
    if not runs or len({r.shape for r in runs}) != 1:
        raise ValueError("need at least one seed, with the same number of queries in each")
    per_seed = [[ranks_to_metrics(row, n_candidates) for row in r] for r in runs]
    stacked = np.concatenate(runs)  # (n_seeds * n_groups, n_queries): the mean over rows
    out: dict = {}
    for key in RANK_KEYS:
        mean, std = seed_summary([np.mean([m[key] for m in groups]) for groups in per_seed])
        out[key] = round(mean, 4)
        if len(runs) > 1:
            out[f"{key}_std"] = round(std, 4)
        out[f"{key}_ci95"] = [round(v, 4) for v in bootstrap_ci(stacked, key, n_boot, seed=seed)]
    out.update(n_queries=int(stacked.shape[1]), n_candidates=int(n_candidates),
               n_seeds=len(runs))
    if runs[0].shape[0] > 1:
        out["n_groups"] = int(runs[0].shape[0])
    return out


def summarize_shares(hits_per_seed: Sequence[np.ndarray], n_boot: int = 1000,
                     seed: int = 0) -> dict:
    """A share in percent (attribute agreement, timestamps inside the shot) over seeds: mean,
    sample std over seeds and a paired query-bootstrap 95% interval of the mean.

    Args:
        hits_per_seed: per seed, an (n,) boolean array over the same n queries.

    Returns:
        ``{"mean", "std", "ci95", "n", "n_seeds"}`` (``std`` only with several seeds).
    """
    runs = [np.asarray(h, dtype=np.float64) for h in hits_per_seed]
    if not runs or len({r.shape for r in runs}) != 1 or runs[0].ndim != 1:
        raise ValueError("need at least one seed, each an (n,) array over the same queries")
    stacked = np.stack(runs)  # (n_seeds, n)
    if stacked.shape[1] == 0:
        return {"mean": None, "n": 0, "n_seeds": len(runs)}
    # A hit is rank 1 of a one-candidate query, so the R1 bootstrap gives the share's interval.
    ranks = np.where(stacked > 0, 1, 2)
    mean, std = seed_summary(100.0 * stacked.mean(axis=1))
    out = {"mean": round(mean, 4)}
    if len(runs) > 1:
        out["std"] = round(std, 4)
    out["ci95"] = [round(v, 4) for v in bootstrap_ci(ranks, "R1", n_boot, seed=seed)]
    out.update(n=int(stacked.shape[1]), n_seeds=len(runs))
    return out
