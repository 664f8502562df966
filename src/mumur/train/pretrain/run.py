"""`pretrain(recipe_path, out)`: build the worlds' frame caches and the model, then train with
the `Trainer`, selecting on zero-shot R@1 on the validation world."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ...fsutil import atomic_write_text
from ..trainer import Trainer, TrainResult
from .frames import PretrainBatches, world_frames
from .model import WorldClipPretrainer, build_pretrainer
from .recipe import load_recipe
from .zero_shot import zero_shot_retrieval

__all__ = ["pretrain"]


def _text_fn(model: WorldClipPretrainer, context_length: int):
    def run(texts):
        enc = model.tokenizer(list(texts), padding=True, truncation=True,
                              max_length=context_length, return_tensors="pt")
        device = next(model.parameters()).device
        return model.text_embeds(enc["input_ids"].to(device),
                                 enc["attention_mask"].to(device)).cpu()
    return run


def _image_fn(model: WorldClipPretrainer):
    def run(pixel_values):
        device = next(model.parameters()).device
        return model.image_embeds(pixel_values.to(device)).cpu()
    return run


def pretrain(recipe_path, out, resume: bool = True, cache_dir=None,
             progress: bool | None = None) -> TrainResult:
    """Run a pretraining recipe into `out` (resuming from its latest checkpoint when present).

    Args:
        recipe_path: the recipe JSON file.
        out: run folder (log.jsonl, val.jsonl, checkpoints/, best/, model/, recipe.json).
        resume: continue from `out/checkpoints/latest.json` when present.
        cache_dir: where worlds and frame caches live (default `out/cache`); reused across runs.
        progress: override the recipe's `train.progress`.

    Returns:
        The trainer's `TrainResult` (`best_model` is the CLIP folder with the best zero-shot R@1
        on the validation world).
    """
    recipe = load_recipe(recipe_path)
    if progress is not None:
        recipe = dataclasses.replace(recipe, train=dataclasses.replace(recipe.train,
                                                                       progress=progress))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    show = recipe.train.progress
    atomic_write_text(out / "recipe.json", json.dumps(recipe.to_dict(), indent=2) + "\n")
    size, per_video = recipe.model.image_size, recipe.data.frames_per_video
    table = world_frames(recipe.world, cache / f"world-{recipe.world.seed}", size, per_video,
                         recipe.data.workers, show)
    val_table = world_frames(recipe.validation_world,
                             cache / f"world-{recipe.validation_world.seed}", size, per_video,
                             recipe.data.workers, show)
    model = build_pretrainer(recipe)
    batches = PretrainBatches(table, model.tokenizer, recipe.train.batch_size, recipe.data,
                              recipe.objective.geometry_slots, recipe.train.seed,
                              recipe.model.context_length)
    context = recipe.model.context_length

    def evaluate(m: WorldClipPretrainer) -> dict:
        metrics = zero_shot_retrieval(_image_fn(m), _text_fn(m, context), val_table)
        return {f"zero_shot_{k}": v for k, v in metrics.items() if k in ("R1", "R5", "R10")} | {
            "logit_scale": float(m.clip.logit_scale.exp())}

    trainer = Trainer(model, batches, recipe.train, out, evaluate_fn=evaluate)
    return trainer.fit(resume=resume)
