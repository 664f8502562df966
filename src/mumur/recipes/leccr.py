"""`mumur leccr`: LECCR against MuMUR's DCM on the offline world stack, with its ablations.

A study (`configs/studies/leccr.json`: DCM, LECCR, LECCR's Baseline without descriptions, LECCR
on degraded descriptions; `leccr-ablation.json`: Tables 4-8 and Figure 5) run by the study engine
(`recipes/study.py`: cached world-CLIP frame features, several training seeds, independent test
worlds), reported in markdown + JSON. Beyond the engine's tables the report gives the CCR view
(LECCR §4.1: queries in the non-English languages; SumR = t2v R@1+5+10 + v2t R@1+5+10, mean over
the 14 non-English languages) and every variant's paired difference to a reference variant on
the non-English t2v R@1 (`eval.stats.paired_difference`: the same test captions resampled for
both).

The world's descriptions are correct by construction (the generator writes them from the scene),
so the clean LECCR rows measure LECCR with a perfect describer; the degraded rows corrupt a set
share of the facts (`mumur.describe.world`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.console import Console

from ..eval.metrics import ranks_to_metrics
from ..eval.stats import paired_difference, seed_summary

__all__ = ["ccr_summary", "run_leccr"]

_CAVEAT = (
    "The world's descriptions are written by the world generator from the scene itself, so "
    "they are correct and complete: the clean LECCR rows measure LECCR with a perfect MLLM, an "
    "upper bound for what descriptions can add here. The degraded rows corrupt each fact (the "
    "place, every object) with the given probability (an object dropped, or one attribute "
    "swapped), in training and at test alike.")


def _ranks(out: Path, variant: str, seeds: list[int], media: str, lang: str, field: str):
    from .study import run_folder

    rows = []
    for seed in seeds:
        with np.load(run_folder(out, variant, seed) / "outcomes.npz") as data:
            rows.append(data[f"{media}/{lang}/{field}"])
    return rows


def ccr_summary(summary: dict, reference: str | None, media: str = "video") -> dict:
    """Per variant: non-English SumR (mean over languages, then seeds) with its seed std, and the
    paired difference to `reference` on non-English t2v R@1 and R@5 (None for the reference)."""
    out = Path(summary["out"])
    result = {}
    for name, variant in summary["variants"].items():
        block = variant.get(media)
        if not block:
            continue
        langs = [lang for lang in block["languages"] if lang != "en"]
        seeds = variant["seeds"]
        sumr = []
        for i, _ in enumerate(seeds):
            per_lang = []
            for lang in langs:
                t2v = ranks_to_metrics(_ranks(out, name, seeds, media, lang, "rank")[i],
                                       block["gallery"])
                v2t = ranks_to_metrics(_ranks(out, name, seeds, media, lang, "v2t_rank")[i],
                                       block["gallery"])
                per_lang.append(sum(t2v[k] + v2t[k] for k in ("R1", "R5", "R10")))
            sumr.append(float(np.mean(per_lang)))
        mean, std = seed_summary(sumr)
        entry = {"SumR_non_en": round(mean, 2), "SumR_non_en_std": round(std, 2)}
        if reference and name != reference and reference in summary["variants"]:
            ref_seeds = summary["variants"][reference]["seeds"]
            a = np.concatenate([np.stack(_ranks(out, name, seeds, media, lang, "rank"))
                                for lang in langs])
            b = np.concatenate([np.stack(_ranks(out, reference, ref_seeds, media, lang, "rank"))
                                for lang in langs])
            # rows (languages x seeds) share the query axis: the mean over rows is the figure
            entry["vs_reference"] = {key: paired_difference(a, b, key) for key in ("R1", "R5")}
        result[name] = entry
    return result


def _markdown(ccr: dict, reference: str) -> str:
    legend = ("SumR = t2v R@1+5+10 + v2t R@1+5+10, mean over the 14 non-English languages, "
              f"mean ± std over seeds. Δ: the variant minus `{reference}` on non-English t2v "
              "R@1 / R@5, [95% paired bootstrap interval over test captions].")
    lines = ["## CCR view: non-English queries (test videos)", "", legend, "",
             "| variant | non-en SumR | Δ t2v R@1 | Δ t2v R@5 |", "|---|---|---|---|"]
    for name, entry in ccr.items():
        diff = entry.get("vs_reference")
        cells = ["(reference)"] * 2 if diff is None else [
            f"{d['diff']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
            for d in (diff["R1"], diff["R5"])]
        lines.append(f"| {name} | {entry['SumR_non_en']:.1f} ± {entry['SumR_non_en_std']:.1f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_leccr(out: str | Path, *, study: str = "leccr", variants: list[str] | None = None,
              seeds: list[int] | None = None, report: str | Path = "docs/results/leccr.md",
              reference: str = "dcm (MuMUR)", workers: int = 2,
              console: Console | None = None) -> dict:
    """Run a LECCR study into `out` (resumable) and write `report` (+ .json beside it).

    Raises:
        ConfigError: an unknown variant or a malformed study.
    """
    from .study import load_study, run_study
    from .study_report import study_markdown

    console = console or Console()
    config = load_study(study).select(variants, seeds)
    summary = run_study(config, out, workers=workers, console=console)
    ref = reference if reference in config.variants else config.default
    summary["ccr"] = ccr_summary(summary, ref)
    command = "mumur leccr" + (f" --study {study}" if study != "leccr" else "") + (
        f" --variants {','.join(config.variants)}" if variants else "") + (
        f" --seeds {','.join(map(str, config.seeds))}" if seeds else "")
    text = study_markdown(summary, f"LECCR on the world stack (study `{study}`)", command)
    report = Path(report)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(text.rstrip("\n") + "\n\n" + _CAVEAT + "\n\n"
                      + _markdown(summary["ccr"], ref))
    report.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"wrote {report} and {report.with_suffix('.json')}")
    return summary
