"""The re-ranking trade-off: t2v R@1 of the two-stream search with its top K reordered by MLMM,
against the latency that adds per query (`mumur mlmm study`, benchmarks/rerank_tradeoff.py).

For every fine-tuning seed s (paired with the base study's two-stream run of seed s), on the
study's test galleries: each caption's two-stream scores give its shortlist (`QueryOutcomes.scores`,
the same head calls as search), MLMM scores the top max(K) pairs once, and every K re-ranks its
prefix (`rerank.reranked_ranks`) twice: by the ITM score fused with the two-stream score (the
weight per K chosen on validation captions at fine-tuning, `rerank.fusion`) and by the ITM score
alone. Outcomes are stored per seed (``rerank-seed-<s>.npz``) and the latency in
``latency.json``, so a rerun only redoes what is missing. Figures: R@1 mean +- std over seeds
with 95% paired-bootstrap intervals over captions (`eval.stats.summarize_ranks`), and the gain
over the two-stream result with its own paired interval (`eval.stats.paired_difference`).

Latency is measured through the public API on an index of the first gallery (`mumur.Index.search`
with and without `rerank=`), warm (every query run once first), median per query; the row
``all`` re-ranks the whole gallery, i.e. the single-stream model as the only stage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from ..fsutil import atomic_path, atomic_write_json
from .mlmm import MLMMRecipe, finetune, pretrain
from .study import load_study, study_variant_runs, study_worlds

__all__ = ["rerank_markdown", "rerank_study"]


def _seed_outcomes(recipe: MLMMRecipe, base_model: Path, mlmm: Path, galleries: list[Path],
                   cache_root: Path, workers: int) -> dict[str, np.ndarray]:
    """Ranks per language: ``<lang>/base`` (two-stream), ``<lang>/k<K>`` (the shortlist
    re-ranked by the fused score, the weight chosen on validation, ``fusion.json``) and
    ``<lang>/itm-k<K>`` (by the ITM score alone)."""
    from ..eval.runner import media_states
    from ..model import load_model
    from ..rerank import fuse_scores, load_reranker, reranked_ranks
    from .mlmm import world_rows
    from .mlmm_shortlist import cross_scores, shortlists

    model = load_model(base_model).eval()
    reranker = load_reranker(mlmm, cache_root / "frame_features", workers=workers)
    parts: dict[str, list[np.ndarray]] = {}
    sizes = []
    for gallery in galleries:
        ds, feats, mask = world_rows(gallery, "test", model.vision, cache_root,
                                     model.config.num_frames, workers)
        sl = shortlists(model, ds, media_states(model, feats, mask), max(recipe.k),
                        per_language=recipe.queries_per_language)
        sizes.append(sl.n_items)
        cross = cross_scores(reranker, sl, feats, mask)  # (n, max K): each pair scored once
        langs = np.asarray(sl.languages)
        for K in recipe.k:
            k = min(K, cross.shape[1])
            fused = fuse_scores(sl.scores[:, :k], cross[:, :k], reranker.weight(K))
            for key, scores in ((f"k{K}", fused), (f"itm-k{K}", cross[:, :k])):
                ranks = reranked_ranks(sl.base_ranks, sl.items, scores, sl.own, k)
                for lang in ds.languages:
                    parts.setdefault(f"{lang}/{key}", []).append(ranks[langs == lang])
        for lang in ds.languages:
            parts.setdefault(f"{lang}/base", []).append(sl.base_ranks[langs == lang])
    arrays = {key: np.concatenate(v).astype(np.int64) for key, v in parts.items()}
    arrays["n_items"] = np.asarray(sizes, dtype=np.int64)
    return arrays


def _latency(recipe: MLMMRecipe, base_model: Path, mlmm: Path, gallery: Path, out: Path,
             feature_root: Path, workers: int) -> dict:
    from ..data import load_benchmark
    from ..index import Index, build_index
    from ..rerank import load_reranker

    ds = load_benchmark("synthetic", gallery, split="test", media_types=["video"])
    index_dir = out / "latency-index"
    build_index([str(ds.media_path(i)) for i in range(len(ds))], index_dir, str(base_model),
                num_workers=workers, progress=False)
    # the study's feature store holds these videos' frames already (`mumur search --rerank`
    # keeps its own under INDEX/rerank-features, filled on first use)
    reranker = load_reranker(mlmm, feature_root, workers=workers)
    langs = ds.languages
    queries = []
    for i in range(recipe.latency_queries):
        lang = langs[i % len(langs)]
        texts, _ = ds.captions_for(lang)
        queries.append((texts[(i * 7) % len(texts)], lang))
    idx = Index(index_dir)
    try:
        def timed(**kw) -> float:
            for q, lang in queries:  # warm: model, engines, feature rows in memory
                idx.search(q, k=10, language=lang, **kw)
            times = []
            for q, lang in queries:
                start = time.perf_counter()
                idx.search(q, k=10, language=lang, **kw)
                times.append((time.perf_counter() - start) * 1e3)
            return float(np.median(times))

        base = timed()
        rows = {"two-stream": round(base, 3)}
        for K in list(recipe.k) + ["all"]:
            k = len(ds) if K == "all" else int(K)
            rows[str(K)] = round(timed(rerank=reranker, rerank_k=k), 3)
    finally:
        idx.close()
    return {"median_ms": rows, "gallery": len(ds), "queries": len(queries),
            "added_ms": {k: round(v - base, 3) for k, v in rows.items() if k != "two-stream"},
            "ratio": {k: round(v / base, 2) for k, v in rows.items() if k != "two-stream"}}


def _summary(recipe: MLMMRecipe, runs: list[dict[str, np.ndarray]], latency: dict,
             training: dict) -> dict:
    from ..eval.stats import paired_difference, summarize_ranks

    langs = sorted({k.split("/")[0] for k in runs[0] if "/" in k}, key=lambda x: (x != "en", x))
    n_items = int(sum(runs[0]["n_items"])) if "n_items" in runs[0] else None
    table: dict = {}
    for K in ["base"] + [f"{p}k{k}" for p in ("", "itm-") for k in recipe.k]:
        per_lang = {}
        for lang in langs:
            ranks = [r[f"{lang}/{K}"] for r in runs]
            entry = {"R1": summarize_ranks(ranks, n_items or 0)}
            if K != "base":
                entry["gain_R1"] = paired_difference(ranks, [r[f"{lang}/base"] for r in runs])
            per_lang[lang] = entry
        table[K] = per_lang
    return {"recipe": recipe.name, "base": f"{recipe.base_study}/{recipe.base_variant}",
            "seeds": list(recipe.seeds), "k": list(recipe.k), "languages": langs,
            "galleries": len(runs[0].get("n_items", [0])), "results": table,
            "latency": latency, "training": training}


def rerank_study(recipe: MLMMRecipe, base_out: str | Path, out: str | Path, *, workers: int = 1,
                 console: Console | None = None) -> dict:
    """Pre-train (once), fine-tune per seed, evaluate re-ranking and time it (module docstring).

    Args:
        recipe: the MLMM recipe.
        base_out: the base study's output folder (`mumur demo --out DIR`): its worlds, feature
            cache and finished runs are reused; missing runs of the base variant are trained.
        out: where MLMM's models, outcomes and ``results.json`` go.

    Returns:
        The summary (also ``out/results.json``).
    """
    from ..recipes.offline import load_recipe

    console = console or Console()
    base_out, out = Path(base_out), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    study = load_study(recipe.base_study).select([recipe.base_variant], list(recipe.seeds))
    train_world, galleries = study_worlds(study, load_recipe(study.recipe), base_out, workers,
                                          console)
    base_runs = study_variant_runs(study, base_out, workers, console)[recipe.base_variant]
    pretrained = pretrain(recipe, out, workers=workers, base_world=train_world,
                          cache_root=base_out / "cache", console=console)
    galleries = galleries[:recipe.galleries]
    runs, training = [], {}
    for seed in recipe.seeds:
        base_model = Path(json.loads((base_runs[seed].parent / "run.json").read_text())["model"])
        mlmm = finetune(recipe, pretrained, train_world, base_out / "cache",
                        out / f"finetuned-seed-{seed}", seed=seed, workers=workers,
                        base_model=base_model, console=console)
        done = out / f"rerank-seed-{seed}.npz"
        if not done.exists():
            arrays = _seed_outcomes(recipe, base_model, mlmm, galleries, base_out / "cache",
                                    workers)
            with atomic_path(done) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        runs.append(dict(np.load(done)))
        training[str(seed)] = json.loads((mlmm / "training.json").read_text())
    training["pretrain"] = json.loads((pretrained / "training.json").read_text())
    base0 = Path(json.loads((base_runs[recipe.seeds[0]].parent / "run.json").read_text())["model"])
    timed = out / "latency.json"  # measured once (delete it to time again)
    if not timed.exists():
        atomic_write_json(timed, _latency(recipe, base0, out / f"finetuned-seed-{recipe.seeds[0]}",
                                          galleries[0], out, base_out / "cache" / "frame_features",
                                          workers), indent=2)
    latency = json.loads(timed.read_text())
    summary = _summary(recipe, runs, latency, training)
    atomic_write_json(out / "results.json", summary, indent=2)
    return summary


def _cell(entry: dict) -> str:
    r = entry
    std = f" ± {r['R1_std']:.1f}" if "R1_std" in r else ""
    lo, hi = r["R1_ci95"]
    return f"{r['R1']:.1f}{std} [{lo:.1f}, {hi:.1f}]"


def _gain(entry: dict) -> str:
    std = f" ± {entry['std']:.1f}" if "std" in entry else ""
    lo, hi = entry["ci95"]
    return f"{entry['diff']:+.1f}{std} [{lo:+.1f}, {hi:+.1f}]"


def _weights(summary: dict, k: int) -> str:
    used = [summary["training"][str(s)].get("fusion", {}).get("weights", {}).get(str(k))
            for s in summary["seeds"]]
    return "/".join("-" if w is None else f"{w:g}" for w in used)


def _selection(summary: dict) -> str:
    parts = []
    for s in summary["seeds"]:
        sel = summary["training"][str(s)].get("selection")
        if sel:
            parts.append(f"seed {s}: step {sel['best_step']} (validation MRR {sel['best']:.3f}; "
                         + ", ".join(f"{a}: {b:.3f}" for a, b in sel["history"]) + ")")
    return "; ".join(parts) or "none (final weights)"


def rerank_markdown(summary: dict, command: str) -> str:
    """The trade-off tables (docs/results/rerank.md)."""
    res, lat = summary["results"], summary["latency"]
    langs = summary["languages"]
    first = res["base"]["en"]["R1"]
    lines = [
        "# Re-ranking the two-stream shortlist with MLMM (single-stream cross-encoder)", "",
        (f"Written by `{command}`. Base: the `{summary['base']}` runs (two-stream), one per "
         f"seed {summary['seeds']}, each paired with an MLMM fine-tuned with the same seed from "
         f"one pre-trained MLMM, on hard negatives from that run's train-split shortlists. Test: "
         f"{first['n_queries']} captions per language over {summary.get('galleries', 1)} "
         f"galleries ({first['n_candidates']} videos in all; the recipe's `galleries` "
         "and `queries_per_language` set them). Each cell: mean over seeds ± std [95% paired "
         "bootstrap interval over captions]; gains are re-ranked minus two-stream on the same "
         "captions."), "",
        ("**fused** orders the shortlist by (1 - w) z(two-stream) + w z(ITM), w chosen per K "
         "on the train world's validation captions only (`fusion.json`, weights listed per "
         "seed); **ITM** by MLMM's ITM logit alone (eq. 1). The fine-tuning checkpoint is "
         "also chosen on validation captions (ITM-order MRR)."), "",
        "## Quality against latency", "",
        (f"Latency: median per query through `mumur.Index.search` (fused re-ranking) on an index "
         f"of {lat['gallery']} videos ({lat['queries']} queries, every language, warm), this "
         f"CPU, 1 thread. Two-stream alone: {lat['median_ms']['two-stream']:.1f} ms."), "",
        ("| shortlist K | en t2v R@1 fused | en gain fused | non-en mean gain fused | w per seed "
         "| en gain ITM only | non-en mean gain ITM only | ms / query | added ms | x two-stream |"),
        "|---|---|---|---|---|---|---|---|---|---|",
        (f"| none (two-stream) | {_cell(res['base']['en']['R1'])} | - | - | - | - | - | "
         f"{lat['median_ms']['two-stream']:.1f} | - | 1.0 |")]

    def others(row: dict) -> str:
        return f"{np.mean([row[lang]['gain_R1']['diff'] for lang in langs if lang != 'en']):+.1f}"

    for k in summary["k"]:
        row, itm = res[f"k{k}"], res[f"itm-k{k}"]
        lines.append(f"| {k} | {_cell(row['en']['R1'])} | {_gain(row['en']['gain_R1'])} | "
                     f"{others(row)} | {_weights(summary, k)} | {_gain(itm['en']['gain_R1'])} | "
                     f"{others(itm)} | {lat['median_ms'][str(k)]:.1f} | "
                     f"{lat['added_ms'][str(k)]:.1f} | {lat['ratio'][str(k)]:.1f} |")
    lines.append(f"| all {lat['gallery']} (single-stream only) | - | - | - | - | - | - | "
                 f"{lat['median_ms']['all']:.1f} | {lat['added_ms']['all']:.1f} | "
                 f"{lat['ratio']['all']:.1f} |")
    for title, prefix in (("fused", ""), ("ITM only", "itm-")):
        lines += ["", (f"## t2v R@1 gain per language, {title} (mean ± std over seeds [95% "
                       "interval])"), "", "| K | " + " | ".join(langs) + " |",
                  "|---" * (len(langs) + 1) + "|"]
        for k in summary["k"]:
            lines.append(f"| {k} | " + " | ".join(_gain(res[f'{prefix}k{k}'][lang]['gain_R1'])
                                                  for lang in langs) + " |")
    lines += ["", "## Two-stream t2v R@1 per language", "", "| " + " | ".join(langs) + " |",
              "|---" * len(langs) + "|",
              "| " + " | ".join(f"{res['base'][lang]['R1']['R1']:.1f}" for lang in langs) + " |"]
    pre = summary["training"]["pretrain"]
    fine = [summary["training"][str(s)] for s in summary["seeds"]]
    lines += ["", f"Pre-training: {pre['steps']} steps (batch {pre['stage']['batch_size']}) in "
              f"{pre['seconds']:.0f} s, final losses {pre['final']}. Fine-tuning (ITM, hard "
              f"negatives): {fine[0]['steps']} steps (batch {fine[0]['stage']['batch_size']}), "
              + ", ".join(f"seed {s}: {f['seconds']:.0f} s, final ITM loss "
                          f"{f['final'].get('itm', float('nan')):.3f}"
                          for s, f in zip(summary["seeds"], fine))
              + f". Checkpoint selection: {_selection(summary)}."]
    return "\n".join(lines) + "\n"
