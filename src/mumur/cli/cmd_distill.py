"""`mumur distill CONFIG --out DIR`: distil a CLIP text tower into a multilingual student (M-CLIP,
eq. 5), and `mumur distill-report RUN... --out JSON`: the comparison table of distilled students
(optionally shipping one of them as a packaged encoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def distill_command(
    config: Annotated[str, typer.Argument(help="Recipe JSON file, or a packaged recipe name "
                                          "(world-m-clip-usem3, world-m-clip-scratch).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder.")],
    teacher: Annotated[str | None, typer.Option(
        "--teacher", help="Override the recipe's teacher (CLIP name or folder).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's "
                                         "latest checkpoint (same recipe).")] = False,
    init_from: Annotated[str | None, typer.Option(
        "--init-from", help="Warm-start the student from a saved student folder of the same "
        "kind and shape.")] = None,
    max_steps: Annotated[int | None, typer.Option(
        "--max-steps", help="Override train.max_steps.")] = None,
    cache_dir: Annotated[str | None, typer.Option(
        "--cache-dir", help="Feature / evaluation-world cache shared across runs (default: "
        "<out>/cache).")] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate/--no-evaluate", help="Score the student "
                                           "on the evaluation world.")] = True,
) -> None:
    """Train a multilingual student to match a frozen CLIP text tower; writes checkpoints,
    log.jsonl, val.jsonl, best/ and model/ (student encoder folders) and results.json."""
    from ..train.distill import distill_from_config

    results = distill_from_config(config, out, resume=resume, evaluate=evaluate, teacher=teacher,
                                  cache_dir=cache_dir, init_from=init_from,
                                  max_steps=max_steps)
    line = (f"distilled {results['student']} in {results['steps']} steps "
            f"({results['train_seconds']:.0f}s); student: {results['student_folder']}")
    summary = (results.get("evaluation") or {}).get("mean_non_en")
    if summary:
        line += (f"; non-English bitext R@1 {summary['bitext_R1']:.1f}, "
                 f"t2v R@1 {summary['t2v_R1']:.1f}")
    typer.echo(line)


def report_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders of `mumur distill`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON report (a .md table is "
                                      "written beside it).")],
    ship: Annotated[Path | None, typer.Option("--ship", help="Copy this run's student into "
                                              "--ship-to with a model card.")] = None,
    ship_to: Annotated[Path | None, typer.Option("--ship-to", help="Packaged encoder folder, "
                                                 "e.g. src/mumur/pretrained/world-m-clip.")]
    = None,
) -> None:
    """Compare distilled students (bitext R@1, MSE to the teacher, cross-lingual t2v R@1)."""
    from ..train.distill_report import write_report

    paths = write_report(runs, out, ship=ship, ship_to=ship_to)
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


def register(app: typer.Typer) -> None:
    app.command("distill")(distill_command)
    app.command("distill-report")(report_command)
