"""The `relevant` flag's rule, calibrated on ground truth (`mumur calibrate`).

Without calibration a result is flagged when its z against the query's null reaches the
Bonferroni level (engine.py): a statement about chance, not about relevance, and on a model that
ranks near misses (the right shape in the wrong colour) above true matches it flags wrong
results. A calibration fits, per query branch, a threshold on one statistic (the exact `score`,
or its `z`) from attribute queries with known answers on a calibration world
(`calibration.attribute_queries`, with withheld combinations as no-match queries):

- among thresholds whose flagged results are relevant at least `precision` + `margin` of the time
  and that flag at most `no_match` - `margin` of the no-match queries (and that flag at least
  `min_flagged` results, so the precision is not read off a handful), the one that flags the top
  result of the most queries whose top result is relevant (ties: the higher threshold);
- when none qualifies, the branch is `supported: false`: nothing is flagged (the model cannot tell
  relevant results apart well enough; the CLI says so instead of claiming relevance).

The file lives beside the model (`MODEL_DIR/relevance.json`, keyed by the model identity, so
every index built with that model uses it); `mumur.Index` reads it on load.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import IndexMismatchError
from .calibration import AttributeQuery, flag_figures

__all__ = ["RELEVANCE_FILE", "RelevanceRule", "calibrate", "fit_rule", "load_rules", "save_rules",
           "world_items", "world_queries"]

RELEVANCE_FILE = "relevance.json"
_FORMAT = "mumur-relevance"
STATISTICS = ("score", "z")


@dataclass(frozen=True)
class RelevanceRule:
    """Flag a result when its `statistic` ("score" or "z") reaches `threshold`; an unsupported
    rule (`threshold` None) flags nothing."""

    statistic: str | None
    threshold: float | None

    @property
    def supported(self) -> bool:
        return self.threshold is not None

    def flags(self, scores: np.ndarray, z: np.ndarray) -> np.ndarray:
        if not self.supported:
            return np.zeros(len(scores), bool)
        return np.asarray(scores if self.statistic == "score" else z) >= self.threshold


def _curves(queries: list[AttributeQuery], statistic: str) -> dict[str, np.ndarray]:
    """`flag_figures` at every distinct value of `statistic` as a threshold, vectorised:
    suffix sums over the results sorted by the statistic."""
    values, relevant, top_hit, top_none = [], [], [], []
    for q in queries:
        for rank, r in enumerate(q.results):
            values.append(r.statistic(statistic))
            relevant.append(r.path in q.relevant)
            top_hit.append(rank == 0 and not q.no_match and r.path in q.relevant)
            top_none.append(rank == 0 and q.no_match)
    values = np.asarray(values, np.float64)
    keep = np.isfinite(values)
    order = np.argsort(values[keep], kind="stable")
    v = values[keep][order]

    def suffix(flags):
        f = np.asarray(flags, np.int64)[keep][order]
        return np.concatenate([np.cumsum(f[::-1])[::-1], [0]])

    thresholds = np.unique(v)
    at = np.searchsorted(v, thresholds, side="left")
    n_top_hit, n_none = int(np.sum(top_hit)), int(np.sum(top_none))
    flagged = suffix(np.ones(len(values)))[at]
    # Halfway down to the next lower value: the same results flagged, with a margin both ways.
    below = np.concatenate([[thresholds[0] - 1e-6], thresholds[:-1]]) if len(thresholds) else \
        thresholds
    return {"threshold": (thresholds + below) / 2, "flagged": flagged,
            "precision": suffix(relevant)[at] / np.maximum(flagged, 1),
            "recall": suffix(top_hit)[at] / max(n_top_hit, 1),
            "no_match": suffix(top_none)[at] / max(n_none, 1) if n_none else
            np.full(len(thresholds), np.nan)}


def fit_rule(queries: list[AttributeQuery], precision: float = 0.9, no_match: float = 0.1,
             margin: float = 0.03, min_flagged: int = 10,
             statistics=STATISTICS) -> tuple[RelevanceRule, dict]:
    """The rule of the module docstring for one branch's collected queries.

    Returns:
        `(rule, figures on the calibration queries)`; for an unsupported rule, the figures of the
        threshold with the best precision among those flagging >= `min_flagged` results, with
        that statistic and threshold as `best_statistic` / `best_threshold` (what the model
        falls short by).
    """
    best, fallback = None, None  # (key, statistic, threshold)
    for statistic in statistics:
        c = _curves(queries, statistic)
        enough = c["flagged"] >= min_flagged
        ok = enough & (c["precision"] >= precision + margin) & ~(c["no_match"] > no_match - margin)
        for i in np.flatnonzero(ok):
            key = (float(c["recall"][i]), statistic == statistics[0], float(c["threshold"][i]))
            if best is None or key > best[0]:
                best = (key, statistic, float(c["threshold"][i]))
        for i in np.flatnonzero(enough):
            key = (float(c["precision"][i]), float(c["recall"][i]))
            if fallback is None or key > fallback[0]:
                fallback = (key, statistic, float(c["threshold"][i]))
    if best is None:
        figures = {} if fallback is None else dict(
            flag_figures(queries, fallback[2], fallback[1]), best_statistic=fallback[1],
            best_threshold=fallback[2])
        return RelevanceRule(None, None), figures
    _, statistic, threshold = best
    return RelevanceRule(statistic, round(threshold, 6)), flag_figures(queries, threshold,
                                                                        statistic)


def save_rules(folder: str | os.PathLike, identity: str, rules: dict[str, RelevanceRule],
               figures: dict[str, dict], provenance: dict) -> Path:
    """Write `folder/relevance.json` (per-branch rules, the calibration figures, where they
    came from and the targets)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = Path(folder) / RELEVANCE_FILE
    data = {"format": _FORMAT, "identity": identity, "provenance": provenance,
            "branches": {b: {**asdict(rule), "supported": rule.supported,
                             "calibration": figures.get(b, {})} for b, rule in rules.items()}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=True))
    os.replace(tmp, path)
    return path


def load_rules(path: str | os.PathLike, identity: str | None = None) -> dict[str, RelevanceRule]:
    """Per-branch rules from a relevance file (a `relevance.json` path or a folder holding one);
    {} when there is none, or when it was calibrated for another model identity."""
    path = Path(path)
    if path.is_dir():
        path = path / RELEVANCE_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != _FORMAT or (identity is not None and data.get("identity") != identity):
        return {}
    return {b: RelevanceRule(v.get("statistic"), v.get("threshold"))
            for b, v in data["branches"].items()}


def world_items(world: str | os.PathLike, splits=None) -> list[dict]:
    """The manifest items of a synthetic world folder (`mumur synth` / `mumur demo` worlds),
    restricted to `splits` (e.g. ("val",)) when given."""
    manifest = json.loads((Path(world) / "manifest.json").read_text())
    return [it for it in manifest["items"] if not splits or it["split"] in splits]


def world_queries(model: str, world: str | os.PathLike, work: str | os.PathLike,
                  languages=None, splits=None, holdout: float = 0.2, seed: int = 0,
                  k: int = 5, relevance=False, workers: int = 1) -> tuple[list, object]:
    """Index `world`'s items (less those showing a withheld pair, `holdout_items`) with `model`
    into `work/index` (updated when present; rebuilt when it holds another model), and run every
    attribute query through it.

    Returns:
        `(collected AttributeQuerys, the opened Index)` (the caller closes it).
    """
    from ..data.synthetic.languages import LANGUAGES
    from .builder import build_index
    from .calibration import attribute_queries, collect, holdout_items
    from .search import Index

    world = Path(world).resolve()
    kept, _ = holdout_items(world_items(world, splits), holdout, seed)
    index_dir = Path(work) / "index"
    paths = [world / it["path"] for it in kept]
    try:  # incremental: a finished index of the same model costs a scan
        build_index(paths, index_dir, model=model, progress=False, num_workers=workers)
    except IndexMismatchError:  # a scratch index of another model: start again
        shutil.rmtree(index_dir)
        build_index(paths, index_dir, model=model, progress=False, num_workers=workers)
    index = Index(index_dir, relevance=relevance)
    queries = attribute_queries(kept, languages or LANGUAGES)
    return collect(index, queries, str(world), k=k), index


def calibrate(model: str, world: str | os.PathLike, work: str | os.PathLike,
              out: str | os.PathLike | None = None, languages=None, splits=None,
              holdout: float = 0.2, seed: int = 0, k: int = 5, **targets) -> dict:
    """Fit every branch's rule for `model` on `world` (`world_queries`, then `fit_rule`) and
    write it to `out` (a folder; default: the model folder when `model` is one).

    Returns:
        {"path": written file or None, "rules": {branch: RelevanceRule}, "figures": {branch:
        calibration figures}, "provenance": {...}}.
    """
    queries, index = world_queries(model, world, work, languages, splits, holdout, seed, k)
    try:
        identity, branches = index.embedder.identity, index.branches
    finally:
        index.close()
    rules, figures = {}, {}
    for branch in branches:
        mine = [q for q in queries if q.branch == branch]
        if mine:
            rules[branch], figures[branch] = fit_rule(mine, **targets)
    provenance = {"world": str(Path(world).resolve()), "splits": list(splits or []),
                  "languages": sorted({q.language for q in queries}), "holdout": holdout,
                  "seed": seed, "k": k, "queries": len(queries),
                  "targets": {"precision": 0.9, "no_match": 0.1, "margin": 0.03,
                              "min_flagged": 10, **targets}}
    folder = out if out is not None else (model if os.path.isdir(model) else None)
    path = save_rules(folder, identity, rules, figures, provenance) if folder else None
    return {"path": path, "rules": rules, "figures": figures, "provenance": provenance}
