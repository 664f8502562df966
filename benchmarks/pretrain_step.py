"""world-CLIP pretraining throughput: optimiser steps of the packaged recipe's model on its real
batches (CPU by default).

One step = `WorldClipPretrainer.compute_loss` (image tower on the batch's frames, text tower on
its captions, symmetric InfoNCE with the true-pair mask, geometry head) + backward + gradient
clipping + AdamW, through the same `Trainer.train_step` the run uses. Batches come from a small
world generated with the recipe's model settings (the throughput does not depend on the world's
size; caption lengths and the data pipeline's cost do, so they are real).

    python benchmarks/pretrain_step.py [--recipe PATH] [--steps 10] [--threads 2]
        [--batch-size 128]

Prints one line per setting and, as the last line, one JSON object with the same figures. The
wall time of the recorded run is in its `log.jsonl` (`seconds`); on a shared machine the two
differ by the share of the cores the run got.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from mumur.train.pretrain import (
    PretrainBatches,
    WorldSpec,
    build_pretrainer,
    load_recipe,
    world_frames,
)
from mumur.train.pretrain_report import default_recipe_path
from mumur.train.trainer import Trainer


def measure(recipe, batch_size: int, steps: int, warmup: int, cache: Path) -> dict:
    """Time `steps` training steps after `warmup` untimed ones (data building included)."""
    spec = WorldSpec(seed=recipe.world.seed, videos=60, images=20)
    table = world_frames(spec, cache, recipe.model.image_size, recipe.data.frames_per_video,
                         recipe.data.workers, progress=False)
    train = dataclasses.replace(recipe.train, batch_size=batch_size, validate=False,
                                warmup_steps=0,
                                progress=False, max_steps=warmup + steps)
    model = build_pretrainer(recipe)
    batches = PretrainBatches(table, model.tokenizer, batch_size,
                              dataclasses.replace(recipe.data, steps_per_epoch=warmup + steps),
                              recipe.objective.geometry_slots, train.seed,
                              recipe.model.context_length)
    trainer = Trainer(model, batches, train, cache / "run")
    for i in range(warmup):
        trainer.train_step(batches.batch(0, i))
    start = time.perf_counter()
    data_seconds = 0.0
    for i in range(warmup, warmup + steps):
        t0 = time.perf_counter()
        batch = batches.batch(0, i)
        data_seconds += time.perf_counter() - t0
        record = trainer.train_step(batch)
    seconds = time.perf_counter() - start
    return {"batch_size": batch_size, "steps": steps, "s_per_step": seconds / steps,
            "steps_per_s": steps / seconds, "samples_per_s": batch_size * steps / seconds,
            "data_ms_per_step": 1000 * data_seconds / steps,
            "parameters": sum(p.numel() for p in model.clip.parameters()),
            "final_loss": record["loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", type=Path, default=default_recipe_path())
    parser.add_argument("--batch-size", type=int, nargs="+", default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.recipe)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch_size in args.batch_size or [recipe.train.batch_size]:
            r = measure(recipe, batch_size, args.steps, args.warmup, Path(tmp))
            results.append(r)
            print(f"world-clip {recipe.model.image_size}px/{recipe.model.patch_size}, "
                  f"B={batch_size}: {r['s_per_step']:.2f} s/step, {r['samples_per_s']:.0f} "
                  f"pairs/s (data {r['data_ms_per_step']:.0f} ms/step), "
                  f"{r['parameters'] / 1e6:.1f} M parameters")
    summary = {"benchmark": "pretrain_step", "recipe": args.recipe.name,
               "threads": args.threads, "torch": torch.__version__,
               "cpu": platform.processor() or platform.machine(), "results": results}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
