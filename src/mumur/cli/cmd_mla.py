"""`mumur mla train|add-language`: MLA language acquirers in a frozen CLIP text tower (survey
§3.2.2, eq. 6-8). The trained encoder is a text-encoder folder: `--model`-style use in model
configs (`"text_ml": "<out>/model"`), `mumur.load_encoder(folder, modality="text")`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

mla_app = typer.Typer(no_args_is_help=True,
                      help="MLA: per-language acquirers in a frozen CLIP text tower.")

_RECIPE = typer.Option("--recipe", help="Recipe name (configs/mla/) or a JSON file.")


@mla_app.command("train")
def train_command(
    out: Annotated[Path, typer.Option("--out", help="Run folder (model/ is the encoder).")],
    recipe: Annotated[str, _RECIPE] = "world-mla",
    seed: Annotated[int, typer.Option("--seed", help="Seed of both stages.")] = 0,
    exclude: Annotated[str | None, typer.Option(
        "--exclude", help="Comma-separated languages left out of everything.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Teacher features / exposure world cache (default <out>/cache).")]
    = None,
    clip: Annotated[str | None, typer.Option(
        "--clip", help="Override the recipe's CLIP (e.g. openai/clip-vit-base-patch32).")]
    = None,
) -> None:
    """Train the tokenizer, the shared embedding and every language's acquirers: stage 1 (native
    language transfer, eq. 6), stage 2 (language exposure, eq. 7-8)."""
    from ..train.mla import load_mla_recipe, train_mla

    excluded = tuple(x.strip() for x in exclude.split(",")) if exclude else None
    chosen = load_mla_recipe(recipe, exclude_languages=excluded, clip=clip).with_seed(seed)
    results = train_mla(chosen, out, cache_dir=cache_dir)
    p = results["parameters"]
    typer.echo(f"MLA: {len(results['languages'])} languages, {p['trainable']} trainable "
               f"parameters ({100 * p['trainable_fraction']:.1f}% of full fine-tuning), "
               f"{results['train_seconds']:.0f}s; encoder: {results['model']}")


@mla_app.command("add-language")
def add_language_command(
    model: Annotated[Path, typer.Argument(help="A trained MLA encoder folder.")],
    language: Annotated[str, typer.Argument(help="The language to add (ISO 639-1).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (model/ is the new encoder).")],
    recipe: Annotated[str, _RECIPE] = "world-mla",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cache_dir: Annotated[Path | None, typer.Option("--cache-dir")] = None,
) -> None:
    """Add one language to a trained encoder (its acquirers only) and report what it cost."""
    from ..train.mla import add_language, load_mla_recipe

    results = add_language(model, language, load_mla_recipe(recipe).with_seed(seed), out,
                           cache_dir=cache_dir)
    typer.echo(json.dumps({k: results[k] for k in ("language", "parameters_added",
                                                   "train_seconds", "before", "after")}))


def register(app: typer.Typer) -> None:
    app.add_typer(mla_app, name="mla")
