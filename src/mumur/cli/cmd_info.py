"""`mumur info --index DIR [--json]`: what an index holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["register"]


def info_command(
    index: Path = typer.Option(..., "--index", help="Index folder."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON: items, images, videos, "
                                  "model, schema_version."),
) -> None:
    """Show item counts, the model and the schema version of an index."""
    from ..index import IndexStore

    store = IndexStore(index)
    try:
        info = store.info()
    finally:
        store.close()
    if json_out:
        typer.echo(json.dumps(info, ensure_ascii=False))
    else:
        for key, value in info.items():
            typer.echo(f"{key:15s} {value}")


def register(app: typer.Typer) -> None:
    app.command("info")(info_command)
