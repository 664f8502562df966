"""Figures of an audio study (`mumur audio study`): text-to-video R@1 with and without the CLIP4VLA
audio term, on test queries that state a sound and on those that do not, per language.

Every figure is the mean over training seeds with the sample std and a 95% query-bootstrap
interval (`mumur.eval.stats.summarize_ranks`); "delta" is audio minus visual on the same queries
with a paired bootstrap interval (`paired_difference`, seed i against seed i). The visual system
does not depend on the seed (frozen towers), so its std is 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..eval.stats import paired_difference, summarize_ranks

__all__ = ["audio_study_markdown", "summarize_audio_study", "write_audio_results"]

_GROUPS = {"sound": True, "other": False}


def _ranks(runs: dict[int, dict], system: str, lang: str, sound: bool) -> list[np.ndarray]:
    out = []
    for arrays in runs.values():
        keep = arrays[f"{lang}/sound"] == sound
        out.append(arrays[f"{system}/{lang}/rank"][keep])
    return out


def _cell(runs: dict[int, dict], system: str, lang: str, sound: bool, n_items: int) -> dict:
    ranks = _ranks(runs, system, lang, sound)
    cell = {k: v for k, v in summarize_ranks(ranks, n_items).items()
            if k.startswith(("R1", "n_"))}
    if system != "visual":
        cell["delta_R1"] = paired_difference(np.stack(ranks),
                                             np.stack(_ranks(runs, "visual", lang, sound)))
    return cell


def summarize_audio_study(study, files: dict[str, dict[int, Path]]) -> dict:
    """Per variant, system, language and query group (``sound`` / ``other``) the R@1 figure,
    plus ``all`` (every language's queries pooled)."""
    summary: dict = {"study": study.name, "seeds": list(study.seeds), "variants": {},
                     "default": study.default, "config": {
                         "train_world": study.train_world, "test_worlds": study.test_worlds,
                         "train": study.train, "audio": study.audio, "vision": study.vision,
                         "text_ml": study.text_ml}}
    for variant, by_seed in files.items():
        runs = {seed: dict(np.load(path)) for seed, path in sorted(by_seed.items())}
        first = next(iter(runs.values()))
        n_items = int(first["n_items"].sum())
        langs = sorted({k.split("/")[0] for k in first if k.endswith("/sound")},
                       key=lambda lang: (lang != "en", lang))
        systems = sorted({k.split("/")[0] for k in first if k.endswith("/rank")},
                         key=lambda s: (s != "visual", s))
        pooled = {seed: {**a, **{f"{s}/all/rank": np.concatenate(
            [a[f"{s}/{lang}/rank"] for lang in langs]) for s in systems},
            "all/sound": np.concatenate([a[f"{lang}/sound"] for lang in langs])}
            for seed, a in runs.items()}
        table = {s: {lang: {g: _cell(pooled, s, lang, flag, n_items)
                            for g, flag in _GROUPS.items()}
                     for lang in ["all", *langs]} for s in systems}
        runs_info = {seed: json.loads((Path(path).parent / "run.json").read_text())
                     for seed, path in sorted(by_seed.items())
                     if (Path(path).parent / "run.json").exists()}
        summary["variants"][variant] = {
            "systems": table, "gallery_items": n_items,
            "audio_weight_by_seed": {str(s): r.get("audio_weight") for s, r in runs_info.items()},
            "train_seconds_by_seed": {str(s): r.get("train_seconds")
                                      for s, r in runs_info.items()},
            "outcomes": {k.split("/", 1)[1]: int(v[0]) for k, v in first.items()
                         if k.startswith("outcomes/")}}
    return summary


def _fmt(cell: dict) -> str:
    lo, hi = cell["R1_ci95"]
    std = f" ± {cell['R1_std']:.1f}" if "R1_std" in cell else ""
    return f"{cell['R1']:.1f}{std} [{lo:.1f}, {hi:.1f}]"


def _delta(cell: dict) -> str:
    d = cell["delta_R1"]
    return f"{d['diff']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"


def audio_study_markdown(summary: dict, command: str) -> str:
    """The results page: the default variant per language, then every variant and policy."""
    default = summary["default"] or next(iter(summary["variants"]))
    main = summary["variants"][default]
    cfg = summary["config"]
    lines = [
        "# CLIP4VLA: text-to-video R@1 with and without audio",
        "",
        (f"Reproduce: `{command}` (figures on the current shipped world-CLIP / world-M-CLIP "
         "weights; the lead's retrain changes them: rerun the command)."),
        "",
        (f"Frozen towers: {cfg['vision']} (vision, English text), {cfg['text_ml']} (other "
         "languages). Audio tower trained per seed on the train world "
        f"(seed {cfg['train_world']['seed']}, {cfg['train_world']['videos']} videos); test "
        f"galleries: the train world's test split and worlds {cfg['test_worlds']['seeds']} "
        f"({cfg['test_worlds']['videos']} videos each), {main['gallery_items']} videos in all; "
        f"sound outcomes of the test videos: {main['outcomes']}. Seeds {summary['seeds']}: "
        "mean ± std over seeds [95% query-bootstrap interval]; delta: audio minus visual on the "
        "same queries, paired 95% interval. *Sound* queries state the main object's sound "
        "(\"... and beeps ...\"); *other* queries do not."),
        "",
        f"## Per language ({default}, silent videos: the paper's borrowing rule)",
        "",
        "| language | sound q. | visual | + audio | delta | other q. | visual | + audio | delta |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    vis, aud = main["systems"]["visual"], main["systems"]["audio-borrow"]
    for lang in vis:
        s, o = aud[lang]["sound"], aud[lang]["other"]
        lines.append(f"| {lang} | {s['n_queries']} | {_fmt(vis[lang]['sound'])} | {_fmt(s)} | "
                     f"{_delta(s)} | {o['n_queries']} | {_fmt(vis[lang]['other'])} | {_fmt(o)} | "
                     f"{_delta(o)} |")
    lines += ["", "## Variants and silent-video policies (all languages pooled, and English)", "",
              ("| variant | system | sound q. (all) | delta | other q. (all) | delta | "
               "sound q. (en) | other q. (en) |"), "|---|---|---|---|---|---|---|---|"]
    for variant, body in summary["variants"].items():
        for system, table in body["systems"].items():
            a, e = table["all"], table["en"]
            ds = _delta(a["sound"]) if system != "visual" else "-"
            do = _delta(a["other"]) if system != "visual" else "-"
            lines.append(f"| {variant} | {system} | {_fmt(a['sound'])} | {ds} | "
                         f"{_fmt(a['other'])} | {do} | {_fmt(e['sound'])} | {_fmt(e['other'])} |")
    weights = {v: b.get("audio_weight_by_seed") for v, b in summary["variants"].items()}
    lines += ["", ("Systems: `visual` = world-CLIP meanP (no audio); `audio-borrow` = + audio, "
                   "silent videos borrow the audio of the visually nearest training video (the "
                   "paper's rule); `audio-none` = silent videos get no audio term; "
                   "`audio-encode` = silence encoded as a sound; `w=1-borrow` = the same tower "
                   "with the paper's plain sum (w = 1) and borrowing. The `audio-*` rows use the "
                   f"audio weight w chosen per seed on the train world's val split: {weights}. "
                   "See docs/architecture.md (Audio) and docs/deviations.md (CLIP4VLA)."), ""]
    return "\n".join(lines)


def write_audio_results(summary: dict, folder: str | Path, command: str,
                        stem: str = "audio") -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.json`` into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / f"{stem}.md", folder / f"{stem}.json"
    md.write_text(audio_study_markdown(summary, command))
    js.write_text(json.dumps({"command": command, **summary}, indent=2) + "\n")
    return md, js
