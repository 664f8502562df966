"""Fusing the cross-encoder's ITM score with the two-stream score, and choosing the fusion
weight on validation captions.

A re-ranked shortlist is ordered by

    fused = (1 - w) * z(two-stream scores) + w * z(ITM logits)

where z standardises each query's K scores (zero mean, unit spread over its own shortlist), so
neither score's scale matters and the weight w in [0, 1] reads as a share. w = 0 is the two-stream
order, w = 1 the ITM order alone (MLMM eq. 1 as the only score; the "pure ITM" switch). Fusing a
cross-encoder with the first stage's score is common practice for re-rankers; MLMM itself
re-ranks nothing (docs/deviations.md).

The weight is chosen per shortlist size K on validation captions only (`select_fusion_weight`:
the grid point with the best validation t2v R@1, the smallest weight on ties, so an uninformative
cross-encoder falls back to the two-stream order); test captions never take part. It is stored
with the fine-tuned model (``fusion.json``) and read by `load_reranker`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..fsutil import atomic_write_json

__all__ = ["FUSION_FILE", "FUSION_GRID", "fuse_scores", "load_fusion", "save_fusion",
           "select_fusion_weight", "shortlist_r1", "weight_for"]

FUSION_FILE = "fusion.json"
FUSION_GRID = tuple(round(0.05 * i, 2) for i in range(21))  # 0, 0.05, ..., 1


def _standardise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    spread = x.std(axis=-1, keepdims=True)
    return (x - x.mean(axis=-1, keepdims=True)) / np.where(spread > 1e-12, spread, 1.0)


def fuse_scores(base: np.ndarray, cross: np.ndarray, weight: float) -> np.ndarray:
    """Fused shortlist scores (module docstring).

    Args:
        base: (..., K) two-stream scores of each query's shortlist.
        cross: (..., K) cross-encoder (ITM) scores of the same items.
        weight: the ITM share w in [0, 1].

    Returns:
        (..., K) float64; w = 0 orders exactly as `base`, w = 1 exactly as `cross`.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight {weight} is outside [0, 1]")
    if weight == 0.0:
        return np.asarray(base, dtype=np.float64).copy()
    if weight == 1.0:
        return np.asarray(cross, dtype=np.float64).copy()
    return (1.0 - weight) * _standardise(base) + weight * _standardise(cross)


def shortlist_r1(scores: np.ndarray, hits: np.ndarray) -> float:
    """t2v R@1 (%) when each query's shortlist is ordered by `scores`: the own item (`hits`, (n, K)
    bool) must score strictly above every other shortlisted item (pessimistic ties, as
    `eval.metrics`); a query whose own item is not shortlisted misses."""
    scores = np.asarray(scores, dtype=np.float64)
    inside = hits.any(axis=1)
    own = np.where(inside, np.where(hits, scores, -np.inf).max(axis=1), np.inf)
    top = (scores >= own[:, None]).sum(axis=1) == 1
    return float(100.0 * np.mean(inside & top)) if len(scores) else 0.0


def select_fusion_weight(base: np.ndarray, cross: np.ndarray, hits: np.ndarray,
                         grid=FUSION_GRID) -> tuple[float, dict[str, float]]:
    """The fusion weight with the best R@1 on validation shortlists.

    Args:
        base, cross: (n, K) two-stream and ITM scores of the validation captions' shortlists.
        hits: (n, K) bool, the caption's own item.
        grid: candidate weights (ascending).

    Returns:
        (weight, {weight: validation R@1}); ties go to the smaller weight.
    """
    curve = {f"{w:g}": shortlist_r1(fuse_scores(base, cross, w), hits) for w in grid}
    best = max(grid, key=lambda w: (curve[f"{w:g}"], -w))
    return float(best), curve


def weight_for(weights: dict[int, float], k: int) -> float:
    """The stored weight of the shortlist size nearest to `k` (on a log scale)."""
    if not weights:
        raise ValueError("no fusion weights")
    near = min(weights, key=lambda s: (abs(np.log(s) - np.log(max(1, k))), s))
    return float(weights[near])


def save_fusion(folder: str | os.PathLike, weights: dict[int, float], info: dict) -> Path:
    """Write ``fusion.json`` (weights per K and how they were chosen) into a model folder."""
    path = Path(folder) / FUSION_FILE
    atomic_write_json(path, {"weights": {str(k): float(w) for k, w in sorted(weights.items())},
                             **info}, indent=2)
    return path


def load_fusion(folder: str | os.PathLike) -> dict[int, float]:
    """Fusion weights per K of a model folder ({} when it has none: pure ITM)."""
    path = Path(folder) / FUSION_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return {int(k): float(w) for k, w in data["weights"].items()}
