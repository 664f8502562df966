"""Re-ranking trade-off: t2v R@1 gain of MLMM re-ranking the two-stream top K over the two-stream
result (fused with the two-stream score, the weight chosen on validation; and by ITM alone) (3 seeds, 95% intervals, per language) against the latency it adds per query, K = 10, 50,
100, and the whole gallery (the single-stream model alone; LECCR cites single-stream models as
about 10x slower).

    python benchmarks/rerank_tradeoff.py --base-out out/demo --out out/mlmm \
        [--recipe world] [--report docs/results/rerank.md]

It runs `mumur mlmm study` (pre-training once, fine-tuning per seed and scoring are resumable;
the base study's worlds, feature cache and finished runs are reused) and prints the figures, then
one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mumur.recipes.mlmm import load_mlmm_recipe
from mumur.recipes.mlmm_report import rerank_markdown, rerank_study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-out", type=Path, default=Path("out/demo"))
    parser.add_argument("--out", type=Path, default=Path("out/mlmm"))
    parser.add_argument("--recipe", default="world")
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    summary = rerank_study(load_mlmm_recipe(args.recipe), args.base_out, args.out,
                           workers=args.workers)
    command = (f"python benchmarks/rerank_tradeoff.py --base-out {args.base_out} --out {args.out}"
               f" --recipe {args.recipe}" + (f" --report {args.report}" if args.report else ""))
    text = rerank_markdown(summary, command)
    print(text)
    if args.report:
        args.report.write_text(text, encoding="utf-8")
        args.report.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    res, lat = summary["results"], summary["latency"]
    figures = {"two_stream_ms": lat["median_ms"]["two-stream"],
               "single_stream_only_ratio": lat["ratio"]["all"]}
    for k in summary["k"]:
        figures[f"k{k}"] = {"en_gain_R1": res[f"k{k}"]["en"]["gain_R1"]["diff"],
                            "en_gain_R1_ci95": res[f"k{k}"]["en"]["gain_R1"]["ci95"],
                            "en_gain_R1_itm_only": res[f"itm-k{k}"]["en"]["gain_R1"]["diff"],
                            "added_ms": lat["added_ms"][str(k)], "ratio": lat["ratio"][str(k)]}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
