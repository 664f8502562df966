"""Re-ranking the two-stream shortlist with a single-stream cross-encoder (MLMM, model.py).

The two-stream search (index/engine.py) ranks every item; the re-ranker sees only its top K, scores
each (query, item) pair with MLMM's ITM head (eq. 1) and reorders those K by that score fused
with the two-stream score (fusion.py; the weight is chosen on validation captions). It never
adds or drops a candidate: the first K results are a permutation of the two-stream top K and
everything after position K keeps its two-stream order (`rerank_order`, tests/test_mlmm_rerank.py).

Visual tokens are the frozen vision tower's frame features from a feature store
(`mumur.data.features.cached_frame_rows`): an item seen before is read from the store (and kept in
memory), a new one is decoded once and stored.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.features import cached_frame_rows
from ..errors import ConfigError
from .fusion import fuse_scores, load_fusion, weight_for
from .model import MLMM, TOKENIZER_FILE, load_mlmm

__all__ = ["Reranker", "TextTokenizer", "load_reranker", "rerank_order", "rerank_results",
           "reranked_ranks"]


class TextTokenizer:
    """The multilingual sub-word tokenizer (a `tokenizers` JSON file) as padded id tensors."""

    def __init__(self, path: str | os.PathLike, max_len: int, pad_id: int):
        from tokenizers import Tokenizer

        self.path = Path(path)
        self._tok = Tokenizer.from_file(str(path))
        self.max_len, self.pad_id = int(max_len), int(pad_id)

    def __call__(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids (N, L), valid (N, L) bool); texts longer than `max_len` keep their head and the
        closing </s>."""
        rows = []
        for enc in self._tok.encode_batch(list(texts)):
            ids = enc.ids
            rows.append(ids if len(ids) <= self.max_len else ids[:self.max_len - 1] + ids[-1:])
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        valid = torch.arange(length).unsqueeze(0) < torch.tensor([len(r) for r in rows])[:, None]
        return ids, valid


def rerank_order(scores: np.ndarray) -> np.ndarray:
    """Shortlist positions best first by cross-encoder score (ties keep the two-stream order)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def reranked_ranks(base_ranks: np.ndarray, shortlist: np.ndarray, cross_scores: np.ndarray,
                   own: np.ndarray, k: int) -> np.ndarray:
    """t2v ranks after re-ranking each query's top `k` (evaluation of the re-ranked search).

    Args:
        base_ranks: (n,) two-stream 1-based ranks of each query's own item (pessimistic ties).
        shortlist: (n, >=k) item indices best first by the two-stream score.
        cross_scores: (n, >=k) cross-encoder scores of those items.
        own: (n,) each query's own item.
        k: shortlist size.

    Returns:
        (n,) ranks: inside the shortlist, 1 + the number of other shortlisted items scoring at
        least the own item's cross score (pessimistic on ties, as `eval.metrics`); outside it,
        the two-stream rank (never better than k + 1: the shortlist is the first k places).
    """
    short, cross = shortlist[:, :k], np.asarray(cross_scores, dtype=np.float64)[:, :k]
    hit = short == own[:, None]  # (n, k)
    inside = hit.any(axis=1)
    own_score = np.where(inside, (cross * hit).sum(axis=1), np.inf)
    ranks = np.where(inside, (cross >= own_score[:, None]).sum(axis=1),
                     np.maximum(base_ranks, k + 1))
    return ranks.astype(np.int64)


def rerank_results(reranker: Reranker, query: str, results: list, k: int, path_of) -> list:
    """Reorder the first `k` of `results` (two-stream order, best first) by the cross-encoder's
    score fused with the two-stream score (`Reranker.weight`, fusion.py; pure ITM at weight 1).

    Args:
        reranker: the cross-encoder.
        query: the query text.
        results: hits with ``replace``-able dataclass fields incl. ``rerank_score``.
        k: shortlist size; hits after position k keep their place.
        path_of: hit -> the media file to read its frames from.

    Returns:
        The shortlist best first by fused score (each with its ``rerank_score``, the ITM logit),
        then the rest.
    """
    from dataclasses import replace

    shortlist = results[:k]
    scores = reranker.score(query, [path_of(r) for r in shortlist])
    fused = fuse_scores(np.array([r.score for r in shortlist], dtype=np.float64), scores,
                        reranker.weight(len(shortlist)))
    order = rerank_order(fused)
    return ([replace(shortlist[i], rerank_score=round(float(scores[i]), 6)) for i in order]
            + list(results[k:]))


class Reranker:
    """An MLMM cross-encoder scoring (query, item) pairs for the search's shortlist.

    Args:
        model: the fine-tuned MLMM (eval mode).
        tokenizer: its `TextTokenizer`.
        frame_rows: paths -> (features (K, T, Dv), mask (K, T)) of the model's vision tower.
        batch_size: pairs per forward pass.
        name: what `mumur search` reports as the re-ranker.
        fusion: shortlist size -> ITM weight chosen on validation (fusion.py); empty: pure ITM.
    """

    def __init__(self, model: MLMM, tokenizer: TextTokenizer, frame_rows, batch_size: int = 128,
                 name: str = "mlmm", fusion: dict[int, float] | None = None):
        self.model, self.tokenizer, self.batch_size, self.name = model.eval(), tokenizer, \
            int(batch_size), name
        self.fusion = dict(fusion or {})
        self._frame_rows = frame_rows
        self._memory: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def weight(self, k: int) -> float:
        """The ITM share of the fused score for a shortlist of `k` (1.0: pure ITM)."""
        return weight_for(self.fusion, k) if self.fusion else 1.0

    def frames(self, paths: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame features and masks of `paths` (store reads only for items not in memory)."""
        missing = [p for p in dict.fromkeys(map(str, paths)) if p not in self._memory]
        if missing:
            feats, mask = self._frame_rows(missing)
            self._memory.update({p: (feats[i], mask[i]) for i, p in enumerate(missing)})
        rows = [self._memory[str(p)] for p in paths]
        return (torch.from_numpy(np.stack([r[0] for r in rows])),
                torch.from_numpy(np.stack([r[1] for r in rows])))

    @torch.no_grad()
    def score_pairs(self, texts: Sequence[str], frames: torch.Tensor,
                    mask: torch.Tensor) -> np.ndarray:
        """ITM logits of (texts[i], frames[i]) pairs: (P,) float32."""
        out = []
        for s in range(0, len(texts), self.batch_size):
            ids, valid = self.tokenizer(texts[s:s + self.batch_size])
            out.append(self.model.itm_logits(ids, valid, frames[s:s + self.batch_size],
                                             mask[s:s + self.batch_size]).float())
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)

    def score(self, query: str, paths: Sequence[str]) -> np.ndarray:
        """Cross-encoder scores of `query` against each of `paths`: (K,)."""
        if not paths:
            return np.zeros(0, np.float32)
        frames, mask = self.frames(paths)
        return self.score_pairs([query] * len(paths), frames, mask)


def load_reranker(path: str | os.PathLike, feature_root: str | os.PathLike, *,
                  batch_size: int = 128, workers: int = 0, score: str = "fused") -> Reranker:
    """A `Reranker` from an MLMM folder; frame features live in `feature_root`'s stores.

    Args:
        path: an MLMM model folder (`MLMM.save`).
        feature_root: stores root (one folder per vision identity and frame count).
        batch_size: pairs per forward pass; workers: decode workers for items not stored yet.
        score: ``fused`` (the folder's validation-chosen fusion weights, fusion.py; pure ITM
            when it has none) or ``itm`` (the ITM logit alone).
    """
    if score not in ("fused", "itm"):
        raise ConfigError(f"score={score!r}: 'fused' or 'itm'")
    from ..encoders import load_encoder

    model = load_mlmm(path)
    cfg = model.config
    vision = load_encoder(cfg.vision, modality="vision").eval()
    if cfg.vision_identity and cfg.vision_identity != vision.identity:
        raise ConfigError(f"MLMM {path} was trained on {cfg.vision_identity} features, but "
                          f"{cfg.vision!r} is now {vision.identity}: fine-tune it again")
    image_size = int(getattr(vision, "image_size", 224))

    @torch.no_grad()
    def encode_frames(pixels: torch.Tensor) -> torch.Tensor:
        return vision(pixels).float()

    def frame_rows(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rows = cached_frame_rows(paths, encode_frames, vision.identity, feature_root,
                                 cfg.num_frames, image_size, num_workers=workers, progress=False)
        return rows["features"], rows["mask"]

    tokenizer = TextTokenizer(Path(path) / TOKENIZER_FILE, cfg.max_text_len, cfg.pad_id)
    return Reranker(model, tokenizer, frame_rows, batch_size=batch_size, name=str(path),
                    fusion=load_fusion(path) if score == "fused" else None)
