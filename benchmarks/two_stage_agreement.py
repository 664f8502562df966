"""Two-stage search against exact search with a trained head and real text queries (issue 14,
item 4): recall@10 agreement per shortlist size, per language, and on multi-shot videos (where
the caption describes one shot, so the match sits in a few frames).

Input: the folder `mumur demo --out DIR` writes (DIR/model: the trained default head on the
world stack; DIR/index: the corpus's test split indexed with it; DIR/corpus/manifest.json: the
captions). Every test caption in the chosen languages is a query; it goes through the branch its
language calls for (`Index.query_language`, as `mumur search` does) and is ranked exactly and
two-stage with each shortlist size, without and with the per-frame-maximum candidate source
(`--frame-shortlists`; engine.py; "S+F" = S items by pooled vector plus F by per-frame maximum).
Agreement = |top-10 two-stage & top-10 exact| / 10.
Also p50 latency of each mode (one query at a time, embedding excluded).

Caveat printed with the figures: the demo's index holds only the test split (a few hundred
items), so shortlists near that size agree trivially; the small shortlists are the informative
rows. `--index GALLERY` measures on a larger index built with the same model that also holds the
test items, e.g. `mumur index DIR/corpus DIR/worlds --index GALLERY --model DIR/model` (every
split of the corpus plus the test worlds: distractors from the same world). Rerun after the
lead's retrain: the command is the same.

Usage: python benchmarks/two_stage_agreement.py DIR [--index GALLERY] [--languages en de zh]
       [--per-language 200] [--shortlists 4 8 16 32 64 128] [--frame-shortlists 0 32]
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mumur.index import Index


def queries_of(manifest: dict, indexed: set[str], languages: list[str] | None,
               per_language: int) -> list[tuple[str, str, bool]]:
    """(language, caption, multi-shot) for the indexed test items' captions."""
    out: dict[str, list] = {}
    for item in manifest["items"]:
        if item["split"] != "test" or Path(item["path"]).name not in indexed:
            continue
        for lang, caps in item["captions"].items():
            if languages and lang not in languages:
                continue
            for cap in caps:
                out.setdefault(lang, []).append((lang, cap, "shots" in item))
    return [q for lang in sorted(out) for q in out[lang][:per_language]]


def _name(shortlist: int, frames: int) -> str:
    return f"{shortlist}+{frames}" if frames else str(shortlist)


def run(folder: Path, languages: list[str] | None, per_language: int,
        shortlists: list[int], index: Path | None = None,
        frame_shortlists: tuple[int, ...] = (0, 32)) -> dict:
    idx = Index(index or folder / "index")
    manifest = json.loads((folder / "corpus" / "manifest.json").read_text())
    records = idx.store.records()
    indexed = {Path(p).name for p in records}
    queries = queries_of(manifest, indexed, languages, per_language)
    rows: dict[str, dict] = {}
    modes = [(s, f) for s in shortlists for f in frame_shortlists]
    exact_ms, fast_ms = [], {m: [] for m in modes}
    for lang, text, multi in queries:
        chosen = idx.query_language(text, lang)
        vector = idx.embedder.encode_queries([text], chosen.branch)[0]
        engine = idx.engine(chosen.branch)
        start = time.perf_counter()
        exact = {r.id for r in engine.search(vector, k=10, exact=True)[0]}
        exact_ms.append((time.perf_counter() - start) * 1e3)
        for s, f in modes:
            engine.shortlist, engine.frame_shortlist = s, f if engine.has_frames else 0
            start = time.perf_counter()
            got = {r.id for r in engine.search(vector, k=10)[0]}
            fast_ms[(s, f)].append((time.perf_counter() - start) * 1e3)
            agree = len(got & exact) / max(1, min(10, len(exact)))
            for key in ("all", f"lang:{lang}", "multi-shot" if multi else "single-shot"):
                rows.setdefault(key, {}).setdefault(_name(s, f), []).append(agree)
    idx.close()
    table = {key: {s: round(float(np.mean(v)), 4) for s, v in per.items()}
             for key, per in rows.items()}
    return {"folder": str(folder), "index": str(index or folder / "index"),
            "items": len(records), "queries": len(queries),
            "agreement_recall10": table,
            "exact_p50_ms": round(float(np.median(exact_ms)), 2) if exact_ms else None,
            "two_stage_p50_ms": {_name(*m): round(float(np.median(v)), 2)
                                 for m, v in fast_ms.items() if v},
            "counts": {key: len(next(iter(per.values()))) for key, per in rows.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a `mumur demo --out` folder")
    parser.add_argument("--languages", nargs="*", default=["en", "de", "fr", "zh", "ar", "hi"])
    parser.add_argument("--per-language", type=int, default=200)
    parser.add_argument("--shortlists", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--frame-shortlists", type=int, nargs="+", default=[0, 32],
                        help="items from the per-frame-maximum source (0: pooled only)")
    parser.add_argument("--index", type=Path, default=None,
                        help="index to search (default DIR/index); must hold the test items")
    args = parser.parse_args()
    figures = run(args.folder, args.languages or None, args.per_language, args.shortlists,
                  args.index, tuple(args.frame_shortlists))
    print(f"{figures['queries']} queries over {figures['items']} indexed items "
          "(a small gallery: large shortlists agree trivially)")
    for key, per in sorted(figures["agreement_recall10"].items()):
        print(f"  {key:14s} n={figures['counts'][key]:5d}  " + "  ".join(
            f"s={s}: {v:.3f}" for s, v in per.items()))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
