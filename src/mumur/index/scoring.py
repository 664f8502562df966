"""Exact scoring over the in-memory index, blocked and optionally threaded.

`BlockScorer` holds one branch's arrays in the head's in-memory form (`head.compact_index_state`:
for `mumur-dcm` the keys plus small per-item Gram matrices, so a query reads the keys once;
heads/dcm_fast.py) and scores a row subset (stage 2 of two-stage search) or every item (exact
search) in blocks of items: each block's temporaries stay small, and with ``threads > 1`` blocks run
on a thread pool (torch kernels release the GIL). Float16 indexes keep float16 keys in memory
and multiply them in float16 (float32 accumulation).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["BlockScorer"]

# (queries (N, d) torch) -> fn(compact_block, mask_block) -> (scores (N, b), attention (N, b, T))
PrepareFn = Callable[[object], Callable]


class BlockScorer:
    """Scores of queries against rows of one branch's compact arrays.

    Args:
        compact: name -> torch tensor with items on the first axis (`head.compact_index_state`).
        mask: (B, T) bool valid frames.
        prepare: `head.compact_scorer` bound to the branch: queries -> block scoring function.
        block_items: items per block.
        threads: worker threads for an all-items pass (1: the calling thread only).
    """

    def __init__(self, compact: dict, mask: np.ndarray, prepare: PrepareFn,
                 block_items: int = 4096, threads: int = 1):
        import torch

        self.compact = compact
        self.mask = torch.from_numpy(np.ascontiguousarray(mask, dtype=bool))
        self.prepare = prepare
        self.block_items = max(1, int(block_items))
        self.threads = max(1, int(threads))
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    def nbytes(self) -> int:
        """Memory held by the compact arrays."""
        return int(sum(v.element_size() * v.nelement() for v in self.compact.values()))

    def __call__(self, queries: np.ndarray, rows: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(N, d) float32 queries -> scores (N, R) and attention (N, R, T) over `rows` (None:
        every item, in order)."""
        import torch

        with torch.no_grad():
            score = self.prepare(torch.from_numpy(np.ascontiguousarray(queries, np.float32)))
            if rows is not None:
                index = torch.from_numpy(np.asarray(rows, dtype=np.int64))
                block = {k: v.index_select(0, index) for k, v in self.compact.items()}
                s, a = score(block, self.mask.index_select(0, index))
                return s.numpy(), a.numpy()
            n_items = len(self)
            starts = range(0, n_items, self.block_items)

            def run(start):
                stop = min(start + self.block_items, n_items)
                block = {k: v[start:stop] for k, v in self.compact.items()}
                return score(block, self.mask[start:stop])

            parts = list(self._pool.map(run, starts) if self._pool else map(run, starts))
            return (torch.cat([p[0] for p in parts], dim=1).numpy(),
                    torch.cat([p[1] for p in parts], dim=1).numpy())
