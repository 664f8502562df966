"""world-CLIP: contrastive image-text pretraining of a small `transformers.CLIPModel` on the frames
of a synthetic pretraining world (`mumur pretrain CONFIG --out DIR`).

The recipe (a JSON file, e.g. `mumur/configs/pretrain/world-clip.json`) names three worlds by
seed: the pretraining world, a validation world (model selection during pretraining) and an
evaluation world (the report); the seeds must differ, so no rendered item is shared. Each world is
generated with `mumur.data.synthetic.generate` (real H.264 videos and JPEG images), decoded once
with the same reader as evaluation (`read_frames`, uniform segment centres) and resized +
centre-cropped with the same CLIP preprocessing (`ClipPreprocess.crop_uint8`) into a uint8 frame
cache `(N, S, S, 3)`: the model sees exactly what evaluation videos decode to.

Objective (CLIP, Radford et al. 2021, Fig. 3): symmetric InfoNCE over the batch with a learnable
temperature (initialised to 0.07, logit scale clipped at 100), AdamW with decoupled weight decay
on weights (not on gains, biases or the scale), linear warm-up then cosine decay. Deviations, all
stated in the model card:

1. Captions. A frame is paired with a caption drawn per sample: a spatial caption naming every
   object with its size, colour, shape and 3 x 3 grid position and the place (the facts visible
   in one frame, as web alt-text carries for real CLIP), one of the world's English image
   templates for the main object, or (video frames) one of its video templates (the weak
   video-level caption, as frame-level CLIP4Clip training sees).
2. Batches hold `frames_per_source` frames of each video (two frames of one scene differ only by
   the geometry of moving objects: hard negatives that teach position), and a pair (image i,
   text j) whose caption is also true of the image (same video and a template caption, same grid
   cells, or the same text) is removed from the softmax instead of being a false negative.
3. Auxiliary geometry regression (`objective.geometry_weight`, 0 disables it): a linear head on the
   L2-normalised image embedding regresses each object's position, radius and angle (cos, sin),
   objects in slots ordered by what is visible (shape, colour, size). Why: the downstream heads
   run on frozen per-frame features and must tell "moves left" from "moves right", "grows" from
   "shrinks", "rotates" from "stays still" from the sequence of frame features; the templates
   quantise position to a 3 x 3 grid and cannot name angle or scale, while the renderer knows
   them exactly. The head is discarded at export; the shipped model is a plain `CLIPModel`.

The run folder follows `Trainer` (log.jsonl, val.jsonl, checkpoints/, best/, model/); `best/` and
`model/` are ordinary CLIP folders (config.json, model.safetensors, tokenizer, preprocessor) that
`mumur.load_encoder(folder, modality=...)` reads. `export_clip_folder` writes the shipped copy
(fp16 storage).

Modules: `recipe` (the JSON recipe), `frames` (frame cache and batches), `model` (the pretrainer
and its loss), `export` (CLIP folders, run summary), `zero_shot` (the validation metric), `run`
(`pretrain`).
"""

from __future__ import annotations

from .export import TRAINING_SUMMARY, export_clip_folder, run_summary, save_clip_folder
from .frames import FrameTable, PretrainBatches, pixels, world_frames
from .model import WorldClipPretrainer, build_pretrainer
from .recipe import (
    ClipArchitecture,
    FrameDataSpec,
    ObjectiveSpec,
    PretrainRecipe,
    WorldSpec,
    load_recipe,
    recipe_from_dict,
)
from .run import pretrain
from .zero_shot import encode_frames, mean_item_features, zero_shot_retrieval

__all__ = [
    "TRAINING_SUMMARY",
    "ClipArchitecture",
    "FrameDataSpec",
    "FrameTable",
    "ObjectiveSpec",
    "PretrainBatches",
    "PretrainRecipe",
    "WorldClipPretrainer",
    "WorldSpec",
    "build_pretrainer",
    "encode_frames",
    "export_clip_folder",
    "load_recipe",
    "mean_item_features",
    "pixels",
    "pretrain",
    "recipe_from_dict",
    "run_summary",
    "save_clip_folder",
    "world_frames",
    "zero_shot_retrieval",
]
