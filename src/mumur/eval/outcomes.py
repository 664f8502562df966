"""Per-query outcomes of text -> item retrieval: each caption's rank, its top-1 item and the frame
its own item's attention peaks on (the search timestamp), for seed-paired statistics.

`evaluate` (runner.py) reduces a gallery to R@K in one pass; experiments that report intervals
(`stats.summarize_ranks`), per-attribute agreement and timestamps (`attributes.py`) need the
per-query values instead. The scores go through the same head calls as evaluation and search
(`index_state` / `score_index_state`), so the rank, the top-1 item and the peak frame are those a
user of the index would get. Ranks are 1-based and pessimistic on ties (`metrics.t2v_ranks`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.dataset import RetrievalDataset
from ..errors import DatasetError
from ..model import branch_for_language
from .metrics import retrieval_ranks
from .runner import MediaStates, caption_language_code

__all__ = ["QueryOutcomes", "frame_times_of", "query_outcomes"]


@dataclass
class QueryOutcomes:
    """One language's captions against one gallery.

    Attributes:
        language: caption language; branch: the query branch it used.
        caption_item: (n,) the caption's own item.
        ranks: (n,) 1-based rank of the own item (pessimistic ties).
        v2t_ranks: per item with a caption, in item order, the rank of its best own caption
            among the other items' captions (`metrics.v2t_ranks`, "caption" protocol).
        top1: (n,) index of the best-scoring item (the lowest index among equal scores).
        peak_frame: (n,) index of the own item's frame with the highest attention weight
            (the frame whose time `mumur search` returns), -1 for items with no valid frame.
        n_items: gallery size.
        scores: (n, n_items) the scores the ranks come from (re-ranking takes its shortlist
            from them).
    """

    language: str
    branch: str
    caption_item: np.ndarray
    ranks: np.ndarray
    v2t_ranks: np.ndarray
    top1: np.ndarray
    peak_frame: np.ndarray
    n_items: int
    scores: np.ndarray | None = None


@torch.no_grad()
def query_outcomes(model, dataset: RetrievalDataset, states: MediaStates, language: str, *,
                   text_batch_size: int = 256, item_block: int = 512) -> QueryOutcomes:
    """Rank, top-1 item and own-item peak frame of every `language` caption of `dataset`.

    Args:
        model: a `RetrievalModel`.
        dataset: the gallery's dataset (captions and item order of `states`).
        states: the gallery (`runner.encode_dataset_media` / `runner.media_states`).
        language: caption language; its branch is `branch_for_language(language, ...)`.
        text_batch_size: captions per text-encoder call and per scoring block.
        item_block: items per scoring block (the attention block is
            text_batch_size x item_block x T floats).

    Raises:
        DatasetError: the dataset has no caption in `language`.
    """
    model.eval()
    texts, caption_item = dataset.captions_for(language)
    if not texts:
        raise DatasetError(f"dataset {dataset.name}/{dataset.split} has no {language!r} captions")
    caption_item = np.asarray(caption_item, dtype=np.int64)
    branch = branch_for_language(language, model.query_branches())
    code = caption_language_code(model, branch, language)  # as `runner.evaluate_states` passes it
    code = None if isinstance(code, Exception) else code
    head, mask = model.head, states.mask
    n_items = len(mask)
    sim = np.empty((len(texts), n_items), dtype=np.float32)
    peak = np.full(len(texts), -1, dtype=np.int64)
    blocks = [(s, min(s + item_block, n_items)) for s in range(0, n_items, item_block)]
    index_states = [head.index_state(states.frames_ctx[a:b], mask[a:b], branch) for a, b in blocks]
    for r in range(0, len(texts), text_batch_size):
        rows = slice(r, min(r + text_batch_size, len(texts)))
        text_emb = model.encode_text(texts[rows], branch=branch, language_code=code)
        own = caption_item[rows]
        for (a, b), state in zip(blocks, index_states):
            scores, attention = head.score_index_state(text_emb, state, mask[a:b], branch)
            sim[rows, a:b] = scores.float().cpu().numpy()
            inside = np.flatnonzero((own >= a) & (own < b))
            if len(inside):
                att = attention[torch.as_tensor(inside), torch.as_tensor(own[inside] - a)]
                valid = mask[torch.as_tensor(own[inside])].to(att.device)
                att = torch.where(valid, att.float(), torch.full_like(att.float(), -torch.inf))
                best = att.argmax(dim=1).cpu().numpy()
                best[~valid.any(dim=1).cpu().numpy()] = -1
                peak[r + inside] = best
    ranks = retrieval_ranks(sim, caption_item)
    return QueryOutcomes(language=language, branch=branch, caption_item=caption_item,
                         ranks=ranks.t2v, v2t_ranks=ranks.v2t, top1=sim.argmax(axis=1),
                         peak_frame=peak, n_items=n_items, scores=sim)


def frame_times_of(timestamps: np.ndarray, items: Sequence[int],
                   frames: Sequence[int]) -> list[float | None]:
    """Seconds of `frames[i]` of item `items[i]` (None where the frame index is -1)."""
    return [None if f < 0 else float(timestamps[i, f]) for i, f in zip(items, frames)]
