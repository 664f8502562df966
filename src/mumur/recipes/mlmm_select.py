"""Selection on validation captions for MLMM fine-tuning: which checkpoint to keep and which
fusion weight (`rerank.fusion`) each shortlist size K uses.

Both read only the validation shortlists (`mlmm_shortlist.split_shortlists` of the train world's
val split under the two-stream model being re-ranked); the test galleries never take part.

* Checkpoint: the mean reciprocal rank of each caption's own item when its top min(K) is ordered
  by the ITM score alone (0 when the two-stream shortlist missed it): a smooth measure of how
  well the cross-encoder separates the items it will be shown.
* Fusion weight per K: the grid weight with the best validation R@1 (ties: the smaller weight,
  so a cross-encoder that does not help leaves the two-stream order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..rerank.fusion import FUSION_GRID, save_fusion, select_fusion_weight, shortlist_r1
from ..rerank.model import MLMM
from ..rerank.reranker import Reranker, TextTokenizer
from .mlmm_shortlist import Shortlists, cross_scores

__all__ = ["fit_on_validation", "shortlist_mrr", "validation_metric"]


def _scorer(model: MLMM, tokenizer_file: Path) -> Reranker:
    cfg = model.config
    return Reranker(model, TextTokenizer(tokenizer_file, cfg.max_text_len, cfg.pad_id),
                    frame_rows=None, batch_size=256)


def shortlist_mrr(cross: np.ndarray, hits: np.ndarray) -> float:
    """Mean reciprocal rank of the own item within each shortlist ordered by `cross`
    (pessimistic ties; 0 for a caption whose own item is not shortlisted)."""
    cross = np.asarray(cross, dtype=np.float64)
    inside = hits.any(axis=1)
    own = np.where(inside, np.where(hits, cross, -np.inf).max(axis=1), np.inf)
    rank = (cross >= own[:, None]).sum(axis=1)
    return float(np.mean(np.where(inside, 1.0 / np.maximum(rank, 1), 0.0)))


def validation_metric(val: tuple[Shortlists, np.ndarray, np.ndarray], tokenizer_file: Path,
                      k: int):
    """model -> validation MRR of the pure ITM order of each caption's top `k` (`train_mlmm`'s
    ``validate``; the recipes use the smallest K, where R@1 is decided, and it is cheap)."""
    sl, frames, mask = val
    hits = sl.hits[:, :k]

    def metric(model: MLMM) -> float:
        return shortlist_mrr(cross_scores(_scorer(model, tokenizer_file), sl, frames, mask, k),
                             hits)
    return metric


def fit_on_validation(model: MLMM, val: tuple[Shortlists, np.ndarray, np.ndarray],
                      tokenizer_file: Path, ks, folder: Path, *, source: str) -> dict:
    """Choose the fusion weight of each K in `ks` on the validation shortlists and write it to
    `folder`'s ``fusion.json``. Returns what was written (weights, curves, captions)."""
    sl, frames, mask = val
    cross = cross_scores(_scorer(model, tokenizer_file), sl, frames, mask)
    hits = sl.hits
    weights, curves = {}, {}
    for k in sorted(ks):
        k_eff = min(k, cross.shape[1])
        weights[int(k)], curves[str(k)] = select_fusion_weight(
            sl.scores[:, :k_eff], cross[:, :k_eff], hits[:, :k_eff])
    info = {"selected_on": source, "n_captions": len(sl.texts),
            "languages": sorted(set(sl.languages)), "grid": list(FUSION_GRID),
            "val_R1_two_stream": round(shortlist_r1(sl.scores, hits), 3),
            "val_R1_by_weight": {k: {w: round(r, 3) for w, r in c.items()}
                                 for k, c in curves.items()},
            "val_mrr_itm": round(shortlist_mrr(cross, hits), 4)}
    save_fusion(folder, weights, info)
    return {"weights": {str(k): w for k, w in weights.items()}, **info}
