"""The search engine over in-memory arrays (no I/O, one query space): exact and two-stage
ranking, calibrated scores, best timestamps. `mumur.Index` (search.py) runs one per query branch.

Two-stage (default):
  1. stage 1: inner product of the query with every item's pooled vector (numpy matrix-vector
     product, or faiss on float16 copies from 4096 items on), keep the top `shortlist` items;
  2. stage 2: exact score of the shortlist with the model's fast path (for `mumur-dcm`:
     `head.score_index_state`, equal to MuMUR eq. 1-5), sort, keep `k`.
Exact (`exact=True`): stage 2 on every item, in chunks of videos (vectorised over items).
With a `BlockScorer` (scoring.py; what `mumur.Index` builds) both stages score through the head's
in-memory compact arrays: for `mumur-dcm` one pass over the stored keys per query.

Calibration (fitted on the index itself, per query): the query's scores against items it does not
match form its null distribution. We estimate it robustly from the exact scores of a random sample
of `null_sample` items (all items in exact mode) by the median and 1.4826 x MAD (robust to the few
true matches in the sample) and report `calibrated` = z = (score - median) / scale. The best of N
non-matching items reaches z_N = Phi^-1(1 - alpha / N) with probability about alpha (Bonferroni
over the N candidates, Gaussian null; Student's t with n_null - 1 degrees of freedom since the
scale is estimated from n_null scores), so an item is `relevant` when z >= z_N (alpha = 0.05).
When the best result is below it, the answer is "no relevant results". With few items the
threshold is conservative (the t quantile grows as n_null shrinks). This Bonferroni rule is the
uncalibrated default; a `RelevanceRule` fitted on ground truth (relevance.py, `mumur calibrate`)
replaces it for text queries.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from .ann import AnnSpec, build_ann
from .store import MEDIA_TYPES, StoredArrays

__all__ = [
    "SearchEngine",
    "SearchResult",
    "relevance_threshold",
    "robust_null",
]

_SCALE_FLOOR = 1e-4
# Valid frames per media type above which the per-frame candidate source is not built: its scan
# would cost about a quarter of an exact pass per query and its codes as much memory as the keys.
FRAME_SOURCE_MAX = 1_500_000
_FAISS_MIN_ITEMS = 4096  # cosine differences below this are noise; avoids z = inf on flat scores

ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class SearchResult:
    """One hit. `path` is printable (U+FFFD for undecodable bytes); `timestamp` is the best
    matching second for videos (frame with the largest attention weight), None for images;
    `probability` is a sigmoid-trained checkpoint's own match probability of `score` (SigLIP's
    ``sigmoid(score * exp(logit_scale) + logit_bias)``), None for every other model.
    `rerank_score` is the cross-encoder's score when a re-ranker reordered the shortlist this hit
    is in (`score`, `calibrated` and `relevant` stay the two-stream figures). On an audio-aware
    index (`mumur.index.audio`) `audio_score` is the audio term included in `score`, and
    `sound_match` says the sound lifted the hit above where its picture alone ranked it."""

    id: int
    path: str
    score: float
    media_type: str
    timestamp: float | None
    calibrated: float
    relevant: bool
    probability: float | None = None
    rerank_score: float | None = None
    audio_score: float | None = None
    sound_match: bool = False


def relevance_threshold(n_candidates: int, n_null: int | None = None,
                        alpha: float = 0.05) -> float:
    """z a score must reach so that the best of `n_candidates` null scores exceeds it with
    probability about `alpha` (Bonferroni): the 1 - alpha / n quantile of the null.

    With the null's scale estimated from `n_null` samples, the quantile is Student's t with
    `n_null - 1` degrees of freedom (a prediction bound), computed with the Cornish-Fisher
    expansion of Abramowitz & Stegun 26.7.5 (error < 1e-3 for df >= 5); without `n_null`, the
    Gaussian quantile.

    Args:
        n_candidates: items the query competes against (after the type filter).
        n_null: samples the null was fitted on (None: known exactly).
        alpha: false-relevance probability for a query with no matching item.

    Returns:
        The z threshold.
    """
    n = max(int(n_candidates), 1)
    if alpha / n >= 1:
        return -math.inf
    z = NormalDist().inv_cdf(1.0 - alpha / n)
    if n_null is None:
        return float(z)
    nu = max(int(n_null) - 1, 2)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return float(z + g1 / nu + g2 / nu**2 + g3 / nu**3 + g4 / nu**4)


def robust_null(scores: np.ndarray) -> tuple[float, float]:
    """(median, 1.4826 * MAD) of a sample of scores, the scale floored at 1e-4."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.size == 0:
        return 0.0, 1.0
    median = float(np.median(scores))
    scale = 1.4826 * float(np.median(np.abs(scores - median)))
    return median, max(scale, _SCALE_FLOOR)


def _as_float32(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.float32:
        return array
    import torch  # its float16 -> float32 conversion is vectorised; numpy's is not everywhere

    return torch.from_numpy(array).float().numpy()


class SearchEngine:
    """Ranking over in-memory arrays (no I/O): used by `Index` and by the latency benchmark.

    Args:
        arrays: `StoredArrays` (pooled (N, d) float32, state (N, T, Ds), mask, timestamps, ...).
        score_fn: exact scorer `(queries (1, d), state (B, T, Ds) float32, mask (B, T)) ->
            (scores (1, B), attention (1, B, T))`, e.g. `Embedder.score`.
        shortlist: stage-1 candidates re-scored exactly in two-stage mode.
        null_sample: items scored to fit the per-query null distribution.
        chunk_elems: state elements per exact-scoring chunk (bounds temporary memory).
        alpha: false-relevance rate of the calibrated threshold.
        stage1: "numpy" (exact fp32 matrix-vector product), "faiss" (inner product on float16
            copies, `IndexScalarQuantizer` QT_fp16: half the memory traffic, ~4x faster at 1e5
            items; rounding only affects which items enter the shortlist, whose scores are then
            computed exactly) or "auto" (faiss from 4096 items on).
        scorer: a `BlockScorer` over the same rows (then `score_fn` may be None and
            `arrays.state` is not read).
        ann: an `AnnSpec` (ann.py): stage 1 through that FAISS index instead of an exact scan,
            from `ann.min_items` items on.
        rule: a calibrated `RelevanceRule` for text queries (None: the Bonferroni z rule).
        frames: (N, T, d) per-frame stage-1 vectors (`head.frame_vectors`; for `mumur-dcm` the
            score with all attention on one frame) or None: a second candidate source. Two-stage
            search then also re-scores the `frame_shortlist` items with the best per-frame
            maximum (an inner-product scan of the valid frames, float16 codes in faiss, or the
            `ann` spec's index over frames), which finds matches that sit in a few frames of a
            multi-shot video and that the uniform-attention pooled vector dilutes.
        frame_shortlist: items taken from the per-frame source (0: off). Not built above
            `FRAME_SOURCE_MAX` valid frames of a media type (125,000 videos of 12 frames).
    """

    def __init__(self, arrays: StoredArrays, score_fn: ScoreFn | None, shortlist: int = 128,
                 null_sample: int = 128, chunk_elems: int = 1 << 23, alpha: float = 0.05,
                 stage1: str = "auto", scorer=None, ann: AnnSpec | None = None, rule=None,
                 frames: np.ndarray | None = None, frame_shortlist: int = 32):
        if score_fn is None and scorer is None:
            raise ValueError("SearchEngine needs a score_fn or a scorer")
        self.arrays = arrays
        self.score_fn = score_fn
        self.scorer = scorer
        self.shortlist = int(shortlist)
        self.null_sample = int(null_sample)
        self.chunk_elems = int(chunk_elems)
        self.alpha = alpha
        self.rule = rule
        self._rows = {None: np.arange(len(arrays.ids))}
        for code, name in enumerate(MEDIA_TYPES):
            self._rows[name] = np.flatnonzero(arrays.media_types == code)
        self._rng_seed = int(arrays.generation)
        self._faiss = {}
        self.ann = ann if ann is not None and len(arrays.ids) >= ann.min_items else None
        if self.ann is not None or stage1 == "faiss" or (
                stage1 == "auto" and len(arrays.ids) >= _FAISS_MIN_ITEMS):
            self._build_faiss()
        self.frame_shortlist = int(frame_shortlist) if frames is not None else 0
        self._frames = self._build_frames(frames) if self.frame_shortlist > 0 else {}

    def _build_frames(self, frames: np.ndarray) -> dict:
        """Per media type: a faiss inner-product index over the valid frames' vectors and the
        row of each indexed frame."""
        import faiss

        faiss.omp_set_num_threads(1)
        out = {}
        for name in MEDIA_TYPES:
            rows = self._rows[name]
            if not len(rows):
                continue
            valid = self.arrays.mask[rows]  # (n, T)
            frame_rows = np.repeat(rows, valid.sum(axis=1))
            if len(frame_rows) > FRAME_SOURCE_MAX:
                return {}  # too large to scan per query or to hold twice: pooled only
            ann = self.ann if self.ann is not None and len(frame_rows) >= self.ann.min_items \
                else None
            if ann is not None:
                index = build_ann(np.ascontiguousarray(frames[rows][valid], np.float32), ann)
            else:
                index = faiss.IndexScalarQuantizer(frames.shape[-1],
                                                   faiss.ScalarQuantizer.QT_fp16,
                                                   faiss.METRIC_INNER_PRODUCT)
                for start in range(0, len(rows), 8192):  # float32 copies a block at a time
                    block = rows[start:start + 8192]
                    index.add(np.ascontiguousarray(frames[block][valid[start:start + 8192]],
                                                   np.float32))
            out[name] = (index, frame_rows)
        return out

    @property
    def has_frames(self) -> bool:
        """Whether the per-frame candidate source was built (frames given, shortlist > 0)."""
        return bool(self._frames)

    def _frame_candidates(self, query: np.ndarray, media_type: str | None, r: int) -> np.ndarray:
        """Rows of the `r` best per-frame maxima (within `media_type`); the frame search asks
        for 4 r frames, so an item whose many frames rank high does not crowd out the rest."""
        best: dict[int, float] = {}
        for name in [media_type] if media_type else MEDIA_TYPES:
            if name in self._frames:
                index, frame_rows = self._frames[name]
                s, i = index.search(query[None], min(4 * r, index.ntotal))
                for score, j in zip(s[0], i[0]):
                    if j >= 0:
                        row = int(frame_rows[j])
                        best[row] = max(best.get(row, -np.inf), float(score))
        ranked = sorted(best, key=lambda row: -best[row])[:r]
        return np.asarray(ranked, dtype=np.int64)

    def _build_faiss(self) -> None:
        import faiss

        faiss.omp_set_num_threads(1)  # one query at a time: threads only add sync latency
        for name in MEDIA_TYPES:
            rows = self._rows[name]
            if not len(rows):
                continue
            vectors = np.ascontiguousarray(self.arrays.pooled[rows])
            if self.ann is not None:
                index = build_ann(vectors, self.ann)
            else:
                index = faiss.IndexScalarQuantizer(vectors.shape[1],
                                                   faiss.ScalarQuantizer.QT_fp16,
                                                   faiss.METRIC_INNER_PRODUCT)
                index.add(vectors)
            self._faiss[name] = (index, rows)

    def stage1_bytes(self) -> int:
        """Extra memory of the stage-1 structures: the float16 codes of the exact stage 1, or
        the serialised size of the ANN indexes."""
        if self.ann is None:
            return sum(index.sa_code_size() * index.ntotal for index, _ in self._faiss.values())
        import faiss

        return sum(int(faiss.serialize_index(index).nbytes) for index, _ in self._faiss.values())

    def _stage1(self, query: np.ndarray, media_type: str | None, r: int) -> np.ndarray:
        """Rows of the `r` best pooled inner products (within `media_type`)."""
        if not self._faiss:
            rows = self._rows[media_type]
            coarse = self.arrays.pooled @ query  # (N,)
            if media_type is not None:
                coarse = coarse[rows]
            top = np.argpartition(-coarse, r - 1)[:r] if r < len(rows) else np.arange(len(rows))
            return rows[top]
        scores, found = [], []
        for name in [media_type] if media_type else MEDIA_TYPES:
            if name in self._faiss:
                index, rows = self._faiss[name]
                s, i = index.search(query[None], min(r, index.ntotal))  # (1, r)
                keep = i[0] >= 0  # an ANN may return fewer than r (-1 padded)
                scores.append(s[0][keep])
                found.append(rows[i[0][keep]])
        scores, found = np.concatenate(scores), np.concatenate(found)
        return found[np.argsort(-scores, kind="stable")[:r]]

    def __len__(self) -> int:
        return len(self.arrays.ids)

    def _score_rows(self, query: np.ndarray, rows: np.ndarray):
        """Exact scores and attention of `rows`, chunked over items: (B,), (B, T)."""
        if self.scorer is not None:
            scores, attention = self.scorer(query[None], rows)  # (1, B), (1, B, T)
            return scores[0], attention[0]
        a = self.arrays
        t, ds = a.state.shape[1], a.state.shape[2]
        chunk = max(1, self.chunk_elems // max(1, t * ds))
        scores = np.empty(len(rows), np.float32)
        attention = np.empty((len(rows), t), np.float32)
        for start in range(0, len(rows), chunk):
            sel = rows[start:start + chunk]
            s, w = self.score_fn(query[None], _as_float32(a.state[sel]),
                                 a.mask[sel])  # (1, b), (1, b, T)
            scores[start:start + len(sel)] = s[0]
            attention[start:start + len(sel)] = w[0]
        return scores, attention

    def _null_rows(self, rows: np.ndarray) -> np.ndarray:
        """A fixed random sample of `rows` (seeded by the index generation) for the null fit."""
        if len(rows) <= self.null_sample:
            return rows
        rng = np.random.default_rng(self._rng_seed)
        return np.sort(rng.choice(rows, self.null_sample, replace=False))

    def search(self, query: np.ndarray, k: int = 10, media_type: str | None = None,
               exact: bool = False, by_pooled: bool = False) -> tuple[list[SearchResult], dict]:
        """Rank items for one query vector.

        Args:
            query: (d,) float32 query vector (L2-normalised).
            k: results to return.
            media_type: None, "image" or "video".
            exact: score every item with `score_fn` instead of the two-stage path.
            by_pooled: rank by pooled cosine only (image queries); `score_fn` is used only for
                the best timestamp of the returned videos.

        Returns:
            (results best first, {"mode", "threshold", "candidates", "flag_rule"}); `threshold`
            is on the rule's statistic (None when an unsupported calibration flags nothing),
            `flag_rule` is "bonferroni", "calibrated" or "unsupported".
        """
        a = self.arrays
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        rows = self._rows[media_type]
        n = len(rows)
        n_null = n if (exact or by_pooled or n <= self.null_sample) else self.null_sample
        threshold = relevance_threshold(n, n_null, self.alpha)
        rule = None if by_pooled else self.rule
        info = {"threshold": threshold if rule is None else rule.threshold, "candidates": n,
                "flag_rule": "bonferroni" if rule is None else (
                    "calibrated" if rule.supported else "unsupported"),
                "flag_statistic": "z" if rule is None else rule.statistic}
        if n == 0:
            info["mode"] = "image" if by_pooled else ("exact" if exact else "two-stage")
            return [], info
        k = min(int(k), n)
        if by_pooled:
            info["mode"] = "image"
            coarse = a.pooled[rows] @ query if media_type else a.pooled @ query  # (n,)
            top = np.argpartition(-coarse, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.argsort(-coarse[top], kind="stable")]
            sel, scores = rows[top], coarse[top]
            _, attention = self._score_rows(query, sel)
            median, scale = robust_null(coarse)  # all pooled scores are already computed
        elif exact:
            info["mode"] = "exact"
            if self.scorer is not None and n == len(a.ids):  # one pass over every item
                all_scores, all_attention = self.scorer(query[None], None)
                all_scores, all_attention = all_scores[0], all_attention[0]
            else:
                all_scores, all_attention = self._score_rows(query, rows)
            top = np.argpartition(-all_scores, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.argsort(-all_scores[top], kind="stable")]
            sel, scores, attention = rows[top], all_scores[top], all_attention[top]
            median, scale = robust_null(all_scores)
        else:
            info["mode"] = "two-stage"
            cand = self._stage1(query, media_type, min(n, max(self.shortlist, k)))
            if self.frame_shortlist and len(cand) < n:  # second source: per-frame maxima
                extra = self._frame_candidates(query, media_type, self.frame_shortlist)
                cand = np.concatenate([cand, extra[~np.isin(extra, cand)]])
            null_rows = self._null_rows(rows)
            # Stage 2 and the null sample in one scoring call (one pass over their states).
            both = np.concatenate([cand, null_rows])
            s2, w2 = self._score_rows(query, both)
            median, scale = robust_null(s2[len(cand):])
            s2, w2 = s2[:len(cand)], w2[:len(cand)]
            order = np.argsort(-s2, kind="stable")[:k]
            sel, scores, attention = cand[order], s2[order], w2[order]
        zs = (np.asarray(scores, np.float64) - median) / scale
        flags = zs >= threshold if rule is None else rule.flags(np.asarray(scores), zs)
        results = []
        for row, score, att, z, flag in zip(sel, scores, attention, zs, flags):
            video = a.media_types[row] == 1
            timestamp = None
            if video:
                frame = int(np.argmax(np.where(a.mask[row], att, -np.inf)))
                timestamp = round(float(a.timestamps[row, frame]), 3)
            results.append(SearchResult(
                id=int(a.ids[row]), path=a.paths[row], score=round(float(score), 6),
                media_type=MEDIA_TYPES[int(a.media_types[row])], timestamp=timestamp,
                calibrated=round(float(z), 3), relevant=bool(flag),
            ))
        return results, info
