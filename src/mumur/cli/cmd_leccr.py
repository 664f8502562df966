"""`mumur leccr --out DIR`: LECCR vs MuMUR's DCM on the world stack, and LECCR's ablations."""

from __future__ import annotations

from pathlib import Path

import typer

from .cmd_demo import _ints, _names

__all__ = ["register"]


def leccr_command(
    out: Path = typer.Option(Path("out/leccr"), "--out", help="Working folder (worlds, cache, "
                             "runs); a rerun resumes, and a demo folder can be reused."),
    study: str = typer.Option("leccr", help="Study: leccr (vs DCM, degraded descriptions), "
                              "leccr-ablation (LECCR Tables 4-8, Figure 5) or a JSON file."),
    variants: str = typer.Option("all", help="Comma-separated variant names, or 'all'."),
    seeds: str = typer.Option(None, help="Comma-separated training seeds (default: the "
                              "study's)."),
    report: Path = typer.Option(Path("docs/results/leccr.md"), help="Markdown report (a .json "
                                "beside it)."),
    reference: str = typer.Option("dcm (MuMUR)", help="Variant the paired differences are to "
                                  "(default: the study's default when absent)."),
    workers: int = typer.Option(2),
) -> None:
    """Train and score LECCR variants for each seed on cached world-CLIP features; write a
    markdown report with intervals, the CCR view (non-English SumR) and paired differences."""
    from ..recipes.leccr import run_leccr

    run_leccr(out, study=study, variants=_names(variants), seeds=_ints(seeds), report=report,
              reference=reference, workers=workers)


def register(app: typer.Typer) -> None:
    app.command("leccr")(leccr_command)
