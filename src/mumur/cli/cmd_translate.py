"""`mumur translate`: machine-translate a benchmark split's captions (translate-train)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

_DEFAULT_MODEL = "facebook/mbart-large-50-many-to-many-mmt"


def translate_command(
    dataset: Annotated[str, typer.Option(
        "--dataset", help="Benchmark name (e.g. msrvtt-9k, synthetic).")],
    root: Annotated[Path, typer.Option("--root", help="Benchmark folder (annotation files).")],
    languages: Annotated[str, typer.Option(
        "--languages", help="Target ISO 639-1 tags, comma separated, e.g. de,fr,zh.")],
    out: Annotated[Path, typer.Option(
        "--out", help="Output JSON: {model, source, captions: {item_id: {lang: [..]}}}.")],
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "train",
    model: Annotated[str, typer.Option(
        "--model", help="MarianMT / M2M100 / NLLB-200 / mBART-50 hub id or folder; "
        "'Helsinki-NLP/opus-mt-en-{tgt}' loads one Marian model per target.")] = _DEFAULT_MODEL,
    source: Annotated[str, typer.Option(
        "--source", help="Language of the captions to translate.")] = "en",
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Texts per model call.")] = 32,
    cache: Annotated[Path | None, typer.Option(
        "--cache", help="SQLite translation cache "
        "(default: ~/.cache/mumur/translations.sqlite).")] = None,
    device: Annotated[str, typer.Option(
        "--device", help="Torch device, e.g. cpu or cuda.")] = "cpu",
    num_beams: Annotated[int, typer.Option("--num-beams", min=1, help="Beam size.")] = 4,
    max_new_tokens: Annotated[int, typer.Option(
        "--max-new-tokens", min=1, help="Longest translation in tokens.")] = 128,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Translate a dataset's English captions into other languages with a seq2seq MT model."""
    from ..translate import GenerationOptions, translate_benchmark

    langs = [x.strip() for x in languages.split(",") if x.strip()]
    if not langs:
        raise typer.BadParameter("give at least one language", param_hint="--languages")
    path = translate_benchmark(
        dataset, root, split, langs, model, out, source=source, batch_size=batch_size,
        cache=cache, device=device,
        options=GenerationOptions(num_beams=num_beams, max_new_tokens=max_new_tokens),
        progress=not quiet)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("translate")(translate_command)
