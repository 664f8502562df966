"""`mumur train CONFIG [--out DIR] [--resume]`: train a model from a JSON experiment config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def train_command(
    config: Annotated[Path, typer.Argument(help="JSON experiment config: model, data, train "
                                           "sections.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: "
                                             "runs/<config name>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the run folder's "
                                         "latest checkpoint (same config).")] = False,
) -> None:
    """Train a retrieval model; writes checkpoints, log.jsonl, val.jsonl, best/ and model/."""
    from ..train import train_from_config

    out_dir = out or Path("runs") / config.stem
    result = train_from_config(config, out_dir, resume=resume)
    best = "" if result.best_value is None else (
        f", best {result.best_value:.4g} at step {result.best_step}")
    typer.echo(f"trained {result.steps} steps in {result.seconds:.1f}s{best}; "
               f"model: {result.final_model}"
               + (f", best: {result.best_model}" if result.best_model else ""))


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
