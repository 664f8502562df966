"""The `relevant` flag against ground truth (issue 14, part 5): calibrated on one world, measured
on others.

1. Calibrate (`mumur.index.relevance.calibrate`, what `mumur calibrate` runs) the model's flag on
   a calibration world (default with `--demo DIR`: the demo corpus's validation split): its
   items, less those showing a withheld 20% of the (colour, shape) pairs, are indexed; one
   attribute query per (language, colour, shape, place) in the world's caption grammar; a
   threshold per branch is fitted (or the branch is declared unsupported). The rule is written
   under `--work`, never into the model folder.
2. Measure on separate test worlds (default: `DIR/worlds/*`), each indexed the same way with its
   own withheld pairs: the three figures of `mumur.index.calibration.flag_figures` for the
   calibrated flag, and for comparison the uncalibrated Bonferroni z rule.

Targets (issue 14): flagged results relevant >= 90%, flag set when the top result is relevant >=
70%, no-match queries flagged <= 10%.

Usage: python benchmarks/relevance_flag.py --demo DIR [--work W] [--languages en de ...] [--k 5]
       python benchmarks/relevance_flag.py --model M --calibrate WORLD [--calibrate-split val]
           --test WORLD [WORLD ...]
Last line: one JSON object {"calibration": ..., "test": {"calibrated": figures, "bonferroni":
figures, "per_world": ..., "per_branch": ...}}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from mumur.index.calibration import flag_figures
from mumur.index.engine import relevance_threshold
from mumur.index.relevance import RELEVANCE_FILE, calibrate, world_queries

THREE = ("flagged_precision", "top_relevant_flagged", "no_match_flagged")


def _line(name: str, f: dict) -> str:
    return (f"{name}: flagged results relevant {f['flagged_precision']} "
            f"({f['flagged_relevant']}/{f['flagged']}), top relevant result flagged "
            f"{f['top_relevant_flagged']} ({f['top_relevant_flag_set']}/{f['top_relevant']}), "
            f"no-match queries flagged {f['no_match_flagged']} "
            f"({f['no_match_flag_set']}/{f['no_match_queries']})")


def measure(model: str, calibration: Path, splits, tests: list[Path], work: Path,
            languages, k: int, holdout: float) -> dict:
    cal = calibrate(model, calibration, work / "calibration", out=work, languages=languages,
                    splits=splits, holdout=holdout, k=k)
    out = {"calibration": {"world": str(calibration), "splits": splits, "rules": {
        b: {"statistic": r.statistic, "threshold": r.threshold, "supported": r.supported,
            **cal["figures"][b]} for b, r in cal["rules"].items()}}}
    print(f"calibrated on {calibration} (splits {splits or 'all'}):")
    for branch, row in out["calibration"]["rules"].items():
        rule = (f"{row['statistic']} >= {row['threshold']}" if row["supported"]
                else "unsupported (nothing flagged)")
        print(f"  {branch}: {rule}")
    pooled, per_world = [], {}
    bonferroni = []
    for i, world in enumerate(tests):
        queries, index = world_queries(model, world, work / f"test-{i}-{world.name}", languages,
                                       None, holdout, seed=1000 + i, k=k,
                                       relevance=work / RELEVANCE_FILE)
        n = len(index.store.records())
        index.close()
        # The uncalibrated rule on the same results: z >= the Bonferroni level of this index
        # (two-stage search fits the null on min(n, 128) items).
        level = relevance_threshold(n, min(n, 128))
        per_world[str(world)] = {"calibrated": flag_figures(queries),
                                 "bonferroni": flag_figures(queries, level, "z"), "items": n}
        pooled += queries
        bonferroni.append((queries, level))
        print(_line(f"  {world.name} ({n} items) calibrated", per_world[str(world)]["calibrated"]))
    bonf = [flag_figures(qs, level, "z") for qs, level in bonferroni]
    summed = {key: sum(f[key] for f in bonf) for key in
              ("flagged", "flagged_relevant", "top_relevant", "top_relevant_flag_set",
               "no_match_queries", "no_match_flag_set", "queries")}

    def share(a, b):
        return round(a / b, 4) if b else float("nan")

    summed.update(flagged_precision=share(summed["flagged_relevant"], summed["flagged"]),
                  top_relevant_flagged=share(summed["top_relevant_flag_set"],
                                             summed["top_relevant"]),
                  no_match_flagged=share(summed["no_match_flag_set"], summed["no_match_queries"]))
    branches = sorted({q.branch for q in pooled})
    out["test"] = {"calibrated": flag_figures(pooled), "bonferroni": summed,
                   "per_branch": {b: flag_figures([q for q in pooled if q.branch == b])
                                  for b in branches},
                   "per_world": per_world, "worlds": [str(w) for w in tests],
                   "languages": sorted({q.language for q in pooled})}
    print(_line("test worlds, calibrated flag", out["test"]["calibrated"]))
    print(_line("test worlds, uncalibrated Bonferroni flag", summed))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, help="a `mumur demo --out` folder")
    parser.add_argument("--model")
    parser.add_argument("--calibrate", type=Path, help="calibration world folder")
    parser.add_argument("--calibrate-split", nargs="*", default=None)
    parser.add_argument("--test", type=Path, nargs="*", default=None)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--languages", nargs="*", default=None)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--holdout", type=float, default=0.2)
    args = parser.parse_args()
    model, calibration, splits, tests = args.model, args.calibrate, args.calibrate_split, args.test
    if args.demo is not None:
        model = model or str(args.demo / "model")
        if calibration is None:
            calibration, splits = args.demo / "corpus", splits or ["val"]
        tests = tests or sorted(p for p in (args.demo / "worlds").iterdir() if p.is_dir())
    if not (model and calibration and tests):
        parser.error("give --demo DIR, or --model, --calibrate and --test")
    work = args.work or Path(tempfile.mkdtemp(prefix="mumur-relevance-"))
    work.mkdir(parents=True, exist_ok=True)
    figures = measure(model, calibration, splits, tests, work, args.languages, args.k,
                      args.holdout)
    figures["command"] = {"model": model, "work": str(work), "k": args.k,
                          "holdout": args.holdout}
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
