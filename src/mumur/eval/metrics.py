"""Retrieval metrics, exactly per the DESIGN.md contract.

`sim` is an (n_captions x n_items) similarity (higher = more similar) and `caption_item[i]` the
index of caption i's ground-truth item. `sim` may be a numpy array or a `BlockSimilarity`, which
computes blocks on demand, so a 100k x 100k matrix never materialises.

Ranks are 1-based and pessimistic on ties: rank = number of candidates whose score is >= the ground
truth's score, so a constant scorer gets the worst rank, never the best. NaN scores count as -inf.

One pass (`retrieval_ranks`) gives both directions and reads every (caption, item) score exactly
once, in blocks of at most `caption_block x item_block`. The ranks only need counts of scores at or
above a threshold (the caption's ground-truth score for t2v, the item's best own-caption score for
v2t), so the thresholds come first: with captions ordered by item and items cut into blocks, the
captions of item block k are the rows whose thresholds all lie in the diagonal block (k, k). Pass 1
reads the diagonal blocks (thresholds, then their counts); pass 2 reads every other block once and
only counts. Memory: one block plus O(n_captions + n_items) vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_ITEM_BLOCK",
    "PROTOCOLS",
    "BlockSimilarity",
    "Ranks",
    "ranks_to_metrics",
    "retrieval_metrics",
    "retrieval_ranks",
    "sum_r",
    "t2v_metrics",
    "t2v_ranks",
    "v2t_metrics",
    "v2t_ranks",
]

DEFAULT_CHUNK = 256  # captions per block read
DEFAULT_ITEM_BLOCK = 256  # items per block read
PROTOCOLS = ("caption", "group")


@dataclass(frozen=True)
class BlockSimilarity:
    """A similarity matrix computed block by block.

    Args:
        shape: (n_captions, n_items).
        block: `block(rows: slice, cols: slice) -> np.ndarray (len(rows), len(cols))`.

    Indexing with an integer array of rows calls `block` once per run of consecutive rows.
    """

    shape: tuple[int, int]
    block: Callable[[slice, slice], np.ndarray]

    def __getitem__(self, key: tuple[slice | np.ndarray, slice]) -> np.ndarray:
        rows, cols = key
        if isinstance(rows, slice):
            return np.asarray(self.block(rows, cols))
        rows = np.asarray(rows, dtype=np.int64)
        runs = np.split(rows, np.flatnonzero(np.diff(rows) != 1) + 1) if rows.size else []
        parts = [np.asarray(self.block(slice(int(r[0]), int(r[-1]) + 1), cols)) for r in runs]
        if not parts:
            return np.empty((0, len(range(*cols.indices(self.shape[1])))))
        return np.concatenate(parts)


@dataclass(frozen=True)
class Ranks:
    """Both directions' 1-based ranks.

    Attributes:
        t2v: (n_captions,) rank of each caption's item among all items, in caption order.
        v2t: rank of each item that has a caption (item order; see `v2t_ranks`).
        n_v2t_candidates: captions (caption protocol) or caption groups (group protocol).
    """

    t2v: np.ndarray
    v2t: np.ndarray
    n_v2t_candidates: int


def _block(sim, rows, cols: slice) -> np.ndarray:
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


def retrieval_ranks(sim, caption_item, protocol: str = "caption",
                    caption_block: int = DEFAULT_CHUNK,
                    item_block: int = DEFAULT_ITEM_BLOCK) -> Ranks:
    """t2v and v2t ranks in one pass that reads each score once (module docstring).

    Args:
        sim: (n_captions, n_items) array or `BlockSimilarity`.
        caption_item: ground-truth item index of each caption.
        protocol: v2t protocol, ``"caption"`` or ``"group"`` (see `v2t_ranks`).
        caption_block: most captions per read of `sim`.
        item_block: items per read of `sim` (column block).

    Returns:
        Ranks. Column blocks are the outer loop of each pass, so a scorer behind a
        `BlockSimilarity` may cache per-column-block state.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected 'caption' or 'group'")
    if caption_block <= 0 or item_block <= 0:
        raise ValueError(f"block sizes must be positive, got {caption_block} x {item_block}")
    caption_item, n_captions, n_items = _check(sim, caption_item)
    order = np.argsort(caption_item, kind="stable")  # captions grouped by item
    item_of = caption_item[order]  # (n_captions,) non-decreasing
    col_edges = list(range(0, n_items, item_block)) + [n_items]
    row_edges = np.searchsorted(item_of, col_edges)  # row group k = captions of column block k
    groups = [(slice(int(row_edges[k]), int(row_edges[k + 1])),
               slice(col_edges[k], col_edges[k + 1])) for k in range(len(col_edges) - 1)]
    gt = np.full(n_captions, -np.inf)  # t2v threshold per caption (sorted order)
    best = np.full(n_items, -np.inf)  # v2t threshold: best own-caption score per item
    t2v = np.zeros(n_captions, dtype=np.int64)
    v2t = np.zeros(n_items, dtype=np.int64)

    def read(rows: slice, cols: slice) -> np.ndarray:  # (len(rows), len(cols))
        return np.concatenate([_block(sim, order[s:min(s + caption_block, rows.stop)], cols)
                               for s in range(rows.start, rows.stop, caption_block)])

    def count(rows: slice, cols: slice, scores: np.ndarray, diagonal: bool) -> None:
        t2v[rows] += (scores >= gt[rows, None]).sum(axis=1)
        hits = scores >= best[None, cols]  # (rows, cols)
        if protocol == "caption":
            if diagonal:  # an item's own captions never count against it
                hits &= item_of[rows, None] != np.arange(cols.start, cols.stop)[None, :]
            v2t[cols] += hits.sum(axis=0)
        else:  # a caption group counts once if any of its captions reaches the threshold
            items = item_of[rows]
            starts = np.flatnonzero(np.r_[True, items[1:] != items[:-1]])
            v2t[cols] += np.logical_or.reduceat(hits, starts, axis=0).sum(axis=0)

    for rows, cols in groups:  # pass 1: the diagonal blocks hold every threshold
        if rows.start == rows.stop:
            continue
        scores = read(rows, cols)
        gt[rows] = scores[np.arange(scores.shape[0]), item_of[rows] - cols.start]
        np.maximum.at(best, item_of[rows], gt[rows])
        count(rows, cols, scores, diagonal=True)
    for _, cols in groups:  # pass 2: every other block, column blocks outermost
        for rows, own_cols in groups:
            if rows.start != rows.stop and own_cols != cols:
                count(rows, cols, read(rows, cols), diagonal=False)

    has_caption = np.bincount(caption_item, minlength=n_items) > 0
    t2v_ranks_ = np.empty(n_captions, dtype=np.int64)
    t2v_ranks_[order] = t2v
    if protocol == "caption":
        return Ranks(t2v_ranks_, (v2t + 1)[has_caption], n_captions)
    return Ranks(t2v_ranks_, v2t[has_caption], int(has_caption.sum()))


def t2v_ranks(sim, caption_item, chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """Rank of each caption's ground-truth item among all items (1-based, pessimistic ties)."""
    return retrieval_ranks(sim, caption_item, caption_block=chunk_size).t2v


def v2t_ranks(sim, caption_item, protocol: str = "caption",
              chunk_size: int = DEFAULT_CHUNK) -> np.ndarray:
    """Rank of each item's ground truth among the captions; items with no caption are skipped.

    Args:
        protocol: ``"caption"`` (Karpathy/LECCR): the item's best own caption ranked among the
            other items' captions (1 + how many of those score >= it; the item's other captions
            never count against it). ``"group"`` (CLIP4Clip/X-Pool multi-sentence): captions are
            grouped by their item, a group's score for an item is the max over its captions, and
            the item's own group is ranked among all groups.

    Returns:
        ranks for the items that have at least one caption, in item order.
    """
    return retrieval_ranks(sim, caption_item, protocol, caption_block=chunk_size).v2t


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
    return ranks_to_metrics(t2v_ranks(sim, caption_item, chunk_size), sim.shape[1])


def v2t_metrics(sim, caption_item, protocol: str = "caption",
                chunk_size: int = DEFAULT_CHUNK) -> dict:
    """Video-to-text metrics: each item ranks the captions (see `v2t_ranks` for the protocols).

    Returns:
        the same keys as `t2v_metrics`; `n_candidates` is the number of captions (caption
        protocol) or caption groups (group protocol).
    """
    ranks = retrieval_ranks(sim, caption_item, protocol, caption_block=chunk_size)
    return ranks_to_metrics(ranks.v2t, ranks.n_v2t_candidates)


def retrieval_metrics(sim, caption_item, protocol: str = "caption",
                      caption_block: int = DEFAULT_CHUNK,
                      item_block: int = DEFAULT_ITEM_BLOCK) -> tuple[dict, dict]:
    """`t2v_metrics` and `v2t_metrics` from one pass over `sim` (each score read once).

    Returns:
        (t2v, v2t) metric dicts.
    """
    ranks = retrieval_ranks(sim, caption_item, protocol, caption_block, item_block)
    return (ranks_to_metrics(ranks.t2v, sim.shape[1]),
            ranks_to_metrics(ranks.v2t, ranks.n_v2t_candidates))


def sum_r(t2v: dict, v2t: dict) -> float:
    """SumR = R1 + R5 + R10 of t2v plus R1 + R5 + R10 of v2t (LECCR's summary metric)."""
    return float(sum(m[k] for m in (t2v, v2t) for k in ("R1", "R5", "R10")))
