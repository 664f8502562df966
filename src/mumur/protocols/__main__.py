"""`python -m mumur.protocols list` / `python -m mumur.protocols write NAME --out DIR --root DIR`:
list the paper presets or write one preset's train/eval configs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import get_preset, list_presets, write_preset_configs

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Paper presets: list them or write their mumur configs.")


@app.command("list")
def list_command() -> None:
    """One line per preset: name, setting, train -> eval benchmark, paper table."""
    for name in list_presets():
        p = get_preset(name)
        typer.echo(f"{name:32s} {p.setting:15s} {p.train_benchmark or '-':20s} -> "
                   f"{p.eval_benchmark:20s} {p.paper_table}")


@app.command("write")
def write_command(
    name: Annotated[str, typer.Argument(help="Preset name (see `list`).")],
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
    """Write the preset's configs."""
    paths = write_preset_configs(name, out, root, eval_root=eval_root, model=model,
                                 translations=translations, cache_dir=cache_dir, seed=seed)
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")


if __name__ == "__main__":
    from ..errors import MumurError

    try:
        app()
    except MumurError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None
