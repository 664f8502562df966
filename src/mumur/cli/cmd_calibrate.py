"""`mumur calibrate --model DIR --world WORLD [--split val] [--languages en de ...]`: fit the
`relevant` flag's rule on a world's ground truth and write `relevance.json` beside the model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer

__all__ = ["register"]


def calibrate_command(
    model: str = typer.Option(..., "--model", help="The model to calibrate (a local folder: "
                              "trained mumur model or CLIP checkpoint)."),
    world: Path = typer.Option(..., "--world", help="A synthetic world folder (manifest.json): "
                               "`mumur synth --out`, or a `mumur demo` corpus / worlds/* folder."),
    split: list[str] = typer.Option([], "--split", help="Manifest splits to use (repeatable; "
                                    "default: all). Never the split you measure on."),
    languages: list[str] = typer.Option([], "--languages", help="Query languages (repeatable; "
                                        "default: every caption language of the world)."),
    holdout: float = typer.Option(0.2, "--holdout", min=0.0, max=0.9, help="Share of (colour, "
                                  "shape) pairs withheld from the index (no-match queries)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the withheld pairs."),
    k: int = typer.Option(5, "--top-k", min=1, max=100, help="Results per query scored."),
    precision: float = typer.Option(0.9, "--precision", help="Target share of flagged results "
                                    "that are relevant."),
    no_match: float = typer.Option(0.1, "--no-match", help="Target share of no-match queries "
                                   "whose top result is flagged (at most)."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write relevance.json to "
                                    "(default: the model folder)."),
    work: Path | None = typer.Option(None, "--work", help="Folder for the calibration index "
                                     "(default: a temporary folder)."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Calibrate the `relevant` flag of a model on a synthetic world with known answers."""
    from ..index.relevance import calibrate

    with tempfile.TemporaryDirectory(prefix="mumur-calibrate-") as tmp:
        result = calibrate(model, world, work or tmp, out=out, languages=languages or None,
                           splits=split or None, holdout=holdout, seed=seed, k=k,
                           precision=precision, no_match=no_match)
    summary = {"path": str(result["path"]) if result["path"] else None,
               "branches": {b: {"statistic": rule.statistic, "threshold": rule.threshold,
                                "supported": rule.supported, **result["figures"][b]}
                            for b, rule in result["rules"].items()},
               "provenance": result["provenance"]}
    if json_out:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    for branch, row in summary["branches"].items():
        head = (f"{branch}: flag when {row['statistic']} >= {row['threshold']:.4f}"
                if row["supported"] else f"{branch}: no threshold meets the targets; nothing "
                "is flagged (best reachable below)")
        typer.echo(f"{head}\n  flagged results relevant {row.get('flagged_precision')}, top "
                   f"relevant result flagged {row.get('top_relevant_flagged')}, no-match "
                   f"queries flagged {row.get('no_match_flagged')}")
    typer.echo(f"wrote {summary['path']}" if summary["path"] else "nothing written (no folder)")


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_command)
