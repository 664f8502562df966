"""The `relevant` flag against a synthetic world's ground truth (issue 14, part 5).

For each world folder (`mumur synth --out DIR`, e.g. `--videos 0 --images 120 --seed 21
--val-fraction 0 --test-fraction 1`), indexes its test items with the shipped world stack
(`--model world-clip --text-model world-m-clip`; skipped when the index exists), asks one
"a {colour} {shape}" query per pair of the world's vocabularies (no-match queries: pairs no
indexed item has), and reports `mumur.index.calibration.flag_figures` for the engine's flags and
for a sweep of fixed z thresholds.

Usage: python benchmarks/relevance_flag.py WORLD_DIR [WORLD_DIR ...] [--k 5]
Last line: one JSON object {"worlds": {dir: {"engine": figures, "sweep": [...]}}}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from mumur.data.synthetic.world import COLOURS, SHAPES
from mumur.index import Index
from mumur.index.calibration import attribute_queries, collect, flag_figures, sweep


def index_world(world: Path) -> Path:
    index = world / "index-world-stack"
    if not (index / "index.sqlite").is_file():
        test = [world / it["path"] for it in _items(world)]
        subprocess.run([sys.executable, "-m", "mumur", "index", *map(str, test), "--index",
                        str(index), "--model", "world-clip", "--text-model", "world-m-clip"],
                       check=True, capture_output=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    return index


def _items(world: Path) -> list[dict]:
    manifest = json.loads((world / "manifest.json").read_text())
    return [it for it in manifest["items"] if it["split"] == "test"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("worlds", nargs="+", type=Path)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    out = {}
    for world in args.worlds:
        index = Index(index_world(world))
        queries = attribute_queries(_items(world), SHAPES, COLOURS)
        collect(index, queries, str(world.resolve()), k=args.k)
        index.close()
        engine = flag_figures(queries)
        curve = sweep(queries, np.arange(1.0, 8.01, 0.5))
        print(f"{world}: engine (threshold ~{queries[0].threshold:.2f}): {engine}")
        for row in curve:
            print(f"  z >= {row['threshold']:.1f}: precision {row['flagged_precision']}, "
                  f"top-relevant flagged {row['top_relevant_flagged']}, "
                  f"no-match flagged {row['no_match_flagged']}")
        out[str(world)] = {"engine": engine, "sweep": curve}
    print(json.dumps({"worlds": out}))


if __name__ == "__main__":
    main()
