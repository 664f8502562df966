"""`mumur models [--lang CODE] [--json]`: the backbone catalogue and a per-language recommendation."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

__all__ = ["register"]


def _languages(backbone) -> str:
    if isinstance(backbone.languages, tuple):
        return ",".join(backbone.languages)
    return {"xm3600": "multilingual (XM3600's 36 evaluated)", "flores-200": "201 (FLORES-200)",
            "broad": "~100 (no per-language figure)"}.get(backbone.languages, backbone.languages)


def _figure(value, fmt: str) -> str:
    return format(value, fmt) if value is not None else "-"


def models_command(
    lang: str | None = typer.Option(None, "--lang", help="Recommend for this language "
                                    "(ISO 639-1, e.g. de, sw, zh-TW)."),
    json_out: bool = typer.Option(False, "--json", help="Print the catalogue (and the "
                                  "recommendation) as JSON."),
) -> None:
    """List the supported backbones: languages, licence, size, CPU rate, reported figures."""
    from ..index.catalogue import language_recommendation, list_backbones, load_catalogue

    backbones = list_backbones()
    recommendation = language_recommendation(lang) if lang else None
    if json_out:
        out = {"models": [asdict(b) for b in backbones], "default": load_catalogue()["default"]}
        if recommendation:
            out["recommendation"] = recommendation
        typer.echo(json.dumps(out, ensure_ascii=False))
        return
    typer.echo(f"{'name':32s} {'licence':14s} {'dim':>5s} {'params':>8s} {'img/s':>6s} "
               f"{'q/s':>6s} {'XM3600':>6s}  languages")
    for b in backbones:
        params = b.cpu.get("params")
        typer.echo(f"{b.name:32s} {b.licence.split(' ')[0]:14s} "
                   f"{_figure(b.cpu.get('embed_dim'), 'd'):>5s} "
                   f"{f'{params / 1e6:.0f}M' if params else '-':>8s} "
                   f"{_figure(b.cpu.get('images_per_s'), '.2f'):>6s} "
                   f"{_figure(b.cpu.get('queries_per_s'), '.2f'):>6s} "
                   f"{_figure(b.xm3600_t2i_r1, '.1f'):>6s}  {_languages(b)}")
    typer.echo("img/s, q/s: one CPU thread, random weights of the real shape "
               "(benchmarks/backbone_rate.py); XM3600: 36-language text->image R@1 as reported "
               "(`--json` has each source); --model takes the `model` value (`--json`).")
    if recommendation:
        r = recommendation
        typer.echo(f"\nfor {r['language']}: best reported {r['best_reported'] or '-'}; "
                   f"best with a commercial-use licence {r['best_commercial'] or '-'}; "
                   f"fastest on a CPU {r['fastest_on_cpu'] or '-'}")
        for row in r["candidates"]:
            caveat = "" if row["covers"] == "yes" else " (may be weak in low-resource languages)"
            typer.echo(f"  {row['name']:32s} XM3600 {_figure(row['xm3600_t2i_r1'], '.1f'):>5s}"
                       f"  {row['licence']}{caveat}")
        if not r["candidates"]:
            typer.echo("  no catalogue model names this language")


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
