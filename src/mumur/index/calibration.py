"""Is the `relevant` flag right? Attribute queries with known answers on a synthetic world.

A synthetic world's manifest lists every item's scene objects, so a query naming a colour and a
shape ("a red circle") has a known relevant set: the items with an object of that colour and
shape in any shot. A (colour, shape) pair that no indexed item has is a no-match query: its
correct answer is "no relevant results". `attribute_queries` builds both kinds; `collect` runs
them through an `Index` and keeps each returned result's calibrated z; `flag_figures` scores a
z threshold (the engine's own flags, or any other threshold for recalibration):

- `flagged_precision`: share of flagged results (top k of every query) that are relevant;
- `top_relevant_flagged`: share of queries whose top result is relevant in which it is flagged;
- `no_match_flagged`: share of no-match queries whose top result is flagged.

`benchmarks/relevance_flag.py` runs this on generated worlds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["AttributeQuery", "attribute_queries", "collect", "flag_figures", "sweep"]


@dataclass
class AttributeQuery:
    """A query text and the paths (relative to the manifest) of the items it matches."""

    text: str
    relevant: frozenset[str]
    results: list[tuple[str, float, bool]] = field(default_factory=list)  # (path, z, flag)
    threshold: float = float("nan")

    @property
    def no_match(self) -> bool:
        return not self.relevant


def _objects(item: dict):
    scenes = [shot["scene"] for shot in item["shots"]] if "shots" in item else [item["scene"]]
    for scene in scenes:
        yield from scene["objects"]


def attribute_queries(items: list[dict], shapes, colours) -> list[AttributeQuery]:
    """One "a {colour} {shape}" query per pair, with the items (manifest dicts) it matches.

    Args:
        items: the indexed items' manifest entries.
        shapes, colours: the world's vocabularies.

    Returns:
        Queries in (colour, shape) order; those with an empty `relevant` set are no-match ones.
    """
    queries = []
    for colour in colours:
        for shape in shapes:
            relevant = frozenset(it["path"] for it in items
                                 if any(o["colour"] == colour and o["shape"] == shape
                                        for o in _objects(it)))
            queries.append(AttributeQuery(f"a {colour} {shape}", relevant))
    return queries


def collect(index, queries: list[AttributeQuery], root: str, k: int = 5,
            **search_options) -> list[AttributeQuery]:
    """Search each query (`Index.search`) and keep its top `k` as (path relative to `root`, z,
    flag), with the threshold used."""
    import os

    for query in queries:
        response = index.search(query.text, k=k, **search_options)
        query.threshold = response.threshold
        query.results = [(os.path.relpath(r.path, root), r.calibrated, r.relevant)
                         for r in response.results]
    return queries


def flag_figures(queries: list[AttributeQuery], threshold: float | None = None) -> dict:
    """The three figures of the module docstring for the engine's flags (`threshold` None) or
    for flagging every result with z >= `threshold`.

    Returns:
        {"flagged_precision", "top_relevant_flagged", "no_match_flagged"} (NaN when undefined)
        plus the counts behind them.
    """
    flagged = hits = top_ok = top_ok_flagged = no_match = no_match_flagged = 0
    for query in queries:
        flags = [flag if threshold is None else z >= threshold for _, z, flag in query.results]
        for (path, _, _), flag in zip(query.results, flags):
            flagged += flag
            hits += flag and path in query.relevant
        if not query.results:
            continue
        if query.no_match:
            no_match += 1
            no_match_flagged += flags[0]
        elif query.results[0][0] in query.relevant:
            top_ok += 1
            top_ok_flagged += flags[0]

    def share(a, b):
        return round(a / b, 4) if b else float("nan")

    return {"flagged_precision": share(hits, flagged),
            "top_relevant_flagged": share(top_ok_flagged, top_ok),
            "no_match_flagged": share(no_match_flagged, no_match),
            "flagged": flagged, "top_relevant": top_ok, "no_match_queries": no_match,
            "queries": len(queries)}


def sweep(queries: list[AttributeQuery], thresholds) -> list[dict]:
    """`flag_figures` for each fixed z threshold (a recalibration curve)."""
    return [{"threshold": float(t), **flag_figures(queries, float(t))}
            for t in np.asarray(thresholds, dtype=float)]
