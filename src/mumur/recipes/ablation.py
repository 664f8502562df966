"""`mumur ablation`: the offline ablation study: every variant of `configs/studies/ablation.json`
(meanP vs DCM vs DCM + frame positions vs DCM + temporal transformer, shared vs separate branches,
English-only vs translate-train, uniform vs random frame
sampling, world-CLIP zero-shot) trained for each seed on cached world-CLIP features and scored on
the independent test worlds; writes a markdown report (default `docs/results/ablation.md`) and the
JSON behind it. `recipes/study.py` is the engine; selection uses the train world's val split,
every figure the test galleries.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

__all__ = ["run_ablation"]


def run_ablation(out: str | Path, *, study: str = "ablation", variants: list[str] | None = None,
                 seeds: list[int] | None = None,
                 report: str | Path = "docs/results/ablation.md", workers: int = 2,
                 console: Console | None = None) -> dict:
    """Train and score every variant x seed into `out` (resumable); write `report` and
    `report` with a .json suffix. Returns the study summary.

    Raises:
        ConfigError: an unknown variant name or a malformed study.
    """
    from .study import load_study, run_study
    from .study_report import study_markdown

    console = console or Console()
    config = load_study(study).select(variants, seeds)
    summary = run_study(config, out, workers=workers, console=console)
    report = Path(report)
    report.parent.mkdir(parents=True, exist_ok=True)
    command = "mumur ablation" + (f" --study {study}" if study != "ablation" else "") + (
        f" --variants {','.join(config.variants)}" if variants else "") + (
        f" --seeds {','.join(map(str, config.seeds))}" if seeds else "")
    report.write_text(study_markdown(summary, "Offline ablation: heads on the world stack",
                                     command))
    report.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"wrote {report} and {report.with_suffix('.json')}")
    return summary
