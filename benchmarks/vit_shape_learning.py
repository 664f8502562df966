"""How fast does the world-CLIP vision tower learn the objects' shapes, given the labels?

A diagnostic for the world-CLIP model card's limits: linear probes on the pretrained tower read
shape near chance. This trains the recipe's ViT (`CLIPVisionModelWithProjection`, the architecture
of the packaged recipe, `--patch` overriding the patch side) from scratch with a linear
classifier on the shape of the object in one-object frames of the recipe's evaluation world
(train split; the label is unambiguous there), the most direct supervision there is, and scores
held-out test-split frames every `--every` steps. If the tower cannot learn shape this way within
a few hundred steps, a contrastive objective (whose shape signal is weaker) will not either.

    python benchmarks/vit_shape_learning.py --cache runs/world-clip-cache [--patch 16 8]
        [--steps 300] [--lr 5e-4]

Prints one line per evaluation and, as the last line, one JSON object with every curve.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from mumur.data.synthetic.world import SHAPES
from mumur.train.pretrain import load_recipe, world_frames
from mumur.train.pretrain.frames import pixels
from mumur.train.pretrain_report import default_recipe_path


def _one_object(table):
    rows = np.asarray([r for r in range(len(table.t))
                       if len(table.items[table.item[r]].scene.objects) == 1])
    labels = np.asarray([SHAPES.index(table.items[table.item[r]].scene.objects[0].shape)
                         for r in rows])
    return rows, labels


def curve(recipe, tables, patch: int, steps: int, lr: float, every: int, batch: int) -> list:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    m = recipe.model
    torch.manual_seed(0)
    config = CLIPVisionConfig(image_size=m.image_size, patch_size=patch,
                              hidden_size=m.vision_width, num_hidden_layers=m.vision_layers,
                              num_attention_heads=m.vision_heads,
                              intermediate_size=m.mlp_ratio * m.vision_width,
                              projection_dim=m.projection_dim)
    tower = CLIPVisionModelWithProjection(config)
    head = torch.nn.Linear(m.projection_dim, len(SHAPES))
    opt = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=lr, weight_decay=0.05)
    (tr_rows, tr_y), (te_rows, te_y) = (_one_object(tables[s]) for s in ("train", "test"))
    test_x = pixels(np.asarray(tables["test"].frames[te_rows]))
    rng = np.random.default_rng(0)

    def logits(x):  # unit-norm embedding scaled by sqrt(d), as the pretrainer's aux heads
        return head(F.normalize(tower(pixel_values=x).image_embeds, dim=-1)
                    * m.projection_dim ** 0.5)

    out, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        pick = np.sort(rng.choice(len(tr_rows), size=batch, replace=False))
        x = pixels(np.asarray(tables["train"].frames[tr_rows[pick]]))
        loss = F.cross_entropy(logits(x), torch.as_tensor(tr_y[pick]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            with torch.no_grad():
                acc = float((logits(test_x).argmax(1).numpy() == te_y).mean())
            point = {"patch": patch, "step": step, "train_loss": round(loss.item(), 4),
                     "test_shape_acc": round(100 * acc, 1),
                     "seconds": round(time.perf_counter() - start, 1)}
            print(point, flush=True)
            out.append(point)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", type=Path, default=default_recipe_path())
    parser.add_argument("--cache", type=Path, default=Path("runs/world-clip-cache"))
    parser.add_argument("--patch", type=int, nargs="+", default=[16, 8])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    world = recipe.evaluation_world
    tables = {s: world_frames(replace(world, split=s), args.cache / f"world-{world.seed}",
                              recipe.model.image_size, recipe.data.frames_per_video,
                              recipe.data.workers, False) for s in ("train", "test")}
    curves = {str(p): curve(recipe, tables, p, args.steps, args.lr, args.every, args.batch_size)
              for p in args.patch}
    print(json.dumps({"benchmark": "vit_shape_learning", "chance": round(100 / len(SHAPES), 1),
                      "lr": args.lr, "batch_size": args.batch_size,
                      "threads": torch.get_num_threads(), "machine": platform.machine(),
                      "curves": curves}))


if __name__ == "__main__":
    main()
