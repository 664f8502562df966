"""`mumur demo --out DIR` (the offline end-to-end job) and `mumur ablation --out DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def demo_command(
    out: Path = typer.Option(Path("out/demo"), "--out", help="Output folder (corpus, runs, "
                             "model, index, results.json)."),
    videos: int = typer.Option(2320, help="Videos in the corpus (all splits)."),
    images: int = typer.Option(580, help="Images in the corpus (all splits)."),
    epochs: int = typer.Option(None, help="Training epochs (default: the offline recipe's)."),
    seed: int = typer.Option(0, help="Corpus and training seed."),
    workers: int = typer.Option(2, help="Worker processes for generation and decoding."),
    english_only: bool = typer.Option(True, "--english-only/--no-english-only",
                                      help="Also train the English-only model to measure "
                                      "zero-shot cross-lingual transfer."),
) -> None:
    """Offline end to end: synthesise a corpus, train, evaluate per language, index, search."""
    from ..recipes.demo import DemoConfig, run_demo

    run_demo(out, DemoConfig(videos=videos, images=images, seed=seed, workers=workers,
                             english_only=english_only, epochs=epochs))


def ablation_command(
    out: Path = typer.Option(Path("out/ablation"), "--out", help="Working folder."),
    corpus: Path = typer.Option(None, help="Existing synthetic corpus (default: generate one "
                                "into OUT/corpus)."),
    videos: int = typer.Option(2320, help="Videos when generating a corpus."),
    images: int = typer.Option(580, help="Images when generating a corpus."),
    epochs: int = typer.Option(None, help="Training epochs per variant."),
    variants: str = typer.Option("all", help="Comma-separated variant names, or 'all'."),
    report: Path = typer.Option(Path("docs/results/ablation.md"), help="Markdown table output."),
    seed: int = typer.Option(0),
    workers: int = typer.Option(2),
) -> None:
    """Ablation on the synthetic world: meanP vs DCM vs DCM + temporal order; English-only vs
    translate-train; uniform vs random frame sampling. Writes a markdown table and JSON."""
    from ..recipes.ablation import run_ablation

    run_ablation(out, corpus=corpus, videos=videos, images=images, epochs=epochs,
                 variants=None if variants == "all" else variants.split(","), report=report,
                 seed=seed, workers=workers)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
    app.command("ablation")(ablation_command)
