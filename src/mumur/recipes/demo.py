"""`mumur demo`: the offline end-to-end job on the shipped world stack.

1. generate the synthetic world the heads train on (`DIR/corpus`, train/val/test splits) and
   independent test worlds (`DIR/worlds/`), real .mp4 + .jpg files with 15-language captions;
2. cache the frozen `world-clip` frame features once (the shared feature store, `DIR/cache`);
3. train the study's variants on the cached features, for each training seed: the default
   MuMUR DCM head (translate-train, `world-clip` English text, `world-m-clip` multilingual text),
   its English-only twin (zero-shot cross-lingual transfer), an order-blind mean-pooling head,
   and `world-clip` zero-shot (no training);
4. score every test caption (rank, top-1 item, search timestamp) and write the figures with
   intervals: `DIR/results.json` (DESIGN.md contract), `DIR/results.md` (or `--report`);
5. copy the default head's first seed to `DIR/model`, index the corpus's test split (never seen
   in training) into `DIR/index`, calibrate the `relevant` flag on the validation split
   (`DIR/model/relevance.json`, `mumur calibrate`; scratch index in `DIR/calibration`) and run
   example searches in several languages.

What runs is data: `mumur/configs/studies/demo.json` (worlds, seeds, variants) and the recipe it
names (`configs/recipes/world.json`); `recipes/study.py` is the engine.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from rich.console import Console

from ..errors import ConfigError

__all__ = ["EXAMPLE_QUERIES", "run_demo"]

# Example searches: (language, query). The test split is indexed, so these describe scenes that
# may or may not be there; the printout shows the best matches and their calibrated relevance.
EXAMPLE_QUERIES = [
    ("en", "a large red circle moves left on the beach"),
    ("de", "Ein blauer Stern dreht sich im Schnee."),
    ("fr", "Un petit carré jaune se déplace vers le haut dans l'herbe."),
    ("es", "Un corazón verde se hace más grande de noche."),
    ("ja", "白い三角形が夜に右に動いています。"),
    ("zh", "一个紫色的圆形在海滩上向下移动。"),
    ("ru", "Оранжевый квадрат движется влево на снегу."),
]


def _headline_table(console: Console, summary: dict) -> None:
    from rich.table import Table

    table = Table(title="test videos (mean ± std over seeds [95% interval])")
    for col in ("variant", "en t2v R@1", "non-en t2v R@1", "non-en / en", "motion agreement",
                "in shot"):
        table.add_column(col, justify="right")
    for name, v in summary["variants"].items():
        video = v["video"]
        en, other = video["languages"]["en"]["t2v"], video.get("non_en")
        motion = video.get("attributes_en", {}).get("motion")
        shot = video.get("in_shot_en")

        def fmt(m, key="R1"):
            if not m or m.get(key) is None:
                return "-"
            std = m.get(f"{key}_std", m.get("std") if key == "mean" else None)
            ci = m.get(f"{key}_ci95", m.get("ci95") if key == "mean" else None)
            return (f"{m[key]:.1f}" + (f" ± {std:.1f}" if std is not None else "")
                    + (f" [{ci[0]:.0f}, {ci[1]:.0f}]" if ci else ""))

        ratio = video.get("non_en_over_en")
        table.add_row(name + (" *" if name == summary.get("default") else ""), fmt(en),
                      fmt(other), f"{ratio['mean']:.2f}" if ratio else "-", fmt(motion, "mean"),
                      fmt(shot, "mean"))
    console.print(table)


def demo_results(summary: dict, model_dir: Path, timings: dict) -> dict:
    """`results.json` (DESIGN.md contract): the default variant's per-language figures (mean over
    seeds with `_std` / `_ci95`), attributes, timestamps, and every variant's summary."""
    default = summary["default"] or next(iter(summary["variants"]))
    v = summary["variants"][default]
    video, image = v["video"], v["image"]
    shot = video.get("in_shot_en")
    en, other = video["languages"]["en"]["t2v"]["R1"], video.get("non_en", {}).get("R1")
    return {
        "languages": video["languages"],
        "model": str(model_dir),
        "default_variant": default,
        "train_seconds": sum(v["train_seconds"]) / len(v["train_seconds"]),
        "media_type": "video",
        "summary": {"en_t2v_R1": en, "non_en_mean_t2v_R1": other,
                    "non_en_over_en": other / en if other is not None and en else None},
        "attributes": {k: m["mean"] / 100.0 for k, m in video.get("attributes_en", {}).items()},
        "timestamps": ({"in_shot": shot["mean"] / 100.0, "n": shot["n"]} if shot else None),
        "images": {"languages": image["languages"]} if image else None,
        "study": summary,
        "timings_seconds": timings,
    }


def run_demo(out: str | Path, *, study: str = "demo", seeds: list[int] | None = None,
             variants: list[str] | None = None, workers: int = 2,
             report: str | Path | None = None, console: Console | None = None) -> dict:
    """Run the whole offline job into `out` (module docstring). Returns results.json's content.

    Args:
        out: output folder; rerunning resumes (finished worlds, caches and runs are reused).
        study: packaged study name or study JSON file.
        seeds, variants: override the study's training seeds / restrict its variants.
        workers: processes for generation and decoding.
        report: markdown report path (default `out/results.md`); the study summary is written
            beside it with a .json suffix.
    """
    from .study import load_study, run_study
    from .study_report import study_markdown

    console = console or Console()
    out = Path(out)
    start = time.perf_counter()
    config = load_study(study).select(variants, seeds)
    default = config.default or next(iter(config.variants))
    if config.variants[default].get("zero_shot"):
        raise ConfigError(f"study {config.name}: the demo's default variant {default!r} must be "
                          "a trained head (it is copied to DIR/model and indexed)")
    console.rule(f"[bold]study {config.name}: {len(config.variants)} variants x "
                 f"{len(config.seeds)} seeds")
    summary = run_study(config, out, workers=workers, console=console)
    timings = {"study": time.perf_counter() - start}
    report = Path(report) if report else out / "results.md"
    report.parent.mkdir(parents=True, exist_ok=True)
    command = "mumur demo" + (f" --study {study}" if study != "demo" else "") + (
        f" --seeds {','.join(map(str, config.seeds))}" if seeds else "")
    report.write_text(study_markdown(summary, "Offline demo: MuMUR heads on the world stack",
                                     command))
    report.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    _headline_table(console, summary)

    first_run = out / "runs" / default.replace(" ", "_").replace("/", "-") / \
        f"seed-{config.seeds[0]}"
    model_dir = out / "model"
    chosen = Path(json.loads((first_run / "run.json").read_text())["model"])
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(chosen, model_dir)

    console.rule("[bold]index of the corpus's test split + example searches")
    t = time.perf_counter()
    index_dir = out / "index"
    _build_index(model_dir, out / "corpus", index_dir, console, workers)
    timings["index"] = time.perf_counter() - t
    t = time.perf_counter()
    relevance = _calibrate(model_dir, out, console)
    timings["calibration"] = time.perf_counter() - t
    results = demo_results(summary, model_dir, timings)
    results["index"] = str(index_dir)
    results["relevance"] = relevance
    results["examples"] = _example_searches(index_dir, console)
    timings["total"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    s = results["summary"]
    console.print(f"[bold]test videos ({config.default}), English t2v R@1 {s['en_t2v_R1']:.1f}; "
                  f"mean over the other languages {s['non_en_mean_t2v_R1']:.1f} "
                  f"({s['non_en_over_en']:.2f} x English)")
    console.print(f"wrote {out / 'results.json'} and {report} in {timings['total'] / 60:.1f} min")
    return results


def _test_media_paths(corpus: Path) -> list[Path]:
    from ..data import load_benchmark

    test = load_benchmark("synthetic", corpus, split="test")
    return [test.media_path(i) for i in range(len(test))]


def _build_index(model_dir: Path, corpus: Path, index_dir: Path, console: Console,
                 workers: int) -> None:
    """Index only the test split's files (a folder of links, so nothing seen in training is
    searchable)."""
    from ..index.builder import build_index

    staging = index_dir.parent / "test-media"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for path in _test_media_paths(corpus):
        target = staging / path.name
        try:
            target.symlink_to(path.resolve())
        except OSError:
            shutil.copy2(path, target)
    report = build_index([staging], index_dir, model=str(model_dir), num_workers=workers)
    console.print(report.summary())


def _calibrate(model_dir: Path, out: Path, console: Console) -> dict:
    """Calibrate the model's `relevant` flag on the corpus's validation split
    (`mumur.index.relevance.calibrate`, what `mumur calibrate` runs): writes
    `model/relevance.json`, which the index's searches then use."""
    from ..index.relevance import calibrate

    console.rule("[bold]relevance flag calibrated on the validation split")
    cal = calibrate(str(model_dir), out / "corpus", out / "calibration", splits=("val",))
    rows = {}
    for branch, rule in cal["rules"].items():
        f = cal["figures"][branch]
        rows[branch] = {"statistic": rule.statistic, "threshold": rule.threshold,
                        "supported": rule.supported,
                        **{k: None if isinstance(v, float) and v != v else v  # NaN: undefined
                           for k, v in f.items()}}
        head = (f"flag when {rule.statistic} >= {rule.threshold:.4f}" if rule.supported
                else "no threshold reaches the targets: nothing is flagged")
        console.print(f"  {branch}: {head} (validation: flagged relevant "
                      f"{f.get('flagged_precision')}, top relevant result flagged "
                      f"{f.get('top_relevant_flagged')}, no-match flagged "
                      f"{f.get('no_match_flagged')})")
    return {"path": str(cal["path"]), "branches": rows, "provenance": cal["provenance"]}


def _example_searches(index_dir: Path, console: Console) -> list[dict]:
    from ..index import Index

    index = Index.open(index_dir)
    examples = []
    for lang, query in EXAMPLE_QUERIES:
        response = index.search(query, k=3)
        console.print(f"[bold]\\[{lang}][/bold] {query}  ({response.took_ms:.0f} ms)")
        if not response.relevant:
            console.print("    (no result passes the relevance threshold; best matches:)")
        for hit in response.results:
            ts = f" @ {hit.timestamp:.1f}s" if hit.timestamp is not None else ""
            caption = _caption_of(index_dir, hit.path)
            console.print(f"    {hit.score:.3f} (z={hit.calibrated:.1f})  "
                          f"{Path(hit.path).name}{ts}  [dim]{caption}[/dim]")
        examples.append({"language": lang, "query": query,
                         "results": response.cli_records()})
    return examples


def _caption_of(index_dir: Path, path: str) -> str:
    """The English caption of an indexed demo file (for the printout only)."""
    global _CAPTIONS
    if _CAPTIONS is None:
        manifest = json.loads((index_dir.parent / "corpus" / "manifest.json").read_text())
        _CAPTIONS = {Path(it["path"]).name: it["captions"]["en"][0] for it in manifest["items"]}
    return _CAPTIONS.get(Path(path).name, "")


_CAPTIONS: dict | None = None
