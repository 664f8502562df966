"""`mumur pretrain CONFIG --out DIR [--export DEST]` (world-CLIP contrastive pretraining on a
synthetic world) and `mumur pretrain-report` (its zero-shot retrieval and linear probes on the
recipe's evaluation world)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def pretrain_command(
    config: Annotated[Path, typer.Argument(help="Pretraining recipe JSON (e.g. "
                                           "src/mumur/configs/pretrain/world-clip.json).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (log.jsonl, val.jsonl, "
                                      "checkpoints/, best/, model/).")],
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="Folder for the generated worlds and frame caches (default "
        "OUT/cache).")] = None,
    export: Annotated[Path | None, typer.Option(
        "--export", help="Also write the best checkpoint (fp16) as a CLIP folder here, e.g. "
        "src/mumur/pretrained/world-clip.")] = None,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Start over instead of resuming from OUT's latest checkpoint.")] = False,
) -> None:
    """Pretrain a CLIP (vision + English text towers) on a synthetic world; resumes after a kill."""
    from ..train.pretrain import export_clip_folder, pretrain

    result = pretrain(config, out, resume=not fresh, cache_dir=cache)
    best = result.best_model or result.final_model
    typer.echo(f"pretrained {result.steps} steps in {result.seconds:.0f} s; best zero-shot R@1 "
               f"{result.best_value} at step {result.best_step}: {best}")
    if export is not None:
        export_clip_folder(best, export)
        typer.echo(f"exported {best} to {export}")


def pretrain_report_command(
    model: Annotated[str, typer.Option("--model", help="Packaged name or CLIP folder.")] =
    "world-clip",
    config: Annotated[Path | None, typer.Option(
        "--config", help="Pretraining recipe naming the evaluation world (default: the "
        "packaged world-clip recipe).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON report to write.")] =
    Path("docs/results/world-clip.json"),
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="Folder for the evaluation world and its frame cache (default "
        "runs/world-clip-cache).")] = None,
    card: Annotated[Path | None, typer.Option(
        "--card", help="Also write the model card here (e.g. "
        "src/mumur/pretrained/world-clip/README.md).")] = None,
) -> None:
    """Zero-shot retrieval and per-frame linear probes of a CLIP on the evaluation world."""
    from ..train.pretrain_report import pretrain_report

    report = pretrain_report(model, config, out, cache, card=card)
    zs, probe = report["zero_shot"]["all"], report["probe"]["model"]
    typer.echo(f"zero-shot t2v R@1 {zs['R1']} R@5 {zs['R5']} R@10 {zs['R10']} on "
               f"{zs['n_candidates']} items; probes "
               + ", ".join(f"{a} {probe[a]}" for a in ("place", "shape", "colour", "size"))
               + f"; wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("pretrain")(pretrain_command)
    app.command("pretrain-report")(pretrain_report_command)
