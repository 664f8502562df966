"""`mumur describe`: visual descriptions of a benchmark split (LECCR §3.2), cached, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def describe_command(
    dataset: Annotated[str, typer.Option(
        "--dataset", help="Benchmark name (e.g. multi30k, vatex, synthetic).")],
    root: Annotated[Path, typer.Option("--root", help="Benchmark folder.")],
    backend: Annotated[str, typer.Option(
        "--backend", help="world-descriptions | world-descriptions-degraded[:share=S,mode=M] | "
        "hf-caption:<BLIP/BLIP-2 id or folder>[,frames=4] | "
        "hf-chat:<LLaVA/Qwen2-VL id or folder>[,frames=4,max_new_tokens=256,device=cuda].")],
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "train",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Optional JSON {describer, prompt, split, descriptions: {id: text}}.")]
        = None,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="SQLite description cache (default: $MUMUR_CACHE_DIR or "
        "~/.cache/mumur/descriptions.sqlite; training and evaluation read the default).")]
        = None,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Items per model call (and per saved batch).")] = 8,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Describe every item of a split with a captioner / chat VLM (or the world's own
    descriptions); a rerun after a crash describes only what is missing."""
    from ..describe import describe_benchmark

    result = describe_benchmark(dataset, root, split, backend, out, cache=cache,
                                batch_size=batch_size, progress=not quiet)
    typer.echo(f"{len(result['descriptions'])} items described by {result['describer']}"
               + (f"; wrote {out}" if out else ""))


def register(app: typer.Typer) -> None:
    app.command("describe")(describe_command)
