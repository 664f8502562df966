"""`mumur mmp pretrain`: multilingual multimodal pre-training (Huang et al. 2021) of a
multilingual text transformer and a video transformer over frame features on the pretraining
world; the fine-tune-on-English, zero-shot-elsewhere step is a variant of `mumur routes`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

mmp_app = typer.Typer(no_args_is_help=True,
                      help="MMP: multilingual multimodal pre-training on the pretraining world.")


@mmp_app.command("pretrain")
def pretrain_command(
    out: Annotated[Path, typer.Option("--out", help="Run folder (pretrain/best is the model).")],
    recipe: Annotated[str, typer.Option("--recipe", help="Recipe name (configs/mmp/) or a JSON "
                                        "file.")] = "world-mmp",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Decode workers.")] = 1,
    exclude: Annotated[str | None, typer.Option(
        "--exclude", help="Comma-separated languages left out of everything.")] = None,
    corpus: Annotated[Path | None, typer.Option(
        "--corpus", help="Where the pretraining corpus is rendered (default <out>/corpus).")]
    = None,
) -> None:
    """Pre-train contrastively on the pretraining world's video-text pairs in every language."""
    from ..recipes.mmp import load_mmp_recipe, pretrain_mmp

    excluded = tuple(x.strip() for x in exclude.split(",")) if exclude else None
    results = pretrain_mmp(load_mmp_recipe(recipe, exclude_languages=excluded), out, seed=seed,
                           workers=workers, corpus_dir=corpus)
    typer.echo(f"MMP pre-trained in {results['steps']} steps ({results['train_seconds']:.0f}s): "
               f"{results['model']}")


def register(app: typer.Typer) -> None:
    app.add_typer(mmp_app, name="mmp")
