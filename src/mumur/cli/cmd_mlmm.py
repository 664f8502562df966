"""`mumur mlmm pretrain|finetune|study`: MLMM (single-stream cross-encoder, §3.1 of the MLMM
seed) pre-trained on the pretraining world, fine-tuned for retrieval, and the re-ranking
trade-off study; `mumur search --rerank MODEL --rerank-k K` uses a fine-tuned one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

mlmm_app = typer.Typer(no_args_is_help=True,
                       help="MLMM cross-encoder: pre-train, fine-tune, measure re-ranking.")

_RECIPE = typer.Option("--recipe", help="Recipe name (configs/mlmm/) or a JSON file.")
_WORKERS = typer.Option("--workers", min=0, help="Decode workers.")


@mlmm_app.command("pretrain")
def pretrain_command(
    out: Annotated[Path, typer.Option("--out", help="Folder: pretrain-world/, cache/, "
                                      "pretrained/ (the model).")],
    recipe: Annotated[str, _RECIPE] = "world",
    workers: Annotated[int, _WORKERS] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    world: Annotated[Path | None, typer.Option("--world", help="The base study's train world, "
                                               "for recipes that pre-train on it.")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Its feature stores root.")] = None,
) -> None:
    """Pre-train MLMM with ITM, MLM, MRFR and MRC on the recipe's pretraining world."""
    from ..recipes.mlmm import load_mlmm_recipe, pretrain

    path = pretrain(load_mlmm_recipe(recipe), out, workers=workers, seed=seed, base_world=world,
                    cache_root=cache)
    typer.echo(f"pre-trained MLMM: {path}")


@mlmm_app.command("finetune")
def finetune_command(
    pretrained: Annotated[Path, typer.Option("--pretrained", help="A pre-trained MLMM folder.")],
    world: Annotated[Path, typer.Option("--world", help="Synthetic world (manifest.json) whose "
                                        "train split it fine-tunes on.")],
    out: Annotated[Path, typer.Option("--out", help="The fine-tuned model folder.")],
    cache: Annotated[Path, typer.Option("--cache", help="Feature stores root (shared with "
                                        "`mumur features` / the study).")],
    recipe: Annotated[str, _RECIPE] = "world",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    workers: Annotated[int, _WORKERS] = 1,
    base_model: Annotated[Path | None, typer.Option(
        "--base-model", help="The two-stream model it will re-rank: hard negatives from its "
        "train-split shortlists; checkpoint and fusion weights chosen on its val-split "
        "shortlists.")] = None,
) -> None:
    """Fine-tune for retrieval: ITM with hard negatives (the re-ranking score)."""
    from ..recipes.mlmm import finetune, load_mlmm_recipe

    path = finetune(load_mlmm_recipe(recipe), pretrained, world, cache, out, seed=seed,
                    workers=workers, base_model=base_model)
    typer.echo(f"fine-tuned MLMM: {path}")


@mlmm_app.command("study")
def study_command(
    base_out: Annotated[Path, typer.Option("--base-out", help="The base study's folder "
                                           "(`mumur demo --out DIR`); its runs are reused.")],
    out: Annotated[Path, typer.Option("--out", help="MLMM models, outcomes, results.json.")],
    recipe: Annotated[str, _RECIPE] = "world",
    report: Annotated[Path | None, typer.Option("--report", help="Write the markdown tables "
                                                "here (and the JSON beside it).")] = None,
    workers: Annotated[int, _WORKERS] = 1,
) -> None:
    """Re-ranking trade-off: t2v R@1 gain per K and language (3 seeds, intervals) vs latency."""
    from ..recipes.mlmm import load_mlmm_recipe
    from ..recipes.mlmm_report import rerank_markdown, rerank_study

    rec = load_mlmm_recipe(recipe)
    summary = rerank_study(rec, base_out, out, workers=workers)
    if report is not None:
        command = (f"mumur mlmm study --base-out {base_out} --out {out} --recipe {recipe} "
                   f"--report {report}")
        report.write_text(rerank_markdown(summary, command), encoding="utf-8")
        report.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
        typer.echo(f"wrote {report}")


def register(app: typer.Typer) -> None:
    app.add_typer(mlmm_app, name="mlmm")
