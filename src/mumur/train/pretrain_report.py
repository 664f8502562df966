"""Evaluation of a pretrained world-CLIP on the recipe's evaluation world (a seed never used for
pretraining or model selection): zero-shot retrieval and linear probes on frozen frame features
(`mumur pretrain-report`, writes `docs/results/world-clip.json`).

- Zero-shot: the test split's English captions rank the test items (videos and images); an item is
  the mean of its L2-normalised frame features (meanP); `t2v_metrics` R@1/5/10, MdR.
- Probes per frame: a multinomial logistic regression (L-BFGS, L2 penalty) on the frozen,
  L2-normalised frame features, fitted on the train split's frames, scored on the test split's.
  Place is probed on every frame; shape, colour, size and the object's 3 x 3 grid column and row
  (left / centre / right, top / middle / bottom) on frames of one-object scenes (with several
  objects "the" shape of a frame is undefined). Geometry probes (ridge regression, R^2):
  centre x, y, radius and angle (cos, sin) of the object in one-object frames: what the motion
  heads need from per-frame features.
- The same probes on a randomly initialised model of the same architecture give the floor.

Frames go through `mumur.load_encoder(...)` (the packaged name or a folder), the path every
downstream user takes.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from ..data.synthetic.frames import frame_views, grid_cell
from .pretrain_card import ATTRIBUTES, GEOMETRY, render_model_card
from .pretrain import (
    TRAINING_SUMMARY,
    PretrainRecipe,
    WorldSpec,
    build_pretrainer,
    encode_frames,
    load_recipe,
    world_frames,
    zero_shot_retrieval,
)

__all__ = ["fit_logistic_probe", "fit_ridge_probe", "frame_labels", "pretrain_report"]

_ATTRIBUTES = ATTRIBUTES
_GEOMETRY = GEOMETRY


def frame_labels(table) -> dict[str, np.ndarray]:
    """Per-frame labels of a `FrameTable`: attribute strings (None where undefined) and geometry.

    Returns:
        `{"place", "shape", "colour", "size", "column", "row"}` object arrays `(N,)` and
        `"geometry"` `(N, 5)`
        float (NaN for frames of several objects).
    """
    n = len(table.t)
    out = {a: np.empty(n, object) for a in _ATTRIBUTES}
    geometry = np.full((n, len(_GEOMETRY)), np.nan)
    for row in range(n):
        item = table.items[table.item[row]]
        out["place"][row] = item.scene.place
        if len(item.scene.objects) == 1:
            view = frame_views(item.scene, float(table.t[row]))[0]
            out["shape"][row], out["colour"][row], out["size"][row] = (view.shape, view.colour,
                                                                       view.size)
            out["row"][row], out["column"][row] = grid_cell(view.x, view.y)
            theta = math.radians(view.angle)
            geometry[row] = (view.x, view.y, view.radius, math.cos(theta), math.sin(theta))
    out["geometry"] = geometry
    return out


def fit_logistic_probe(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor,
                       test_y: np.ndarray, l2: float = 1e-4, steps: int = 200) -> float:
    """Top-1 accuracy (%) of a multinomial logistic regression fitted with L-BFGS.

    Args:
        train_x, test_x: `(n, d)` features.
        train_y, test_y: labels (any hashable values); test labels unseen in training count
            as errors.
        l2: weight of the L2 penalty on the weights (mean loss + l2 * ||W||^2).
        steps: L-BFGS iterations.
    """
    classes = sorted(set(train_y))
    index = {c: k for k, c in enumerate(classes)}
    y = torch.tensor([index[c] for c in train_y])
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    xs = (train_x - mean) / std
    linear = torch.nn.Linear(xs.shape[1], len(classes))
    opt = torch.optim.LBFGS(linear.parameters(), lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(xs), y) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        pred = linear((test_x - mean) / std).argmax(1).numpy()
    correct = [index.get(c, -1) == p for c, p in zip(test_y, pred)]
    return 100.0 * float(np.mean(correct))


def fit_ridge_probe(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor,
                    test_y: np.ndarray, l2: float = 1e-2) -> list[float]:
    """R^2 per target column of a ridge regression (closed form, standardised features).

    Args:
        train_x, test_x: `(n, d)` features.
        train_y, test_y: `(n, k)` targets.
        l2: ridge penalty (relative to the number of training rows).
    """
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    x = torch.cat([(train_x - mean) / std, torch.ones(len(train_x), 1)], 1).double()
    y = torch.as_tensor(train_y).double()
    eye = torch.eye(x.shape[1], dtype=torch.float64) * l2 * len(x)
    eye[-1, -1] = 0
    w = torch.linalg.solve(x.T @ x + eye, x.T @ y)
    xt = torch.cat([(test_x - mean) / std, torch.ones(len(test_x), 1)], 1).double()
    pred = (xt @ w).numpy()
    resid = ((test_y - pred) ** 2).sum(0)
    total = ((test_y - test_y.mean(0)) ** 2).sum(0)
    return [float(1 - r / t) for r, t in zip(resid, total)]


def _probes(train_f, train_l, test_f, test_l) -> dict:
    out = {}
    for attribute in _ATTRIBUTES:
        tr, te = train_l[attribute] != None, test_l[attribute] != None  # noqa: E711
        out[attribute] = None if tr.sum() < 2 or te.sum() < 1 else round(fit_logistic_probe(
            train_f[tr], train_l[attribute][tr], test_f[te], test_l[attribute][te]), 2)
    tr = ~np.isnan(train_l["geometry"][:, 0])
    te = ~np.isnan(test_l["geometry"][:, 0])
    r2 = [None] * len(_GEOMETRY) if tr.sum() < 2 or te.sum() < 2 else fit_ridge_probe(
        train_f[tr], train_l["geometry"][tr], test_f[te], test_l["geometry"][te])
    out["geometry_r2"] = {k: None if v is None else round(v, 3) for k, v in zip(_GEOMETRY, r2)}
    out["frames"] = {"train": int(tr.sum()), "test": int(te.sum())}
    return out


def _split(spec: WorldSpec, split: str) -> WorldSpec:
    from dataclasses import replace

    return replace(spec, split=split)


def pretrain_report(model: str = "world-clip", recipe_path=None, out=None, cache_dir=None,
                    progress: bool = True, card=None) -> dict:
    """Zero-shot retrieval and probes of a CLIP checkpoint on the recipe's evaluation world.

    Args:
        model: a packaged name (`world-clip`) or a CLIP folder, loaded with `load_encoder`.
        recipe_path: the pretraining recipe (default: the packaged world-clip recipe).
        out: JSON file to write (skipped when None).
        cache_dir: world / frame cache folder (default `runs/world-clip-cache`).
        progress: show progress bars.
        card: write the model card (Markdown) here, from this report and the model folder's
            `training_summary.json`.

    Returns:
        The report: `{"model", "recipe", "evaluation_world", "zero_shot": {"all", "videos"},
        "probe": {"model": {...}, "random_init": {...}}, "counts", "seconds"}`.
    """
    from .. import load_encoder

    start = time.perf_counter()
    recipe_path = Path(recipe_path) if recipe_path else default_recipe_path()
    recipe: PretrainRecipe = load_recipe(recipe_path)
    cache = Path(cache_dir) if cache_dir else Path("runs") / "world-clip-cache"
    world = recipe.evaluation_world
    folder = cache / f"world-{world.seed}"
    size, per_video = recipe.model.image_size, recipe.data.frames_per_video
    tables = {s: world_frames(_split(world, s), folder, size, per_video, recipe.data.workers,
                              progress) for s in ("train", "test")}
    vision = load_encoder(model, modality="vision")
    text = load_encoder(model, modality="text")

    def image_fn(pixel_values):
        return vision(pixel_values)

    def text_fn(texts):
        return text(list(texts))

    with torch.no_grad():
        features = {s: encode_frames(image_fn, t.frames) for s, t in tables.items()}
        zero_shot = {"all": zero_shot_retrieval(image_fn, text_fn, tables["test"],
                                                features["test"])}
        videos, rows = _videos_only(tables["test"])
        zero_shot["videos"] = zero_shot_retrieval(image_fn, text_fn, videos,
                                                  features["test"][rows])
        random_clip = build_pretrainer(recipe).eval()
        random_features = {s: encode_frames(random_clip.image_embeds, t.frames)
                           for s, t in tables.items()}
    labels = {s: frame_labels(t) for s, t in tables.items()}
    probe = {"model": _probes(features["train"], labels["train"], features["test"],
                              labels["test"]),
             "random_init": _probes(random_features["train"], labels["train"],
                                    random_features["test"], labels["test"])}
    report = {
        "model": model, "model_identity": vision.identity, "recipe": str(recipe_path.name),
        "evaluation_world": {"seed": world.seed, "videos": world.videos, "images": world.images,
                             "test_fraction": world.test_fraction},
        "counts": {"test_items": len(tables["test"].items),
                   "test_videos": len(videos.items),
                   "train_frames": int(len(tables["train"].t)),
                   "test_frames": int(len(tables["test"].t))},
        "zero_shot": {k: {m: (round(v, 2) if isinstance(v, float) else v) for m, v in d.items()}
                      for k, d in zero_shot.items()},
        "probe": probe,
        "protocol": "zero-shot: test-split English captions vs test items (mean of frame "
                    "features); probes: logistic regression / ridge on frozen L2-normalised "
                    "frame features, fit on train-split frames, scored on test-split frames; "
                    "shape/colour/size/geometry on one-object frames",
        "seconds": round(time.perf_counter() - start, 1),
        "machine": platform.machine(),
    }
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if card is not None:
        from ..encoders import PACKAGED_CHECKPOINTS, packaged_checkpoint

        folder = Path(packaged_checkpoint(model) if model in PACKAGED_CHECKPOINTS else model)
        summary_path = folder / TRAINING_SUMMARY
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        Path(card).write_text(render_model_card(report, recipe, summary, folder),
                              encoding="utf-8")
    return report


def _videos_only(table):
    from dataclasses import replace

    keep_items = [k for k, p in enumerate(table.items) if p.media_type == "video"]
    remap = {old: new for new, old in enumerate(keep_items)}
    rows = np.asarray([r for r in range(len(table.item)) if int(table.item[r]) in remap])
    videos = replace(table, frames=table.frames[rows],
                     item=np.asarray([remap[int(table.item[r])] for r in rows]),
                     t=table.t[rows], items=[table.items[k] for k in keep_items],
                     manifest={**table.manifest,
                               "items": [table.manifest["items"][k] for k in keep_items]})
    return videos, torch.as_tensor(rows)


def default_recipe_path() -> Path:
    """The packaged world-clip recipe."""
    return Path(__file__).resolve().parent.parent / "configs" / "pretrain" / "world-clip.json"
