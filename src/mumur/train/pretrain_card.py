"""The model card of a pretrained world-CLIP (`mumur pretrain-report --card`): architecture, data,
objective with every deviation from CLIP that the recipe switches on, the training run, and the
evaluation report, all written from the recipe, the run summary and the report (no figure is typed
by hand)."""

from __future__ import annotations

from pathlib import Path

from .pretrain import PretrainRecipe

__all__ = ["ATTRIBUTES", "GEOMETRY", "render_model_card"]

#: Probed attributes and geometry fields (`pretrain_report`'s probe keys).
ATTRIBUTES = ("place", "shape", "colour", "size", "column", "row")
GEOMETRY = ("x", "y", "radius", "cos", "sin")


def _table(rows: list[list], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _deviations(recipe: PretrainRecipe) -> list[str]:
    """One numbered paragraph per deviation from CLIP's recipe that `recipe` switches on."""
    d, o = recipe.data, recipe.objective
    out = [f"Captions per frame: with probabilities {list(d.caption_mix)} a spatial caption "
           "(every object's size, colour, shape and 3 x 3 grid position, and the place: the "
           "single-frame facts web alt-text gives real CLIP), a world image template, or (video "
           "frames) a world video template (the weak video-level caption).",
           f"Batches hold {d.frames_per_source} frames per video (hard negatives that differ only "
           "by the objects' positions); pairs whose caption is also true of the image (same video "
           "and a template, same grid cells, or identical text) leave the softmax instead of "
           "acting as false negatives."]
    if d.grouped_share > 0:
        out.append(f"{round(100 * d.grouped_share)} % of each batch is filled with groups of "
                   f"{d.group_sources} sources sharing {' and '.join(d.group_by)} (of the main "
                   "object), the rest at random: a batch of 128 random world frames rarely holds "
                   "two captions that differ only in shape or position, so the loss never needs "
                   "them; web-scale batches hold such near misses all the time.")
    if o.cells_weight > 0:
        out.append(f"Auxiliary grid-cell classification (weight {o.cells_weight:g}): a linear "
                   "head on the normalised image embedding names the shape, colour and size "
                   "shown in each cell of the 3 x 3 grid (or empty), because the motion heads "
                   "downstream read positions from frozen per-frame features and 4000 steps of "
                   "128 pairs do not teach them by the contrastive loss alone (the previous release, "
                   "trained without grouped batches or this head, probed shape 29.8 % and grid "
                   "column 46.2 %, near chance: its card is in git at commit 7588903). The head "
                   "is not shipped.")
    if o.geometry_weight > 0:
        out.append(f"Auxiliary geometry regression (weight {o.geometry_weight:g}): a linear head "
                   "on the normalised image embedding regresses each object's position, radius "
                   "and angle in slots ordered by shape, colour and size. The head is not "
                   "shipped.")
    return [f"{k}. {text}" for k, text in enumerate(out, 1)]


def _limits(probe: dict, floor: dict, steps) -> list[str]:
    weak = [a for a in ATTRIBUTES if probe[a] is not None and probe[a] < 80]
    read = ", ".join(f"{a} {probe[a]} % (random init {floor[a]} %)" for a in ATTRIBUTES)
    out = [f"What the frozen frame features carry, from the probes above: {read}."
           + (f" Below 80 %: {', '.join(weak)}; retrieval and the heads on top get little of "
              "those from a frame." if weak else "")]
    out.append("Test captions name motion (\"moves left\"), which one frame cannot show: "
               "zero-shot retrieval of the mean frame feature can only use place, shape, colour "
               "and size; the motion heads trained on top read motion from the sequence of frame "
               "features.")
    out.append("Captions name only the main object; in scenes of 2-3 objects the text must bind "
               f"colour to shape, the hard part for a small model trained for {steps} steps.")
    out.append("English only; the multilingual tower is `world-m-clip`, distilled from this text "
               "tower.")
    return [f"- {line}" for line in out]


def render_model_card(report: dict, recipe: PretrainRecipe, summary: dict, folder: Path) -> str:
    """The model card (Markdown) of a pretrained world-CLIP, from its report and run summary.

    Args:
        report: `pretrain_report`'s result.
        recipe: the pretraining recipe.
        summary: the run's `training_summary.json` (steps, wall time, validations).
        folder: the model folder (for the weights' size).
    """
    m, w, v, e = recipe.model, recipe.world, recipe.validation_world, recipe.evaluation_world
    weights = folder / "model.safetensors"
    size_mb = weights.stat().st_size / 2**20 if weights.is_file() else float("nan")
    zs, probe, floor = report["zero_shot"], report["probe"]["model"], \
        report["probe"]["random_init"]
    steps, seconds = summary.get("steps"), summary.get("train_seconds")
    vals = summary.get("validations", [])
    zs_rows = [[k, d["R1"], d["R5"], d["R10"], d["MdR"], d["n_candidates"], d["n_queries"]]
               for k, d in zs.items()]
    probe_rows = [[a, probe[a], floor[a]] for a in ATTRIBUTES]
    probe_rows += [[f"{g} (R^2)", probe["geometry_r2"][g], floor["geometry_r2"][g]]
                   for g in GEOMETRY]
    val_rows = [[x["step"], round(x.get("zero_shot_R1", float("nan")), 1),
                 round(x.get("zero_shot_R5", float("nan")), 1),
                 round(x.get("logit_scale", float("nan")), 1)] for x in vals]
    t = recipe.train
    deviations = "\n".join(_deviations(recipe))
    limits = "\n".join(_limits(probe, floor, steps))
    return f"""# world-clip

A small CLIP (`transformers.CLIPModel`) pretrained contrastively on frames of mumur's synthetic
world: the offline stand-in for CLIP ViT-B/32. Load it with
`mumur.load_encoder("world-clip", modality="vision" | "text")` (the same code path as a hub CLIP
id) or `transformers.CLIPModel.from_pretrained(<this folder>)`. Weights are stored in fp16
({size_mb:.1f} MiB) and loaded as fp32.

## Architecture
- Vision: ViT, {m.image_size} x {m.image_size} px input, patch {m.patch_size}, width
  {m.vision_width}, {m.vision_layers} layers, {m.vision_heads} heads; CLIP preprocessing
  (shorter side bicubic to {m.image_size}, centre crop, CLIP mean/std).
- Text: causal transformer, width {m.text_width}, {m.text_layers} layers, {m.text_heads} heads,
  the OpenAI CLIP BPE tokenizer (49408 tokens), {m.context_length} positions, EOS pooling.
- Joint space: {m.projection_dim}-d, learnable temperature.

## Data
- Pretraining world: seed {w.seed}, {w.videos} videos + {w.images} images (H.264 / JPEG rendered
  by `mumur synth`, English captions), decoded with `read_frames` ({recipe.data.frames_per_video}
  uniformly sampled frames per video, as evaluation) into a uint8 cache.
- Model selection: zero-shot t2v R@1 on a validation world, seed {v.seed} ({v.videos} videos +
  {v.images} images, test split).
- Evaluation (below): world seed {e.seed} ({e.videos} videos + {e.images} images); never used for
  training or selection. Evaluation worlds must not use seeds {w.seed} or {v.seed}.

## Objective (and deviations from CLIP)
Symmetric InfoNCE with a learnable temperature (init 0.07, logit scale clipped at
{recipe.objective.max_logit_scale:g}), AdamW (lr {t.lr:g}, weight decay {t.weight_decay:g} on
weights only, betas {list(t.betas)}, eps {t.eps:g}), {t.warmup_steps} warm-up steps then cosine
decay, batch {t.batch_size}, {t.max_steps} steps, gradient clipping {t.grad_clip:g}. Deviations:

{deviations}

## Training run
- Command: `mumur pretrain src/mumur/configs/pretrain/world-clip.json --out runs/world-clip
  --export src/mumur/pretrained/world-clip` (resumes after a kill; world and frame cache under
  `runs/world-clip/cache`).
- Steps: {steps}; training wall time {seconds if seconds is None else round(seconds / 60, 1)} min
  on one core of a shared 2-core CPU (`benchmarks/pretrain_step.py` gives the step rate);
  exported checkpoint: `{summary.get("exported_from")}` of the run (best validation R@1 at step
  {summary.get("best_step")}).

{_table(val_rows, ["step", "val zero-shot R@1", "R@5", "logit scale"])}

## Evaluation (world seed {e.seed}; `mumur pretrain-report --card <this folder>/README.md`)
Zero-shot text -> item retrieval, test split, items = mean of L2-normalised frame features:

{_table(zs_rows, ["items", "R@1", "R@5", "R@10", "MdR", "candidates", "queries"])}

Linear probes per frame on frozen L2-normalised features (fit on train-split frames, scored on
test-split frames; shape, colour, size, grid column / row and geometry on one-object frames,
{probe["frames"]["train"]} / {probe["frames"]["test"]} frames), against a randomly initialised
model of the same architecture:

{_table(probe_rows, ["attribute", "world-clip", "random init"])}

Accuracy in %, geometry as R^2 of a ridge regression. Figures: `docs/results/world-clip.json`.

## Limits
{limits}
"""
