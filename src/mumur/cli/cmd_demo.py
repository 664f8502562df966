"""`mumur demo --out DIR` (the offline end-to-end job) and `mumur ablation --out DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def _ints(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str | None) -> list[str] | None:
    return None if not text or text == "all" else [v.strip() for v in text.split(",")]


def demo_command(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Output folder (corpus, worlds, "
                             "cache, runs, model, index, results.json, results.md); a rerun "
                             "resumes."),
    study: str = typer.Option("demo", help="Study: a name in mumur/configs/studies or a JSON "
                              "file (worlds, seeds, variants)."),
    seeds: str = typer.Option(None, help="Comma-separated training seeds (default: the "
                              "study's)."),
    variants: str = typer.Option(None, help="Comma-separated variants (default: all of the "
                                 "study's)."),
    report: Path = typer.Option(None, help="Markdown report (default OUT/results.md)."),
    workers: int = typer.Option(2, help="Worker processes for generation and decoding."),
) -> None:
    """Offline end to end on the shipped world stack: synthesise worlds, cache world-CLIP
    features, train heads for each seed, score with intervals, index, search."""
    from ..recipes.demo import run_demo

    run_demo(out, study=study, seeds=_ints(seeds), variants=_names(variants), workers=workers,
             report=report)


def ablation_command(
    out: Path = typer.Option(Path("out/ablation"), "--out", help="Working folder (worlds, "
                             "cache, runs); a rerun resumes, and a demo folder can be reused."),
    study: str = typer.Option("ablation", help="Study name or JSON file."),
    variants: str = typer.Option("all", help="Comma-separated variant names, or 'all'."),
    seeds: str = typer.Option(None, help="Comma-separated training seeds (default: the "
                              "study's)."),
    report: Path = typer.Option(Path("docs/results/ablation.md"), help="Markdown report (a .json "
                                "beside it)."),
    workers: int = typer.Option(2),
) -> None:
    """Ablation on the world stack: meanP vs DCM vs DCM + temporal order, shared branches,
    English-only vs translate-train, frame sampling, zero-shot; each
    over several seeds with intervals. Writes a markdown report and JSON."""
    from ..recipes.ablation import run_ablation

    run_ablation(out, study=study, variants=_names(variants), seeds=_ints(seeds), report=report,
                 workers=workers)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
    app.command("ablation")(ablation_command)
