"""Figures of a study from its stored per-caption outcomes: JSON summary and markdown tables.

Every figure is the mean over training seeds, +- the sample standard deviation over seeds, and
[a 95% interval] from a paired bootstrap over test captions (`eval/stats.py`). The non-English
figure is the mean over the 14 other languages, whose captions describe the same test items as
the English ones, so the bootstrap resamples items jointly across languages.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..eval.attributes import ATTRIBUTES
from ..eval.stats import seed_summary, summarize_ranks, summarize_shares

__all__ = ["study_markdown", "summarize_study"]


def _load(files: dict[int, Path]) -> tuple[list[int], list[dict[str, np.ndarray]]]:
    seeds = sorted(files)
    runs = []
    for seed in seeds:
        with np.load(files[seed]) as data:
            runs.append({k: data[k] for k in data.files})
    return seeds, runs


def _media_summary(runs: list[dict[str, np.ndarray]], media: str) -> dict | None:
    prefix = f"{media}/"
    keys = [k for k in runs[0] if k.startswith(prefix) and k.endswith("/rank")]
    if not keys or not len(runs[0][keys[0]]):
        return None
    languages = [k[len(prefix):-len("/rank")] for k in keys]
    n_items = runs[0][f"{media}/n_items"]
    gallery = round(float(n_items.mean()))
    out: dict = {"languages": {}, "n_worlds": len(n_items), "items": int(n_items.sum()),
                 "gallery": gallery}
    for lang in languages:
        out["languages"][lang] = {
            "t2v": summarize_ranks([r[f"{media}/{lang}/rank"] for r in runs], gallery),
            "v2t": summarize_ranks([r[f"{media}/{lang}/v2t_rank"] for r in runs],
                                   len(runs[0][f"{media}/{lang}/rank"]))}
    others = [lang for lang in languages if lang != "en"]
    if others and "en" in languages:
        out["non_en"] = summarize_ranks(
            [np.stack([r[f"{media}/{lang}/rank"] for lang in others]) for r in runs], gallery)
        ratios = [np.mean([np.mean(r[f"{media}/{lang}/rank"] == 1) for lang in others])
                  / max(np.mean(r[f"{media}/en/rank"] == 1), 1e-9) for r in runs]
        mean, std = seed_summary(ratios)
        out["non_en_over_en"] = {"mean": round(mean, 4), "std": round(std, 4)}
    if "en" in languages:
        attributes = {}
        for attribute in ATTRIBUTES:
            hits = [r[f"{media}/en/top1_hit/{attribute}"] for r in runs]
            stated = hits[0] >= 0
            if stated.any():
                attributes[attribute] = summarize_shares([h[stated] > 0 for h in hits])
        out["attributes_en"] = attributes
        in_shot = [r[f"{media}/en/in_shot"] for r in runs]
        multi = in_shot[0] >= 0
        if multi.any():
            out["in_shot_en"] = summarize_shares([s[multi] > 0 for s in in_shot])
            top1 = [s[multi & (r[f"{media}/en/rank"] == 1)] > 0 for s, r in zip(in_shot, runs)]
            out["in_shot_en_top1"] = {"mean": round(100.0 * float(np.mean(np.concatenate(top1))),
                                                    4) if sum(map(len, top1)) else None,
                                      "n": int(sum(map(len, top1)))}
            # R@1 on the queries about one shot of a multi-shot video vs on single-shot ones:
            # where text-conditioned frame attention has something to find
            ranks = [r[f"{media}/en/rank"] for r in runs]
            out["R1_multi_shot_en"] = summarize_shares([k[multi] == 1 for k in ranks])
            out["R1_single_shot_en"] = summarize_shares([k[~multi] == 1 for k in ranks])
    return out


def summarize_study(study, files: dict[str, dict[int, Path]], out: Path) -> dict:
    """The JSON summary of a study from its outcome files (variant -> seed -> outcomes.npz)."""
    variants = {}
    for name, by_seed in files.items():
        seeds, runs = _load(by_seed)
        infos = [json.loads((by_seed[s].parent / "run.json").read_text()) for s in seeds]
        variants[name] = {
            "spec": study.variants[name], "seeds": seeds,
            "train_seconds": [round(i["train_seconds"], 1) for i in infos],
            "best_step": [i.get("best_step") for i in infos],
            # model selection uses the train world's val split only: pick variants by this
            "val_t2v_R1": [i.get("val_t2v_R1") for i in infos],
            "video": _media_summary(runs, "video"), "image": _media_summary(runs, "image")}
    return {"study": study.name, "recipe": study.recipe, "default": study.default,
            "train_world": study.train_world, "test_worlds": study.test_worlds,
            "seeds": list(study.seeds), "out": str(out), "variants": variants}


def _cell(summary: dict | None, key: str = "R1", digits: int = 1) -> str:
    if not summary or summary.get(key) is None:
        return "-"
    text = f"{summary[key]:.{digits}f}"
    std = summary.get(f"{key}_std", summary.get("std") if key == "mean" else None)
    if std is not None:
        text += f" ± {std:.{digits}f}"
    ci = summary.get(f"{key}_ci95", summary.get("ci95") if key == "mean" else None)
    if ci is not None:
        text += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return text


def _val(variant: dict) -> str:
    values = [v for v in variant.get("val_t2v_R1", []) if v is not None]
    if not values:
        return "-"
    mean, std = seed_summary(values)
    return f"{mean:.1f}" + (f" ± {std:.1f}" if len(values) > 1 else "")


def study_markdown(summary: dict, title: str, command: str) -> str:
    """Markdown tables of a study summary (videos; images in the first table)."""
    variants = summary["variants"]
    first = next(v["video"] for v in variants.values() if v["video"])
    tw = summary["test_worlds"]
    lines = [
        f"# {title}", "",
        (f"Test: {first['items']} test videos in {first['n_worlds']} galleries of about "
         f"{first['gallery']} videos each (the train world's own test split, if it has one, and "
         f"independent worlds of seeds {', '.join(map(str, tw['seeds']))}); heads trained on "
         f"world seed "
         f"{summary['train_world']['seed']} ({summary['train_world']['videos']} videos, "
         f"{summary['train_world']['images']} images), selected on its val split. Recipe "
         f"`configs/recipes/{summary['recipe']}.json`, training seeds "
         f"{', '.join(map(str, summary['seeds']))}."),
        "",
        ("Each cell: mean over training seeds ± sample std over seeds [95% paired bootstrap "
         "interval over test captions]. Zero-shot rows have one run (no training). `val t2v "
         "R@1` is the selection metric on the train world's val split (English, German, "
         "Japanese, Chinese), the only figure used to choose checkpoints and defaults. "
         f"Regenerate with `{command}`."),
        "", "## Text -> video (and image) retrieval", "",
        ("| variant | en t2v R@1 | en t2v R@5 | non-en mean t2v R@1 | non-en / en | "
        "en t2v R@1, images | val t2v R@1 | train s |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in variants.items():
        video, image = v["video"], v["image"]
        ratio = video.get("non_en_over_en")
        ratio_text = f"{ratio['mean']:.2f} ± {ratio['std']:.2f}" if ratio else "-"
        mark = " (default)" if name == summary.get("default") else ""
        lines.append(
            f"| {name}{mark} | {_cell(video['languages']['en']['t2v'])} | "
            f"{_cell(video['languages']['en']['t2v'], 'R5')} | {_cell(video.get('non_en'))} | "
            f"{ratio_text} | {_cell(image['languages']['en']['t2v']) if image else '-'} | "
            f"{_val(v)} | {np.mean(v['train_seconds']):.0f} |")
    langs = list(first["languages"])
    lines += ["", "## t2v R@1 per language (test videos, mean ± std over seeds)", "",
              "| variant | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
    for name, v in variants.items():
        per = {lang: m["t2v"] for lang, m in v["video"]["languages"].items()}
        lines.append(f"| {name} | " + " | ".join(
            f"{per[lang]['R1']:.1f}" + (f" ± {per[lang]['R1_std']:.1f}"
                                        if "R1_std" in per[lang] else "")
            for lang in langs) + " |")
    lines += ["", "## What the top-1 video gets right (English queries, test videos)", "",
              ("Share of queries whose top-ranked video agrees with the query on each attribute "
               "(any shot of a multi-shot video); `R@1` is the video being the right one. "
               "Order-blind heads cannot tell the directions of motion apart."), "",
              "| variant | " + " | ".join(ATTRIBUTES) + " | R@1 |",
              "|---|" + "---|" * (len(ATTRIBUTES) + 1)]
    for name, v in variants.items():
        att = v["video"].get("attributes_en", {})
        lines.append(f"| {name} | " + " | ".join(_cell(att.get(a), "mean") for a in ATTRIBUTES)
                     + f" | {_cell(v['video']['languages']['en']['t2v'])} |")
    lines += ["", "## Search timestamps on multi-shot videos (English queries)", "",
              ("`in shot`: share of queries about one shot of a multi-shot video for which the "
               "timestamp search returns for that video (the frame its attention peaks on) lies "
               "inside the described shot; `when top-1`: the same over the queries whose video "
               "is ranked first (mean over seeds)."), "",
              "| variant | in shot | when top-1 | queries | R@1, multi-shot queries | "
              "R@1, single-shot queries |", "|---|---|---|---|---|---|"]
    for name, v in variants.items():
        shot, top1 = v["video"].get("in_shot_en"), v["video"].get("in_shot_en_top1")
        if shot:
            top1_text = (f"{top1['mean']:.1f} (n={top1['n']})"
                         if top1 and top1["mean"] is not None else "-")
            lines.append(f"| {name} | {_cell(shot, 'mean')} | {top1_text} | {shot['n']} | "
                         f"{_cell(v['video'].get('R1_multi_shot_en'), 'mean')} | "
                         f"{_cell(v['video'].get('R1_single_shot_en'), 'mean')} |")
    return "\n".join(lines) + "\n"
