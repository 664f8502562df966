"""`mumur presets list` / `mumur presets write NAME --out DIR --root DIR`: the paper presets
(`mumur/configs/presets/*.json`) and the train/eval configs they emit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

presets_app = typer.Typer(no_args_is_help=True,
                          help="Paper presets: list them or write their mumur configs.")


@presets_app.command("list")
def list_command() -> None:
    """One line per preset: name, setting, train -> eval benchmark, paper table."""
    from ..recipes.presets import get_preset, list_presets

    for name in list_presets():
        p = get_preset(name)
        typer.echo(f"{name:32s} {p.setting:15s} {p.train_benchmark or '-':20s} -> "
                   f"{p.eval_benchmark:20s} {p.paper_table}")


@presets_app.command("write")
def write_command(
    name: Annotated[str, typer.Argument(help="Preset name (see `mumur presets list`).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for train.json / eval.json.")],
    root: Annotated[Path, typer.Option("--root", help="Training benchmark folder.")],
    eval_root: Annotated[Path | None, typer.Option(
        "--eval-root", help="Evaluation benchmark folder (default: --root).")] = None,
    model: Annotated[Path | None, typer.Option(
        "--model", help="Model folder to evaluate (zero-shot presets).")] = None,
    translations: Annotated[Path | None, typer.Option(
        "--translations", help="JSON from `mumur translate`.")] = None,
    cache_dir: Annotated[Path | None, typer.Option(
        "--cache-dir", help="Feature cache root shared with `mumur features`.")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write the preset's train.json (unless zero-shot) and eval.json."""
    from ..recipes.presets import write_preset_configs

    paths = write_preset_configs(name, out, root, eval_root=eval_root, model=model,
                                 translations=translations, cache_dir=cache_dir, seed=seed)
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(presets_app, name="presets")
