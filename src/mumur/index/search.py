"""`mumur.Index`: an index folder opened for search.

A text query goes through the branch its language calls for (`language.choose_branch`, the rule
evaluation uses: English through the English branch, the rest through the multilingual one), and
is ranked by that branch's `SearchEngine` (engine.py: two-stage or exact, calibrated, with best
timestamps) over the branch's stored arrays (`IndexLayout`). The engines share the loaded
per-frame states; each has its branch's stage-1 vectors.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..errors import IndexMismatchError, QueryError
from ..model import branch_for_language
from ..rerank import Reranker, rerank_results
from .ann import ANN_META_KEY, AnnSpec
from .audio import AUDIO_SHORTLIST, AudioScorer, index_audio_tower
from .embedder import Embedder, embed_image_queries
from .engine import SearchEngine, SearchResult, relevance_threshold, robust_null
from .language import QueryLanguage, choose_branch, detect_language
from .loading import load_embedder
from .scoring import BlockScorer
from .store import IndexStore, ItemRecord, StoredArrays

__all__ = [
    "MAX_QUERY_CHARS",
    "MAX_TOP_K",
    "QUERY_PATTERN",
    "Index",
    "SearchEngine",
    "SearchResponse",
    "SearchResult",
    "relevance_threshold",
    "robust_null",
]

MAX_QUERY_CHARS = 500
MAX_TOP_K = 1000

# What a query may hold, stated once: `_validate` applies it and the HTTP API publishes it in
# `/openapi.json`, so the schema accepts exactly the queries search accepts. No C0 control
# character but tab, LF and CR; at least one character that is not blank (whitespace in the sense
# of `str.isspace`, C1 controls, the BOM), so a schema-valid query is never "empty".
_CONTROL = r"\x00-\x08\x0b\x0c\x0e-\x1f"
_BLANK = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
QUERY_PATTERN = rf"^[^{_CONTROL}]*[^{_BLANK}][^{_CONTROL}]*$"
_HAS_CONTROL = re.compile(f"[{_CONTROL}]")
_HAS_VISIBLE = re.compile(f"[^{_BLANK}]")


@dataclass
class SearchResponse:
    """Results best first, plus how they were obtained.

    Attributes:
        results: hits, best first.
        query: the query text (or image path).
        took_ms: wall time of the search (embedding included).
        mode: "two-stage", "exact" or "image".
        threshold: what a result's statistic needs to be `relevant` (z for the uncalibrated
            Bonferroni rule, the calibrated rule's statistic otherwise; None: the model's
            calibration found no reliable threshold, nothing is flagged).
        relevant: whether the best result is relevant (False: "no relevant results").
        candidates: items the query competed against.
        branch: the text branch the query went through ("en" | "ml"; for an image query, the
            branch whose stage-1 vectors it was compared with).
        language: the query's language as given or confidently detected; None when unknown
            (and for image queries).
        language_detected: whether `language` came from detection.
        rerank_k: the shortlist a cross-encoder reordered (0: none).
        rerank_ms: the re-ranking's share of `took_ms` (None without re-ranking).
        flag_rule: how `relevant` was decided: "bonferroni" (uncalibrated z rule, engine.py),
            "calibrated" (the model's `relevance.json`, relevance.py) or "unsupported" (the
            calibration found no threshold meeting its targets: nothing is flagged).
        flag_statistic: the statistic `threshold` applies to ("z" or "score"; None when
            unsupported).
    """

    results: list[SearchResult]
    query: str
    took_ms: float
    mode: str
    threshold: float | None
    relevant: bool = False
    candidates: int = 0
    branch: str = "ml"
    language: str | None = None
    language_detected: bool = False
    rerank_k: int = 0
    rerank_ms: float | None = None
    flag_rule: str = "bonferroni"
    flag_statistic: str | None = "z"

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)

    def cli_records(self) -> list[dict]:
        """The `mumur search --json` list: the contract keys first, then extras."""
        return [
            {"path": r.path, "score": r.score, "media_type": r.media_type,
             "timestamp": r.timestamp, "id": r.id, "calibrated": r.calibrated,
             "relevant": r.relevant, "probability": r.probability,
             **({} if r.rerank_score is None else {"rerank_score": r.rerank_score}),
             **({} if r.audio_score is None else {"audio_score": r.audio_score,
                                                  "sound_match": r.sound_match})}
            for r in self.results
        ]


def _validate(query: str, k: int, media_type: str | None) -> str:
    if not isinstance(query, str) or not _HAS_VISIBLE.search(query):
        raise QueryError(query, "the query is empty")
    if len(query) > MAX_QUERY_CHARS:
        raise QueryError(query, f"the query is longer than {MAX_QUERY_CHARS} characters")
    if _HAS_CONTROL.search(query):
        raise QueryError(query, "the query contains control characters")
    if not 1 <= int(k) <= MAX_TOP_K:
        raise QueryError(query, f"k={k} must be between 1 and {MAX_TOP_K}")
    if media_type not in (None, "image", "video"):
        raise QueryError(query, f"type={media_type!r} must be 'image' or 'video'")
    return query.strip()


class Index:
    """An index folder opened for search (the `mumur.Index` Python API).

    The query model is the one recorded in the index (loaded lazily on the first text search:
    its text towers and head only, the vision tower on the first image query; an index written
    before the vision tower was recorded loads it in full), or `embedder` when given; a model with another identity or layout raises
    `IndexMismatchError`. Arrays are cached in memory and reloaded when the index's generation
    counter changes, so a long-lived reader (the server) sees an index run's commits without
    restarting.

    Args:
        root: index folder.
        embedder: query-side embedder (default: load the index's recorded model).
        model: model name/path to use instead of the recorded one (must match it).
        shortlist: two-stage shortlist size (items by pooled vector).
        frame_shortlist: items added to it by the best per-frame maximum, for heads with
            per-frame vectors (`mumur-dcm`; engine.py); 0: off.
        threads: threads of an exact all-items pass (`BlockScorer`).
        text_backend: CPU inference backend of the recorded model's text towers
            (`mumur.encoders.fast`; "auto" measures them all on first load, worth it for a
            long-lived process, not for one cold query).
        relevance: the `relevant` flag's calibration (relevance.py): None reads
            `relevance.json` from the recorded model's folder when it has one for this model;
            a path reads that file; False uses the uncalibrated Bonferroni rule.
    """

    def __init__(self, root: str | os.PathLike, embedder: Embedder | None = None,
                 model: str | None = None, shortlist: int = 128, frame_shortlist: int = 32,
                 threads: int = 1, text_backend: str = "fp32",
                 relevance: str | os.PathLike | bool | None = None,
                 audio: str | os.PathLike | None = None):
        self.root = root
        self.store = IndexStore(root)
        meta = self.store.meta()
        if "model_identity" not in meta:
            raise IndexMismatchError(f"index {root} has no model yet: run `mumur index` first")
        if embedder is not None:
            self.store.check_model(embedder, meta)
        self._embedder = embedder
        self._vision_loaded = embedder is not None
        self._model = model
        self.shortlist = shortlist
        self.frame_shortlist = frame_shortlist
        self._frames: dict[str, np.ndarray] = {}
        self.threads = threads
        self.text_backend = text_backend
        self.relevance = relevance
        self._rules: dict | None = None
        self._scorers: dict[str, BlockScorer] = {}
        self._arrays: StoredArrays | None = None
        self._engines: dict[str, SearchEngine] = {}
        self._lock = threading.Lock()
        self._audio_tower = index_audio_tower(self.store, audio)
        self._audio: AudioScorer | None = None

    @classmethod
    def open(cls, root: str | os.PathLike, **kwargs) -> Index:
        """Same as `Index(root, **kwargs)`."""
        return cls(root, **kwargs)

    @property
    def embedder(self) -> Embedder:
        """The query embedder (loaded on first use, identity and layout checked); its vision
        tower is loaded only when an image query needed it."""
        if self._embedder is None:
            self._embedder = self._load_embedder(with_vision=False)
        return self._embedder

    def _load_embedder(self, with_vision: bool) -> Embedder:
        meta = self.store.meta()
        record = None if with_vision else json.loads(meta.get("vision_record") or "null")
        embedder = load_embedder(self._model or meta["model_source"],
                                 text_model=meta.get("text_source") or None,
                                 num_frames=int(meta.get("num_frames", 12)),
                                 vision_record=record)
        self.store.check_model(embedder, meta)
        self._vision_loaded = record is None
        if self.text_backend != "fp32":
            from ..encoders.fast import accelerate

            for branch in embedder.layout.branches:
                tower = embedder.model._text_encoder(branch)  # the branch's text tower
                if hasattr(tower, "forward_tokens"):
                    accelerate(tower, self.text_backend)
        return embedder

    def _vision_embedder(self) -> Embedder:
        """The embedder with its vision tower loaded (image queries)."""
        if not self._vision_loaded:
            self._embedder = self._load_embedder(with_vision=True)
        return self.embedder

    @property
    def branches(self) -> tuple[str, ...]:
        """The query branches the index serves (the model's trained branches)."""
        return self.embedder.layout.branches

    def default_branch(self) -> str:
        """The branch of a query of unknown language (multilingual when served)."""
        return branch_for_language(None, self.branches)

    def engine(self, branch: str | None = None) -> SearchEngine:
        """The in-memory search engine of `branch` (default: `default_branch`), reloaded when the
        index changed."""
        branch = branch or self.default_branch()
        layout = self.embedder.layout
        columns = layout.pooled_columns(branch)  # ValueError for a branch the index lacks
        with self._lock:
            generation = self.store.generation()
            if self._arrays is None or self._arrays.generation != generation:
                self._arrays, self._engines = self.store.load_arrays(), {}
                self._scorers = self._compact(self._arrays)
                if self._scorers:  # the compact arrays replace the stored states in memory
                    a = self._arrays
                    self._arrays = replace(a, state=np.zeros(a.state.shape[:2] + (0,),
                                                             a.state.dtype))
            if branch not in self._engines:
                arrays = self._arrays
                if (columns.start, columns.stop) != (0, arrays.pooled.shape[1]):
                    arrays = replace(arrays, pooled=np.ascontiguousarray(arrays.pooled[:, columns]))

                def score(queries, state, mask, branch=branch):
                    return self.embedder.score(queries, state, mask, branch)

                ann = AnnSpec.from_json(self.store.meta().get(ANN_META_KEY))
                self._engines[branch] = SearchEngine(
                    arrays, score, shortlist=self.shortlist, scorer=self._scorers.get(branch),
                    ann=ann, rule=self.relevance_rules().get(branch),
                    frames=self._frames.get(branch), frame_shortlist=self.frame_shortlist)
            return self._engines[branch]

    def relevance_rules(self) -> dict:
        """Per-branch calibrated `RelevanceRule`s ({}: the Bonferroni rule), see `relevance`."""
        if self._rules is None:
            from .relevance import load_rules

            source = self.relevance
            if source is None:
                source = self._model or self.store.meta().get("model_source") or ""
            self._rules = {} if source is False or not str(source) or not os.path.exists(
                source) else load_rules(source, self.embedder.identity)
        return self._rules

    def _compact(self, arrays: StoredArrays) -> dict[str, BlockScorer]:
        """Every branch's `BlockScorer` over the head's compact arrays (empty when the embedder
        has no compact form: its engines score the stored states)."""
        embedder = self.embedder
        if not hasattr(embedder, "compact_state"):
            return {}
        shared: dict = {}
        scorers = {}
        self._frames = {}
        for branch in embedder.layout.branches:
            if self.frame_shortlist > 0:
                compact, frames = embedder.compact_state(arrays.state, branch, shared,
                                                         frames=True)
                if frames is not None:
                    self._frames[branch] = frames
            else:
                compact = embedder.compact_state(arrays.state, branch, shared)

            def prepare(queries, branch=branch):
                return self.embedder.compact_scorer(queries, branch)

            scorers[branch] = BlockScorer(compact, arrays.mask, prepare, threads=self.threads)
        return scorers

    def warm_up(self) -> None:
        """Load now what the first searches would (model, every branch's engine, the language
        detector when it is used), so a server fails at startup and answers fast."""
        for branch in self.branches:
            self.engine(branch)
        if {"en", "ml"} <= set(self.branches):
            detect_language("warm up")

    def query_language(self, query: str, language: str | None = None) -> QueryLanguage:
        """The branch `query` goes through, with the language given or detected."""
        families = getattr(self.embedder, "code_families", dict)()
        return choose_branch(query, language, self.branches, families)

    def search(self, query: str, k: int = 10, media_type: str | None = None,
               exact: bool = False, language: str | None = None,
               rerank: Reranker | None = None, rerank_k: int = 0) -> SearchResponse:
        """Text search in any language.

        Args:
            query: the text (1..500 characters).
            k: results (1..1000).
            media_type: None, "image" or "video".
            exact: exact score on every item instead of two-stage.
            language: the query's language code ("en", "de", ...); None: detect it when the
                index serves both branches (`mumur.index.language`).
            rerank: a single-stream cross-encoder (`mumur.rerank.load_reranker`) that reorders
                the two-stream top `rerank_k`; it never changes which items those are.
            rerank_k: shortlist size for `rerank` (1..1000; ignored without one).

        Returns:
            `SearchResponse` (with the branch and language used).

        Raises:
            QueryError: invalid query, k, type or language code.
        """
        start = time.perf_counter()
        text = _validate(query, k, media_type)
        chosen = self.query_language(text, language)
        if chosen.code is None:
            vector = self.embedder.encode_queries([text], chosen.branch)[0]  # (d,)
        else:
            vector = self.embedder.encode_queries([text], chosen.branch,
                                                  language_code=chosen.code)[0]  # (d,)
        if rerank is None and self._audio_tower is not None:
            results, info = self._search_with_audio(text, vector, k, media_type, exact,
                                                    chosen.branch)
            return self._response(results, info, query, start, chosen)
        if rerank is None:
            results, info = self.engine(chosen.branch).search(vector, k, media_type, exact=exact)
            return self._response(self._with_probability(results, chosen.branch), info, query,
                                  start, chosen)
        if not 1 <= int(rerank_k) <= MAX_TOP_K:
            raise QueryError(query, f"rerank_k={rerank_k} must be between 1 and {MAX_TOP_K}")
        results, info = self.engine(chosen.branch).search(vector, max(k, int(rerank_k)),
                                                          media_type, exact=exact)
        began = time.perf_counter()
        results = rerank_results(rerank, text, results, int(rerank_k),
                                 lambda r: self.store.item(r.id).path)[:k]
        response = self._response(self._with_probability(results, chosen.branch), info, query,
                                  start, chosen)
        response.rerank_k = int(rerank_k)
        response.rerank_ms = round((time.perf_counter() - began) * 1e3, 3)
        response.mode += "+rerank"
        return response

    def _search_with_audio(self, text, vector, k, media_type, exact, branch):
        """Visual shortlist (`AUDIO_SHORTLIST`, or k when larger) re-scored with the audio
        term: s = visual score + w cos(M x, z^g) (`mumur.index.audio`)."""
        with self._lock:
            if self._audio is None:
                model = self.embedder.model
                self._audio = AudioScorer(self._audio_tower, {
                    b: model._text_encoder(b) for b in self.branches})
            self._audio.load(self.store)
        results, info = self.engine(branch).search(vector, max(k, AUDIO_SHORTLIST), media_type,
                                                   exact=exact)
        sound = self._audio.scores(text, branch, [r.id for r in results])
        fused = np.array([r.score for r in results], dtype=np.float32) + sound
        order = np.argsort(-fused, kind="stable")[:k]
        return [replace(results[j], score=round(float(fused[j]), 6),
                        audio_score=round(float(sound[j]), 6), sound_match=bool(rank < j))
                for rank, j in enumerate(order)], info

    def _with_probability(self, results: list[SearchResult], branch: str) -> list[SearchResult]:
        """`results` with the model's own match probability where it reports one (SigLIP)."""
        reporter = getattr(self.embedder, "match_probability", None)
        scores = np.array([r.score for r in results], dtype=np.float32)
        probability = reporter(scores, branch) if reporter and results else None
        if probability is None:
            return results
        return [replace(r, probability=round(float(p), 6))
                for r, p in zip(results, probability)]

    def search_image(self, path: str | os.PathLike, k: int = 10,
                     media_type: str | None = None) -> SearchResponse:
        """Image-as-query: embed the image through the vision side, rank by pooled cosine (in the
        default branch's stage-1 space)."""
        start = time.perf_counter()
        _validate("image", k, media_type)
        branch = self.default_branch()
        vector = embed_image_queries(self._vision_embedder(), [os.fspath(path)],
                                     branch)[0]  # (d,)
        results, info = self.engine(branch).search(vector, k, media_type, by_pooled=True)
        return self._response(results, info, os.fspath(path), start, QueryLanguage(branch, None))

    @staticmethod
    def _response(results, info, query, start, chosen: QueryLanguage) -> SearchResponse:
        return SearchResponse(
            results=results, query=query, took_ms=round((time.perf_counter() - start) * 1e3, 3),
            mode=info["mode"],
            threshold=None if info["threshold"] is None else round(info["threshold"], 6),
            relevant=bool(results and results[0].relevant), candidates=info["candidates"],
            branch=chosen.branch, language=chosen.language,
            language_detected=chosen.detected,
            flag_rule=info.get("flag_rule", "bonferroni"),
            flag_statistic=None if info["threshold"] is None else info.get("flag_statistic", "z"),
        )

    def item(self, item_id: int) -> ItemRecord | None:
        """The indexed file behind an id (None when unknown)."""
        return self.store.item(item_id)

    def info(self) -> dict:
        """`mumur info --json`: items, images, videos, model, schema_version (+ extras)."""
        return self.store.info()

    def close(self) -> None:
        """Close the database connection."""
        self.store.close()
