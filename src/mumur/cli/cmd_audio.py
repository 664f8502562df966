"""`mumur audio`: CLIP4VLA audio towers (seed paper, section 3.3): train and score a study with and
without audio (`mumur audio study`), or train one tower for an audio-aware index
(`mumur audio train`)."""

from __future__ import annotations

from pathlib import Path

import typer

from .cmd_demo import _ints, _names

__all__ = ["register"]

audio_app = typer.Typer(help="CLIP4VLA audio: train audio towers, t2v with and without sound.",
                        no_args_is_help=True)


@audio_app.command("study")
def study_command(
    out: Path = typer.Option(Path("out/audio"), "--out", help="Working folder (worlds, cache, "
                             "runs); a rerun resumes."),
    study: str = typer.Option("world", help="Study in mumur/configs/clip4vla/ or a JSON file."),
    variants: str = typer.Option("all", help="Comma-separated variant names, or 'all'."),
    seeds: str = typer.Option(None, help="Comma-separated training seeds (default: the "
                              "study's)."),
    quick: bool = typer.Option(False, help="Smoke run: small worlds, one seed, 20 steps."),
    results: Path = typer.Option(Path("docs/results"), help="Folder for audio.md + audio.json."),
    workers: int = typer.Option(1, help="World rendering processes."),
) -> None:
    """Train an audio tower per seed and write the with/without-audio R@1 table."""
    from dataclasses import replace

    from ..recipes.clip4vla import load_audio_study, run_audio_study
    from ..recipes.clip4vla_report import write_audio_results

    chosen = load_audio_study(study)
    names = _names(variants)
    if names:
        unknown = [v for v in names if v not in chosen.variants]
        if unknown:
            raise typer.BadParameter(f"unknown variants {unknown}; known: "
                                     f"{list(chosen.variants)}")
        chosen = replace(chosen, variants={v: chosen.variants[v] for v in names},
                         default=chosen.default if chosen.default in names else None)
    if seeds:
        chosen = replace(chosen, seeds=tuple(_ints(seeds)))
    if quick:
        chosen = chosen.quick()
    summary = run_audio_study(chosen, out, workers=workers)
    command = f"mumur audio study --study {study} --out {out}" + (" --quick" if quick else "")
    md, _ = write_audio_results(summary, results, command)
    typer.echo(f"wrote {md}")


@audio_app.command("train")
def train_command(
    out: Path = typer.Option(..., "--out", help="Folder for the audio tower (audio_tower.json)."),
    study: str = typer.Option("world", help="Study whose train world and settings to use."),
    seed: int = typer.Option(0),
    work: Path = typer.Option(Path("out/audio"), help="Worlds and feature cache folder."),
    quick: bool = typer.Option(False, help="Small world, 20 steps (smoke run)."),
) -> None:
    """Train one audio tower on the study's train world (for `mumur index --audio`)."""
    from ..recipes.clip4vla import load_audio_study, train_one_tower

    chosen = load_audio_study(study)
    folder = train_one_tower(chosen.quick() if quick else chosen, seed, work, out)
    typer.echo(f"wrote {folder}")


def register(app: typer.Typer) -> None:
    app.add_typer(audio_app, name="audio")
