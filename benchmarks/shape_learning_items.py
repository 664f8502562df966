"""Can world-CLIP's ViT learn shape from frames at all, given enough distinct items and steps?

`vit_shape_learning.py` showed the recipe's ViT memorising ~225 one-object items of the evaluation
world without learning shape. This benchmark removes the item limit: it renders `--items` fresh
one-object frames with the world's own renderer (`sample_scene` cut to its main object,
`render_image` at the world's 128 px, bicubic down to the recipe's input side: what the CLIP
preprocessing does to a square frame; no video compression), and trains, on the shape label
alone, (a) the recipe's ViT (`CLIPVisionModelWithProjection`, the packaged architecture) and
(b) a small ConvNet with the same 192-d output (a locality prior the ViT lacks), both from scratch
with a linear classifier on the L2-normalised embedding scaled by sqrt(d) (as the pretrainer's
auxiliary heads). Held-out accuracy is measured on 1,000 frames of another seed (chance 20 %).

    python benchmarks/shape_learning_items.py [--items 10000] [--steps 1500] [--arch vit cnn]

Prints one line per evaluation and, as the last line, one JSON object with every curve.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from PIL import Image

from mumur.data.synthetic.render import RenderConfig, render_image
from mumur.data.synthetic.world import SHAPES, sample_scene
from mumur.train.pretrain import load_recipe
from mumur.train.pretrain.frames import pixels
from mumur.train.pretrain_report import default_recipe_path


def render(n: int, seed: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` one-object frames (n, side, side, 3) uint8 and their shape labels (n,)."""
    rng, cfg = np.random.default_rng(seed), RenderConfig()
    frames, labels = np.zeros((n, side, side, 3), np.uint8), np.zeros(n, np.int64)
    for i in range(n):
        scene = sample_scene(rng, "image")
        scene = replace(scene, objects=scene.objects[:1])
        image = render_image(scene, rng, cfg).resize((side, side), Image.Resampling.BICUBIC)
        frames[i], labels[i] = np.asarray(image), SHAPES.index(scene.objects[0].shape)
    return frames, labels


def tower(arch: str, recipe) -> torch.nn.Module:
    m = recipe.model
    if arch == "vit":
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        vit = CLIPVisionModelWithProjection(CLIPVisionConfig(
            image_size=m.image_size, patch_size=m.patch_size, hidden_size=m.vision_width,
            num_hidden_layers=m.vision_layers, num_attention_heads=m.vision_heads,
            intermediate_size=m.mlp_ratio * m.vision_width, projection_dim=m.projection_dim))

        class _Vit(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.vit = vit

            def forward(self, x):
                return self.vit(pixel_values=x).image_embeds
        return _Vit()
    layers, width = [], 3
    for out in (32, 64, 128, m.projection_dim):  # four stride-2 stages: 64 px -> 4 x 4
        layers += [torch.nn.Conv2d(width, out, 3, 2, 1), torch.nn.GroupNorm(8, out),
                   torch.nn.GELU(), torch.nn.Conv2d(out, out, 3, 1, 1),
                   torch.nn.GroupNorm(8, out), torch.nn.GELU()]
        width = out
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def curve(arch: str, recipe, train, test, steps: int, every: int, lr: float, batch: int) -> list:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = tower(arch, recipe)
    dim = recipe.model.projection_dim
    head = torch.nn.Linear(dim, len(SHAPES))
    opt = torch.optim.AdamW([*model.parameters(), *head.parameters()], lr=lr, weight_decay=0.05)
    test_x, out, start = pixels(test[0]), [], time.perf_counter()

    def logits(x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return head(F.normalize(model(x), dim=-1) * dim ** 0.5).float()

    for step in range(1, steps + 1):
        pick = rng.integers(0, len(train[1]), size=batch)
        loss = F.cross_entropy(logits(pixels(train[0][pick])), torch.as_tensor(train[1][pick]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            with torch.no_grad():
                acc = float((logits(test_x).argmax(1).numpy() == test[1]).mean())
            point = {"arch": arch, "step": step, "train_loss": round(loss.item(), 4),
                     "test_shape_acc": round(100 * acc, 1),
                     "seconds": round(time.perf_counter() - start, 1)}
            print(point, flush=True)
            out.append(point)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=str(default_recipe_path()))
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--arch", nargs="+", default=["vit", "cnn"], choices=["vit", "cnn"])
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    side = recipe.model.image_size
    start = time.perf_counter()
    train, test = render(args.items, 1, side), render(1000, 99, side)
    render_s = time.perf_counter() - start
    curves = {a: curve(a, recipe, train, test, args.steps, args.every, args.lr, args.batch_size)
              for a in args.arch}
    print(json.dumps({"benchmark": "shape_learning_items", "items": args.items,
                      "chance": round(100 / len(SHAPES), 1), "steps": args.steps,
                      "lr": args.lr, "batch_size": args.batch_size,
                      "render_seconds": round(render_s, 1), "threads": torch.get_num_threads(),
                      "machine": platform.machine(), "curves": curves}))


if __name__ == "__main__":
    main()
