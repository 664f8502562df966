"""Retrieval metrics, exactly per the DESIGN.md contract.

`sim` is an (n_captions x n_items) similarity (higher = more similar) and `caption_item[i]` the
index of caption i's ground-truth item. `sim` may be a numpy array or a `BlockSimilarity`, which
computes blocks on demand, so a 100k x 100k matrix never materialises: every function here reads
`sim` one block at a time.

Ranks are 1-based and pessimistic on ties: rank = number of candidates whose score is >= the ground
truth's score, so a constant scorer gets the worst rank, never the best. NaN scores count as -inf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "BlockSimilarity",
    "t2v_ranks",
    "v2t_ranks",
    "t2v_metrics",
    "v2t_metrics",
    "ranks_to_metrics",
    "sum_r",
    "DEFAULT_CHUNK",
]

DEFAULT_CHUNK = 1024


@dataclass(frozen=True)
class BlockSimilarity:
    """A similarity matrix computed block by block.

    Args:
        shape: (n_captions, n_items).
        block: `block(rows: slice, cols: slice) -> np.ndarray (len(rows), len(cols))`.
    """

    shape: tuple[int, int]
    block: Callable[[slice, slice], np.ndarray]

    def __getitem__(self, key: tuple[slice, slice]) -> np.ndarray:
        rows, cols = key
        return np.asarray(self.block(rows, cols))


def _block(sim, rows: slice, cols: slice) -> np.ndarray:
    out = np.asarray(sim[rows, cols], dtype=np.float64)
    return np.where(np.isnan(out), -np.inf, out)


def _check(sim, caption_item) -> tuple[np.ndarray, int, int]:
    caption_item = np.asarray(caption_item, dtype=np.int64)
    if len(sim.shape) != 2:
        raise ValueError(f"sim must be 2-D (n_captions, n_items), got shape {sim.shape}")
    n_captions, n_items = sim.shape
    if caption_item.shape != (n_captions,):
        raise ValueError(
            f"caption_item has shape {caption_item.shape}, expected ({n_captions},) to match sim")
    if n_captions and (caption_item.min() < 0 or caption_item.max() >= n_items):
        raise ValueError(f"caption_item values must lie in [0, {n_items})")
    return caption_item, n_captions, n_items


def t2v_ranks(sim, caption_item, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """Rank of each caption's ground-truth item among all items (1-based, pessimistic ties)."""
    caption_item, n_captions, n_items = _check(sim, caption_item)
    ranks = np.empty(n_captions, dtype=np.int64)
    for start in range(0, n_captions, chunk_size):
        rows = slice(start, min(start + chunk_size, n_captions))
        block = _block(sim, rows, slice(0, n_items))  # (c, n_items)
        gt = block[np.arange(block.shape[0]), caption_item[rows]]
        ranks[rows] = (block >= gt[:, None]).sum(axis=1)
    return ranks


def v2t_ranks(sim, caption_item, protocol: str = "caption",
              chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """Rank of each item's ground truth among the captions; items with no caption are skipped.

    Args:
        protocol: ``"caption"`` (Karpathy/LECCR): the best (smallest) rank of any of the item's
            captions among all captions. ``"group"`` (CLIP4Clip/X-Pool multi-sentence): captions are
            grouped by their item, a group's score for an item is the max over its captions, and the
            item's own group is ranked among all groups.

    Returns:
        ranks for the items that have at least one caption, in item order.
    """
    caption_item, n_captions, n_items = _check(sim, caption_item)
    has_caption = np.bincount(caption_item, minlength=n_items) > 0
    if protocol == "caption":
        # Best rank over an item's captions = number of captions scoring >= its best caption.
        best_gt = np.full(n_items, -np.inf)
        for start in range(0, n_captions, chunk_size):
            rows = slice(start, min(start + chunk_size, n_captions))
            block = _block(sim, rows, slice(0, n_items))
            gt = block[np.arange(block.shape[0]), caption_item[rows]]
            np.maximum.at(best_gt, caption_item[rows], gt)
        counts = np.zeros(n_items, dtype=np.int64)
        for start in range(0, n_captions, chunk_size):
            rows = slice(start, min(start + chunk_size, n_captions))
            counts += (_block(sim, rows, slice(0, n_items)) >= best_gt[None, :]).sum(axis=0)
        return counts[has_caption]
    if protocol == "group":
        groups = np.flatnonzero(has_caption)  # one caption group per captioned item
        group_of_item = np.full(n_items, -1)
        group_of_item[groups] = np.arange(len(groups))
        caption_group = group_of_item[caption_item]
        ranks = np.empty(len(groups), dtype=np.int64)
        # Column blocks bounded so the (n_groups x block) score table stays ~128 MB.
        col_chunk = max(1, min(chunk_size, (1 << 24) // max(1, len(groups))))
        for start in range(0, len(groups), col_chunk):
            cols_items = groups[start:start + col_chunk]
            lo, hi = int(cols_items[0]), int(cols_items[-1]) + 1
            group_score = np.full((len(groups), hi - lo), -np.inf)  # (n_groups, item block)
            for cstart in range(0, n_captions, chunk_size):
                rows = slice(cstart, min(cstart + chunk_size, n_captions))
                block = _block(sim, rows, slice(lo, hi))
                np.maximum.at(group_score, caption_group[rows], block)
            local = cols_items - lo
            own = group_score[np.arange(start, start + len(cols_items)), local]
            ranks[start:start + len(cols_items)] = (group_score[:, local] >= own[None, :]).sum(0)
        return ranks
    raise ValueError(f"unknown protocol {protocol!r}; expected 'caption' or 'group'")


def ranks_to_metrics(ranks: np.ndarray, n_candidates: int) -> dict:
    """R@1/5/10 in percent, MdR (numpy median, averaging) and MnR from 1-based ranks."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no queries to evaluate")
    return {
        "R1": float(100.0 * np.mean(ranks <= 1)),
        "R5": float(100.0 * np.mean(ranks <= 5)),
        "R10": float(100.0 * np.mean(ranks <= 10)),
        "MdR": float(np.median(ranks)),
        "MnR": float(np.mean(ranks)),
        "n_queries": int(ranks.size),
        "n_candidates": int(n_candidates),
    }


def t2v_metrics(sim, caption_item, chunk_size: int = DEFAULT_CHUNK) -> dict:
    """Text-to-video (or text-to-image) retrieval metrics: each caption ranks all items.

    Args:
        sim: (n_captions, n_items) array or `BlockSimilarity`.
        caption_item: ground-truth item index of each caption.

    Returns:
        ``{"R1", "R5", "R10", "MdR", "MnR", "n_queries", "n_candidates"}``.
    """
    ranks = t2v_ranks(sim, caption_item, chunk_size)
    return ranks_to_metrics(ranks, sim.shape[1])


def v2t_metrics(sim, caption_item, protocol: str = "caption",
                chunk_size: int = DEFAULT_CHUNK) -> dict:
    """Video-to-text metrics: each item ranks the captions (see `v2t_ranks` for the protocols).

    Returns:
        the same keys as `t2v_metrics`; `n_candidates` is the number of captions (caption
        protocol) or caption groups (group protocol).
    """
    ranks = v2t_ranks(sim, caption_item, protocol, chunk_size)
    caption_item = np.asarray(caption_item)
    n_candidates = sim.shape[0] if protocol == "caption" else len(np.unique(caption_item))
    return ranks_to_metrics(ranks, n_candidates)


def sum_r(t2v: dict, v2t: dict) -> float:
    """SumR = R1 + R5 + R10 of t2v plus R1 + R5 + R10 of v2t (LECCR's summary metric)."""
    return float(sum(m[k] for m in (t2v, v2t) for k in ("R1", "R5", "R10")))
