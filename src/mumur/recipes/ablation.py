"""The offline ablation: one command trains every variant on one synthetic corpus and writes a
markdown table (plus the JSON behind it).

Variants (`VARIANTS`, from `mumur/configs/ablations/offline.json`: name -> JSON Merge Patch of the
offline recipe, `null` deleting a key): meanP vs DCM vs DCM + frame positions vs DCM + temporal
transformer (order), English-only vs translate-train, uniform vs random frame sampling. Random
sampling draws one of 3 cached frames per segment each epoch (`train.frames_per_segment`; 24 =
every frame of a synthetic clip); with one cached frame per segment it would equal uniform
sampling. All variants share the corpus, the decoded-frame and text caches, the seed and the
schedule; selection uses the validation split and the numbers are on the test split.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

from ..config import load_packaged_config
from ..errors import ConfigError
from .offline import (
    OfflineRecipe,
    evaluate_offline,
    generate_corpus,
    load_recipe,
    summarize,
    train_offline,
    with_run_settings,
)

__all__ = ["VARIANTS", "ablation_markdown", "run_ablation"]

VARIANTS: dict[str, dict] = load_packaged_config("ablations", "offline")


def _row(name: str, evaluation: dict, seconds: float) -> dict:
    langs = evaluation["languages"]
    summary = summarize(evaluation)
    return {"variant": name, "en_t2v_R1": summary["en_t2v_R1"],
            "en_t2v_R5": langs["en"]["t2v"]["R5"], "en_v2t_R1": langs["en"]["v2t"]["R1"],
            "non_en_t2v_R1": summary["non_en_mean_t2v_R1"], "ratio": summary["non_en_over_en"],
            "per_language_t2v_R1": {lang: m["t2v"]["R1"] for lang, m in langs.items()},
            "train_seconds": seconds}


def _recipe_text(recipe: OfflineRecipe) -> str:
    train, model = recipe.train, recipe.model
    vision = model["encoders"]["vision"]
    if isinstance(vision, dict):
        vision = f"{vision['name']} (" + ", ".join(
            f"{k} {v}" for k, v in vision.items() if k != "name") + ")"
    return (f"{train['epochs']} epochs, batch {train['batch_size']}, "
            f"{model['overrides']['num_frames']} frames, {vision}, embed "
            f"{model['overrides']['embed_dim']}, seed {train['seed']}")


def ablation_markdown(rows: list[dict], corpus_info: dict, recipe: OfflineRecipe) -> str:
    """The ablation table as markdown (test videos)."""
    lines = [
        "# Offline ablation (synthetic world, test videos)",
        "",
        (f"Corpus: synthetic world, seed {corpus_info.get('seed')}, {corpus_info.get('items')} "
         f"items, {corpus_info.get('languages')} caption languages. Recipe: "
         f"{_recipe_text(recipe)}. Model selection on the val split; numbers on the test split "
         "(videos). Produced by `mumur ablation`."),
        "",
        ("| variant | en t2v R@1 | en t2v R@5 | en v2t R@1 | non-en mean t2v R@1 | non-en / en "
         "| train s |"),
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['en_t2v_R1']:.1f} | {r['en_t2v_R5']:.1f} | "
                     f"{r['en_v2t_R1']:.1f} | {r['non_en_t2v_R1']:.1f} | {r['ratio']:.2f} | "
                     f"{r['train_seconds']:.0f} |")
    langs = list(rows[0]["per_language_t2v_R1"]) if rows else []
    lines += ["", "Per-language t2v R@1:", "",
              "| variant | " + " | ".join(langs) + " |",
              "|---|" + "---|" * len(langs)]
    for r in rows:
        lines.append(f"| {r['variant']} | " + " | ".join(
            f"{r['per_language_t2v_R1'][lang]:.1f}" for lang in langs) + " |")
    return "\n".join(lines) + "\n"


def run_ablation(out: str | Path, corpus: str | Path | None = None, videos: int = 2320,
                 images: int = 580, epochs: int | None = None,
                 variants: list[str] | None = None,
                 report: str | Path = "docs/results/ablation.md", seed: int = 0,
                 workers: int = 2, console: Console | None = None) -> list[dict]:
    """Train and evaluate every variant; write `report` (markdown) and `report`.json.

    Raises:
        ConfigError: an unknown variant name.
    """
    from ..model import load_model

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = variants or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"unknown ablation variants {unknown}; known: {list(VARIANTS)}")
    base = with_run_settings(load_recipe(), seed=seed, workers=workers, epochs=epochs)
    if corpus is None:
        corpus = out / "corpus"
        generate_corpus(base, corpus, videos=videos, images=images, seed=seed, workers=workers)
    corpus = Path(corpus)
    rows = []
    for name in names:
        console.rule(f"[bold]ablation: {name}")
        recipe = base.patch(VARIANTS[name])
        start = time.perf_counter()
        result = train_offline(recipe, corpus, out / "runs" / name.replace(" ", "_"),
                               out / "cache")
        seconds = time.perf_counter() - start
        model = load_model(result.best_model or result.final_model)
        evaluation = evaluate_offline(model, corpus, num_workers=workers, progress=False)
        rows.append(_row(name, evaluation["video"], seconds))
        console.print(f"{name}: en t2v R@1 {rows[-1]['en_t2v_R1']:.1f}, non-en mean "
                      f"{rows[-1]['non_en_t2v_R1']:.1f}")
    manifest = json.loads((corpus / "manifest.json").read_text())
    info = {"seed": manifest.get("seed"), "items": len(manifest["items"]),
            "languages": len(manifest["languages"])}
    report = Path(report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(ablation_markdown(rows, info, base))
    report.with_suffix(".json").write_text(json.dumps({"corpus": info, "rows": rows}, indent=2))
    console.print(f"wrote {report}")
    return rows
