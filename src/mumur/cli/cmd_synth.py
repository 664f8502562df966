"""`mumur synth --out DIR [--videos N] [--images M] [--seed S] [--languages en,de,...]
[--multi-shot FRACTION]`: generate the offline synthetic corpus (media files + manifest.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def synth_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    videos: Annotated[int, typer.Option("--videos", help="Number of videos.")] = 200,
    images: Annotated[int, typer.Option("--images", help="Number of images.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Corpus seed (same seed, same bytes).")] = 0,
    languages: Annotated[str, typer.Option(
        "--languages", help="Comma-separated caption languages, or 'all' (en is always "
        "included).")] = "all",
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Fraction of each media type in the val split.")] = 0.1,
    test_fraction: Annotated[float, typer.Option(
        "--test-fraction", help="Fraction of each media type in the test split.")] = 0.2,
    size: Annotated[int, typer.Option("--size", help="Frame side in pixels.")] = 128,
    fps: Annotated[int, typer.Option("--fps", help="Video frame rate.")] = 8,
    frames: Annotated[int, typer.Option("--frames", help="Frames per video.")] = 24,
    multi_shot: Annotated[float, typer.Option(
        "--multi-shot", help="Fraction of videos cut into 2-3 shots with different scenes "
        "(each caption describes one shot; 0 for single-shot videos only).")] = 0.25,
    id_prefix: Annotated[str, typer.Option(
        "--id-prefix", help="Prefix of every item id (e.g. s11- to merge several worlds).")] = "",
    workers: Annotated[int | None, typer.Option(
        "--workers", help="Render processes (default: all CPU cores).")] = None,
) -> None:
    """Generate synthetic videos (H.264 + AAC) and images (JPEG) with multilingual captions."""
    from ..data.synthetic import LANGUAGES, RenderConfig, SynthConfig, generate

    codes = LANGUAGES if languages.strip() == "all" else tuple(
        code.strip() for code in languages.split(",") if code.strip())
    cfg = SynthConfig(videos=videos, images=images, seed=seed, languages=codes,
                      val_fraction=val_fraction, test_fraction=test_fraction,
                      render=RenderConfig(size=size, fps=fps, num_frames=frames),
                      multi_shot=multi_shot, id_prefix=id_prefix)
    report = generate(out, cfg, workers=workers)
    typer.echo(f"wrote {report.items} items ({report.videos} videos, {report.images} images) "
               f"and {report.manifest} in {report.seconds:.1f} s "
               f"({report.items_per_second:.1f} items/s, {report.workers} workers)")


def register(app: typer.Typer) -> None:
    app.command("synth")(synth_command)
