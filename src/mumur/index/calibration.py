"""Is the `relevant` flag right? Attribute queries with known answers on a synthetic world.

A synthetic world's manifest lists every item's scenes (a place and objects), so a query naming a
colour, a shape and a place ("A red circle at night.", written by the world's own caption grammar
in any of its 15 languages) has a known relevant set: the items with an object of that colour and
shape in a scene (shot) at that place. A combination no indexed item has is a no-match query: its
correct answer is "no relevant results". A world of a few hundred items holds nearly every
combination, so `holdout_items` withholds the items showing a seeded share of the (colour, shape)
pairs from the index: their queries become no-match ones whose near misses (the same colour, the
same shape, other places) are indexed.

`attribute_queries` builds the queries; `collect` runs them through an `Index` and keeps each
returned result's score, calibrated z and flag; `flag_figures` scores the engine's flags or any
threshold on either statistic:

- `flagged_precision`: share of flagged results (top k of every query) that are relevant;
- `top_relevant_flagged`: share of queries whose top result is relevant in which it is flagged;
- `no_match_flagged`: share of no-match queries whose top result is flagged.

`mumur.index.relevance` fits the flag's rule on these figures (`mumur calibrate`);
`benchmarks/relevance_flag.py` measures it on separate worlds.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

__all__ = ["AttributeQuery", "Result", "attribute_queries", "collect", "flag_figures",
           "holdout_items", "sweep"]


@dataclass(frozen=True)
class Result:
    """One returned result: its path (relative to the world folder), exact score, calibrated z
    and the engine's flag."""

    path: str
    score: float
    z: float
    flag: bool

    def statistic(self, name: str) -> float:
        return self.score if name == "score" else self.z


@dataclass
class AttributeQuery:
    """A query text, its language and the paths (relative to the manifest) of the items it
    matches; `collect` fills `results`, `branch` and `threshold`."""

    text: str
    relevant: frozenset[str]
    results: list[Result] = field(default_factory=list)
    language: str = "en"
    branch: str | None = None
    threshold: float | None = float("nan")

    @property
    def no_match(self) -> bool:
        return not self.relevant


def _scenes(item: dict):
    return [shot["scene"] for shot in item["shots"]] if "shots" in item else [item["scene"]]


def _pairs(item: dict) -> set[tuple[str, str]]:
    return {(o["colour"], o["shape"]) for scene in _scenes(item) for o in scene["objects"]}


def holdout_items(items: list[dict], fraction: float = 0.2,
                  seed: int = 0) -> tuple[list[dict], list[tuple[str, str]]]:
    """The items to index when a seeded `fraction` of the world's (colour, shape) pairs is
    withheld: every item showing a withheld pair (in any shot) is left out.

    Returns:
        `(kept items, withheld (colour, shape) pairs)`.
    """
    pairs = sorted(set().union(*(_pairs(it) for it in items))) if items else []
    rng = np.random.default_rng(seed)
    n = int(round(fraction * len(pairs)))
    withheld = {pairs[i] for i in rng.choice(len(pairs), n, replace=False)} if n else set()
    return [it for it in items if not _pairs(it) & withheld], sorted(withheld)


def attribute_queries(items: list[dict], languages=("en",), colours=None, shapes=None,
                      places=None) -> list[AttributeQuery]:
    """One query per (language, colour, shape, place), in the world's caption grammar (the
    first still-image template, without the size: "A red circle at night."), with the items
    (manifest dicts) it matches.

    Args:
        items: the indexed items' manifest entries.
        languages: caption languages (`mumur.data.synthetic.captions.LANGUAGES`).
        colours, shapes, places: the vocabularies (default: the world's).

    Returns:
        Queries in (language, colour, shape, place) order; those with an empty `relevant` set
        are no-match ones.
    """
    from ..data.synthetic.languages import get_language
    from ..data.synthetic.world import COLOURS, PLACES, SHAPES

    colours, shapes, places = colours or COLOURS, shapes or SHAPES, places or PLACES
    matches: dict[tuple[str, str, str], set[str]] = {}
    for item in items:
        for scene in _scenes(item):
            for o in scene["objects"]:
                matches.setdefault((o["colour"], o["shape"], scene["place"]), set()).add(
                    item["path"])
    queries = []
    for language in languages:
        grammar = get_language(language)
        for colour, shape, place in itertools.product(colours, shapes, places):
            obj = SimpleNamespace(shape=shape, colour=colour, size="small", motion=None,
                                  sound=None)
            text = grammar.image_captions(obj, place, with_size=False)[0]
            queries.append(AttributeQuery(text, frozenset(matches.get((colour, shape, place),
                                                                      ())), language=language))
    return queries


def collect(index, queries: list[AttributeQuery], root: str, k: int = 5,
            **search_options) -> list[AttributeQuery]:
    """Search each query (`Index.search`, in its language) and keep its top `k` as `Result`s
    (paths relative to `root`), with the branch and threshold used."""
    for query in queries:
        response = index.search(query.text, k=k, language=query.language, **search_options)
        query.threshold = response.threshold
        query.branch = response.branch
        query.results = [Result(os.path.relpath(r.path, root), float(r.score),
                                float(r.calibrated), bool(r.relevant))
                         for r in response.results]
    return queries


def flag_figures(queries: list[AttributeQuery], threshold: float | None = None,
                 statistic: str = "z") -> dict:
    """The three figures of the module docstring for the engine's flags (`threshold` None) or
    for flagging every result whose `statistic` ("z" or "score") reaches `threshold`.

    Returns:
        {"flagged_precision", "top_relevant_flagged", "no_match_flagged"} (NaN when undefined)
        plus the counts behind them.
    """
    flagged = hits = top_ok = top_ok_flagged = no_match = no_match_flagged = 0
    for query in queries:
        flags = [r.flag if threshold is None else r.statistic(statistic) >= threshold
                 for r in query.results]
        for r, flag in zip(query.results, flags):
            flagged += flag
            hits += flag and r.path in query.relevant
        if not query.results:
            continue
        if query.no_match:
            no_match += 1
            no_match_flagged += flags[0]
        elif query.results[0].path in query.relevant:
            top_ok += 1
            top_ok_flagged += flags[0]

    def share(a, b):
        return round(a / b, 4) if b else float("nan")

    return {"flagged_precision": share(hits, flagged),
            "top_relevant_flagged": share(top_ok_flagged, top_ok),
            "no_match_flagged": share(no_match_flagged, no_match),
            "flagged": int(flagged), "flagged_relevant": int(hits), "top_relevant": top_ok,
            "top_relevant_flag_set": top_ok_flagged, "no_match_queries": no_match,
            "no_match_flag_set": int(no_match_flagged), "queries": len(queries)}


def sweep(queries: list[AttributeQuery], thresholds, statistic: str = "z") -> list[dict]:
    """`flag_figures` for each fixed threshold on `statistic` (a recalibration curve)."""
    return [{"threshold": float(t), **flag_figures(queries, float(t), statistic)}
            for t in np.asarray(thresholds, dtype=float)]
