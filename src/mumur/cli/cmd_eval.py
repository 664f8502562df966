"""`mumur eval CONFIG [--json]`: per-language t2v/v2t table (markdown) and a JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

__all__ = ["register"]


def eval_command(
    config: Path = typer.Argument(..., help="JSON eval config: model folder + data section."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON instead of "
                                  "the markdown table."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Write the JSON results here (default: next to "
                                          "the config, <config>.results.json)."),
    paper_table: str | None = typer.Option(
        None, "--paper-table", help="Also print our numbers in the layout of a paper table, "
        "beside the paper's (a table id such as mumur-table1, or a preset name)."),
) -> None:
    """Evaluate a trained model: t2v and v2t for every language in the dataset."""
    from ..eval.report import markdown_table
    from ..eval.runner import evaluate_from_config

    table = None
    if paper_table is not None:  # resolve first: a typo fails before the evaluation runs
        from ..recipes.presets import resolve_paper_table

        table = resolve_paper_table(paper_table)
    result = evaluate_from_config(config)
    out = output or config.with_suffix(".results.json")
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    if json_out:
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        typer.echo(markdown_table(result, title=f"{result['dataset']['name']} "
                                                f"{result['dataset']['split']}"))
        typer.echo(f"\nwrote {out}")
    if table is not None:
        from ..eval.paper_table import render_paper_table

        # With --json, stdout stays pure JSON and the paper table goes to stderr.
        typer.echo("\n" + render_paper_table(table, [(config.stem, result)]), err=json_out)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
