"""The two-stream model's shortlists, used three ways by the MLMM recipes: as fine-tuning hard
negatives (the items the two-stream search confuses with a caption's own item, the distribution
the re-ranker will face), as the validation set that selects the fine-tuning checkpoint and the
fusion weight (`rerank.fusion`), and as the test shortlists the study re-ranks (mlmm_report.py).

Every shortlist comes from `eval.outcomes.query_outcomes`, the same head calls as evaluation and
search, so the items a caption is re-ranked over are those the index would return.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

__all__ = ["Shortlists", "cross_scores", "hard_negatives", "query_subset", "shortlists",
           "split_shortlists"]


def query_subset(n: int, limit: int, seed: int = 0) -> np.ndarray:
    """A fixed subset of `limit` caption positions out of `n` (all when limit is 0 or >= n),
    in order; the same for every training seed, so seeds stay paired."""
    if not limit or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


@dataclass
class Shortlists:
    """Captions of one split with their two-stream top K.

    Attributes:
        texts: (n) captions; languages: (n) their languages.
        own: (n,) each caption's own item.
        items: (n, K) item indices, best first by the two-stream score.
        scores: (n, K) those two-stream scores.
        base_ranks: (n,) the own item's two-stream rank in the whole gallery (1-based).
        n_items: gallery size.
    """

    texts: list[str]
    languages: list[str]
    own: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    base_ranks: np.ndarray
    n_items: int

    @property
    def hits(self) -> np.ndarray:
        """(n, K) bool: the shortlist position holds the caption's own item."""
        return self.items == self.own[:, None]


def shortlists(model, dataset, states, k: int, *, per_language: int = 0,
               subset_seed: int = 0) -> Shortlists:
    """Every language's captions (or a fixed `per_language` subset of each) with their top `k`
    under `model` (`QueryOutcomes.scores`; stable order on ties)."""
    from ..eval.outcomes import query_outcomes

    texts, langs, own, items, scores, ranks = [], [], [], [], [], []
    n_items = 0
    for lang in dataset.languages:
        rows = [c for c in dataset.captions if c[1] == lang]  # `captions_for` order
        keep = query_subset(len(rows), per_language, subset_seed)
        # only the kept captions are encoded and scored (a view of the dataset)
        out = query_outcomes(model, replace(dataset, captions=[rows[i] for i in keep]), states,
                             lang)
        top = np.argsort(-out.scores, axis=1, kind="stable")[:, :min(k, out.n_items)]
        texts += [rows[i][2] for i in keep]
        langs += [lang] * len(keep)
        own.append(out.caption_item)
        items.append(top)
        scores.append(np.take_along_axis(out.scores, top, axis=1))
        ranks.append(out.ranks)
        n_items = out.n_items
    return Shortlists(texts=texts, languages=langs, own=np.concatenate(own).astype(np.int64),
                      items=np.concatenate(items).astype(np.int64),
                      scores=np.concatenate(scores).astype(np.float64),
                      base_ranks=np.concatenate(ranks).astype(np.int64), n_items=n_items)


def split_shortlists(base_model: str | Path, world: Path, split: str, cache_root: Path, k: int,
                     *, per_language: int = 0, workers: int = 1):
    """(`Shortlists`, frame features, frame mask) of a world split under a trained two-stream
    model folder; frames come from the feature store under `cache_root`."""
    from ..eval.runner import media_states
    from ..model import load_model
    from .mlmm import world_rows

    model = load_model(base_model).eval()
    ds, feats, mask = world_rows(world, split, model.vision, cache_root, model.config.num_frames,
                                 workers)
    states = media_states(model, feats, mask)
    return shortlists(model, ds, states, k, per_language=per_language), feats, mask


def hard_negatives(sl: Shortlists, count: int) -> torch.Tensor:
    """(n, count) each caption's top-ranked items other than its own: the two-stream search's
    confusions, the fine-tuning negatives.

    Raises:
        ValueError: a shortlist too short to leave `count` other items.
    """
    if sl.items.shape[1] < count + 1:
        raise ValueError(f"shortlists of {sl.items.shape[1]} cannot give {count} negatives")
    others = np.where(sl.hits, -1, sl.items)[:, :count + 1]
    order = np.argsort(others < 0, axis=1, kind="stable")  # the own item (if there) to the end
    return torch.from_numpy(np.take_along_axis(others, order, axis=1)[:, :count].copy())


def cross_scores(reranker, sl: Shortlists, frames, frame_mask, k: int | None = None
                 ) -> np.ndarray:
    """(n, k) the cross-encoder's ITM scores of each caption's first `k` shortlisted items
    (`Reranker.score_pairs`)."""
    k = sl.items.shape[1] if k is None else min(k, sl.items.shape[1])
    flat = torch.from_numpy(sl.items[:, :k].reshape(-1))
    frames, frame_mask = torch.as_tensor(frames), torch.as_tensor(frame_mask)
    out = reranker.score_pairs([t for t in sl.texts for _ in range(k)], frames[flat],
                               frame_mask[flat])
    return out.reshape(len(sl.texts), k)
