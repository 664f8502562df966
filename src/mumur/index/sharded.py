"""Several index folders searched as one (`ShardedIndex`): an index built in shards, by
several machines or by `mumur index --engine ray --shard K/N`, served without merging files.

A query is embedded once, ranked by every shard's engine (fan out) and the per-shard top-k lists
are merged by score. Exact mode gives exactly the top-k of one index holding every item: an item
of the global top-k is in its own shard's top-k. Two-stage mode re-scores each shard's own
shortlist, so it re-scores at least the candidates one index would (equal or better recall);
scores are the same exact scores either way.

Item ids: a shard's SQLite ids repeat across shards, so the merged index numbers item `i` of
shard `s` (of S) as `i * S + s` (`item` inverts it; ids stay stable while the shard list does).

Calibration (deviation from a single index): each shard fits the query's null on its own items, so
`calibrated` is the z-score against that shard's null; `relevant` compares it with the threshold
for all candidates of all shards (Bonferroni over the whole collection, engine.py), unless the
model has a calibrated rule (relevance.py), which each shard applies per result.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence

from ..errors import IndexMismatchError
from .embedder import Embedder, embed_image_queries
from .engine import SearchResult, relevance_threshold
from .language import QueryLanguage
from .search import Index, SearchResponse, _validate
from .store import ItemRecord

__all__ = ["ShardedIndex", "merge_top_k", "open_index"]


def open_index(roots: str | os.PathLike | Sequence[str | os.PathLike], **kwargs):
    """`Index` for one folder, `ShardedIndex` for several (same keyword arguments)."""
    if isinstance(roots, (str, os.PathLike)):
        return Index(roots, **kwargs)
    roots = list(roots)
    return Index(roots[0], **kwargs) if len(roots) == 1 else ShardedIndex(roots, **kwargs)


def merge_top_k(per_shard: Sequence[Sequence[SearchResult]], k: int) -> list[SearchResult]:
    """The `k` best of per-shard result lists (each best first), by score; ties keep shard order,
    then each shard's own order. Ids become global (`i * S + s`)."""
    n = len(per_shard)
    merged = [(-r.score, s, pos, dataclasses.replace(r, id=r.id * n + s))
              for s, results in enumerate(per_shard) for pos, r in enumerate(results)]
    merged.sort(key=lambda t: t[:3])
    return [t[3] for t in merged[:k]]


class ShardedIndex:
    """Index folders built with the same model, searched as one (the `Index` search API).

    Args:
        roots: the shard folders (their order fixes the global ids).
        embedder: query-side embedder (default: the model recorded in the shards).
        model: model name/path to use instead of the recorded one (must match it).
        shortlist: two-stage shortlist size per shard.
        text_backend: the text tower's CPU inference backend (`Index`).

    Raises:
        IndexMismatchError: shards built with different models.
    """

    def __init__(self, roots: Sequence[str | os.PathLike], embedder: Embedder | None = None,
                 model: str | None = None, shortlist: int = 128, text_backend: str = "fp32",
                 audio: str | os.PathLike | None = None):
        if not roots:
            raise IndexMismatchError("a sharded index needs at least one index folder")
        self.roots = list(roots)
        self.shards = [Index(r, embedder=embedder, model=model, shortlist=shortlist,
                             text_backend=text_backend, audio=audio) for r in self.roots]
        first = self.shards[0].store.meta()
        for root, shard in zip(self.roots[1:], self.shards[1:]):
            meta = shard.store.meta()
            for key in ("model_identity", "layout", "audio_identity"):
                if meta.get(key) != first.get(key):
                    raise IndexMismatchError(
                        f"index shard {root} was built with {key}={meta.get(key)!r}, shard "
                        f"{self.roots[0]} with {first.get(key)!r}; shards of one index need "
                        "the same model")
        self._shared = False

    @property
    def embedder(self) -> Embedder:
        """The query embedder, loaded once (by the first shard) and shared by all shards."""
        embedder = self.shards[0].embedder
        if not self._shared:
            for shard in self.shards[1:]:
                shard.store.check_model(embedder, shard.store.meta())
                shard._embedder, shard._vision_loaded = embedder, self.shards[0]._vision_loaded
            self._shared = True
        return embedder

    @property
    def branches(self) -> tuple[str, ...]:
        """The query branches the shards serve."""
        return self.embedder.layout.branches

    def default_branch(self) -> str:
        """The branch of a query of unknown language."""
        self.embedder  # noqa: B018 (shares the model before any shard loads its own)
        return self.shards[0].default_branch()

    def warm_up(self) -> None:
        """Load the model once and every shard's engines."""
        self.embedder  # noqa: B018
        for shard in self.shards:
            shard.warm_up()

    def _fan_out(self, vector, branch: str, k: int, media_type, **mode) -> tuple[list[SearchResult], dict]:
        per_shard, infos = [], []
        for shard in self.shards:
            results, info = shard.engine(branch).search(vector, k, media_type, **mode)
            per_shard.append(results)
            infos.append(info)
        merged = merge_top_k(per_shard, k)
        total = sum(info["candidates"] for info in infos)
        exact = mode.get("exact") or mode.get("by_pooled")
        nulls = [info["candidates"] if exact else min(info["candidates"],
                                                       self.shards[0].shortlist)
                 for info in infos if info["candidates"]]
        if infos and infos[0].get("flag_rule", "bonferroni") != "bonferroni":
            # A calibrated rule is per result (relevance.py): the shards' flags stand.
            return merged, {**infos[0], "candidates": total}
        threshold = relevance_threshold(total, min(nulls) if nulls else None)
        merged = [dataclasses.replace(r, relevant=bool(r.calibrated >= threshold))
                  for r in merged]
        return merged, {"mode": infos[0]["mode"], "threshold": threshold, "candidates": total,
                        "flag_rule": "bonferroni"}

    def search(self, query: str, k: int = 10, media_type: str | None = None,
               exact: bool = False, language: str | None = None) -> SearchResponse:
        """Text search over every shard (same arguments and result as `Index.search`)."""
        start = time.perf_counter()
        text = _validate(query, k, media_type)
        embedder = self.embedder
        chosen = self.shards[0].query_language(text, language)
        options = {} if chosen.code is None else {"language_code": chosen.code}
        vector = embedder.encode_queries([text], chosen.branch, **options)[0]  # (d,)
        results, info = self._fan_out(vector, chosen.branch, k, media_type, exact=exact)
        return Index._response(results, info, query, start, chosen)

    def search_image(self, path: str | os.PathLike, k: int = 10,
                     media_type: str | None = None) -> SearchResponse:
        """Image-as-query over every shard (as `Index.search_image`)."""
        start = time.perf_counter()
        _validate("image", k, media_type)
        branch = self.default_branch()
        vector = embed_image_queries(self.shards[0]._vision_embedder(), [os.fspath(path)],
                                     branch)[0]  # (d,)
        self._shared = False  # the vision tower may have been loaded: share it again
        self.embedder  # noqa: B018
        results, info = self._fan_out(vector, branch, k, media_type, by_pooled=True)
        return Index._response(results, info, os.fspath(path), start,
                               QueryLanguage(branch, None))

    def item(self, item_id: int) -> ItemRecord | None:
        """The indexed file behind a global id (None when unknown)."""
        if item_id < 0:
            return None
        local, shard = divmod(int(item_id), len(self.shards))
        record = self.shards[shard].item(local)
        return None if record is None else dataclasses.replace(record, id=int(item_id))

    def info(self) -> dict:
        """`mumur info --json` over all shards: counts summed, plus `shards`."""
        infos = [shard.info() for shard in self.shards]
        out = dict(infos[0])
        for key in ("items", "images", "videos"):
            out[key] = sum(int(i.get(key, 0)) for i in infos)
        out["shards"] = len(self.shards)
        return out

    def close(self) -> None:
        """Close every shard."""
        for shard in self.shards:
            shard.close()
