"""A student scored on the recipe's evaluation world (never used in training or selection)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...data.synthetic.parallel import caption_bitext
from .data import world_manifest
from .recipe import DistillRecipe

__all__ = ["evaluate_student"]


def evaluate_student(student, recipe: DistillRecipe, cache_dir: str | Path,
                     progress: bool = True, train_sentences: set[str] | None = None) -> dict:
    """Score a student on the recipe's evaluation world (never used in training or selection).

    Args:
        student: the text encoder to score.
        recipe: gives the teacher, the evaluation world, languages and frames per video.
        cache_dir: where the evaluation world is rendered (reused when already there).
        progress: progress bars.
        train_sentences: the student's training sentences (for `bitext_R1_unseen`).

    Returns:
        `{"world", "languages": {l: {"bitext_R1", "bitext_R5", "bitext_R1_unseen", "mse",
        "cosine", "t2v": t2v_metrics}}, "mean_non_en": {...}, "teacher_en_t2v": {...},
        "seen_fraction"}`; R@1 figures carry `*_ci95`, a 95% bootstrap interval over the
        evaluation items (one training run: the interval is that of the test sample only).
    """
    from ...encoders import load_encoder
    from ...eval.bitext import bitext_retrieval, crosslingual_t2v, media_embeddings, teacher_mse
    from ...eval.stats import bootstrap_ci

    languages = recipe.language_list
    spec = recipe.evaluation_world
    manifest, folder = world_manifest(spec, languages, Path(cache_dir), media=True,
                                      progress=progress)
    items, groups = caption_bitext(manifest, spec.split, languages)
    teacher_text = load_encoder(recipe.teacher, modality="text")
    vision = load_encoder(recipe.teacher, modality="vision")
    media = media_embeddings(vision, [str(folder / it["path"]) for it in items],
                             recipe.eval_frames, progress=progress)
    bitext = bitext_retrieval(student, groups, languages, seen=train_sentences)
    mse = teacher_mse(student, teacher_text, groups, languages)
    t2v = crosslingual_t2v(student, groups, media, languages)
    per_language = {}
    for lang in languages:
        row = {"bitext_R1": bitext.get(lang, {}).get("R1"),
               "bitext_R5": bitext.get(lang, {}).get("R5"),
               "bitext_R1_unseen": bitext.get(lang, {}).get("R1_unseen"),
               "bitext_n_unseen": bitext.get(lang, {}).get("n_unseen"),
               "mse": mse.get(lang, {}).get("mse"), "cosine": mse.get(lang, {}).get("cosine"),
               "t2v": t2v.get(lang)}
        per_language[lang] = row
    others = [lang for lang in languages if lang != "en"]

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    # Interval of a mean over languages: the languages describe the same items, so one bootstrap
    # resample of the items is applied to every language (`bootstrap_ci`'s rows are averaged).
    bitext_ranks = [bitext.get(lang, {}).pop("ranks", None) for lang in others]
    t2v_ranks = [(t2v.get(lang) or {}).pop("ranks", None) for lang in languages]
    t2v_others = [r for lang, r in zip(languages, t2v_ranks) if lang != "en" and r is not None]
    teacher = crosslingual_t2v(teacher_text, groups, media, ["en"]).get("en")
    if teacher is not None:
        teacher.pop("ranks", None)

    def joint_ci(rows):
        rows = [r for r in rows if r is not None]
        same = rows and all(len(r) == len(rows[0]) for r in rows)
        return list(bootstrap_ci(np.asarray(rows))) if same else None

    captions = [text for g in groups for text in g.captions.values()]
    return {
        "world": {"seed": spec.seed, "split": spec.split, "items": len(items),
                  "groups": len(groups), "frames": recipe.eval_frames},
        "languages": per_language,
        "mean_non_en": {
            "bitext_R1": mean(per_language[lang]["bitext_R1"] for lang in others),
            "bitext_R1_unseen": mean(per_language[lang]["bitext_R1_unseen"] for lang in others),
            "mse": mean(per_language[lang]["mse"] for lang in others),
            "t2v_R1": mean((per_language[lang]["t2v"] or {}).get("R1") for lang in others),
            "bitext_R1_ci95": joint_ci(bitext_ranks), "t2v_R1_ci95": joint_ci(t2v_others)},
        "teacher_en_t2v": teacher,
        "seen_fraction": (float(np.mean([c in train_sentences for c in captions]))
                          if train_sentences is not None and captions else None),
    }

