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
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ..config import config_from_dict, config_to_dict, read_json
from ..data.synthetic import SynthConfig, build_manifest, generate, plan_corpus
from ..data.synthetic.frames import (
    GEOMETRY_FIELDS,
    frame_time,
    frame_views,
    geometry_targets,
    grid_cell,
    spatial_caption,
    template_caption,
)
from ..errors import ConfigError
from ..losses import LossOutput, weighted_loss
from .config import TrainConfig, train_config_from_dict
from .trainer import Trainer, TrainResult, atomic_write_text

__all__ = [
    "ClipArchitecture",
    "FrameDataSpec",
    "FrameTable",
    "ObjectiveSpec",
    "PretrainBatches",
    "PretrainRecipe",
    "WorldClipPretrainer",
    "WorldSpec",
    "export_clip_folder",
    "load_recipe",
    "pretrain",
    "run_summary",
    "save_clip_folder",
    "world_frames",
    "zero_shot_retrieval",
]

_SPATIAL, _IMAGE_TEMPLATE, _VIDEO_TEMPLATE = 0, 1, 2
# Rough standardisation of the geometry targets (present, x, y, radius, cos, sin).
_GEOMETRY_MEAN = torch.tensor([0.6, 0.5, 0.5, 0.13, 0.0, 0.0])
_GEOMETRY_STD = torch.tensor([0.5, 0.25, 0.25, 0.05, 0.7, 0.7])


# ----------------------------------------------------------------------------------- recipe

@dataclass(frozen=True)
class WorldSpec:
    """A synthetic world (English captions, default render format).

    Args:
        seed: world seed; worlds with different seeds share no rendered item.
        videos, images: item counts.
        val_fraction, test_fraction: split fractions (see `SynthConfig`).
        split: which split's items are used ("all", "train", "val", "test").
    """

    seed: int
    videos: int
    images: int
    val_fraction: float = 0.0
    test_fraction: float = 0.0
    split: str = "all"

    def synth_config(self) -> SynthConfig:
        return SynthConfig(videos=self.videos, images=self.images, seed=self.seed,
                           languages=("en",), val_fraction=self.val_fraction,
                           test_fraction=self.test_fraction)


@dataclass(frozen=True)
class ClipArchitecture:
    """A small CLIP (ViT image tower, causal transformer text tower); `clip_config()` gives the
    `transformers.CLIPConfig`.

    Args:
        image_size, patch_size: input side and ViT patch side.
        vision_width, vision_layers, vision_heads: image tower.
        text_width, text_layers, text_heads: text tower (CLIP BPE vocabulary, 49408 tokens).
        mlp_ratio: MLP width / model width in both towers.
        context_length: text positions (CLIP's 77).
        projection_dim: joint embedding size.
        logit_scale_init: initial log logit scale (CLIP: log(1 / 0.07)).
    """

    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 192
    vision_layers: int = 4
    vision_heads: int = 3
    text_width: int = 192
    text_layers: int = 3
    text_heads: int = 3
    mlp_ratio: int = 4
    context_length: int = 77
    projection_dim: int = 192
    logit_scale_init: float = 2.6592

    def clip_config(self):
        from transformers import CLIPConfig

        vision = dict(image_size=self.image_size, patch_size=self.patch_size,
                      hidden_size=self.vision_width, num_hidden_layers=self.vision_layers,
                      num_attention_heads=self.vision_heads,
                      intermediate_size=self.mlp_ratio * self.vision_width)
        text = dict(vocab_size=49408, hidden_size=self.text_width,
                    num_hidden_layers=self.text_layers, num_attention_heads=self.text_heads,
                    intermediate_size=self.mlp_ratio * self.text_width,
                    max_position_embeddings=self.context_length,
                    bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
        return CLIPConfig(vision_config=vision, text_config=text,
                          projection_dim=self.projection_dim,
                          logit_scale_init_value=self.logit_scale_init)


@dataclass(frozen=True)
class FrameDataSpec:
    """How pretraining pairs are drawn.

    Args:
        frames_per_video: frames decoded per video (uniform segment centres, as evaluation).
        frames_per_source: frames of one video in a batch (hard negatives; images give one).
        steps_per_epoch: batches per "epoch" (validation runs after each).
        caption_mix: probabilities of (spatial caption, image template, video template); image
            items give the video share to the image templates.
        workers: processes for rendering and decoding the worlds.
    """

    frames_per_video: int = 12
    frames_per_source: int = 2
    steps_per_epoch: int = 400
    caption_mix: tuple[float, float, float] = (0.5, 0.25, 0.25)
    workers: int = 2


@dataclass(frozen=True)
class ObjectiveSpec:
    """Loss settings.

    Args:
        geometry_weight: weight of the auxiliary geometry regression (0 = pure CLIP loss).
        geometry_slots: object slots of the geometry head (the world has at most 3 objects).
        max_logit_scale: clip of the learnable logit scale (CLIP: 100).
    """

    geometry_weight: float = 0.5
    geometry_slots: int = 3
    max_logit_scale: float = 100.0


@dataclass(frozen=True)
class PretrainRecipe:
    """A whole pretraining recipe (`mumur pretrain CONFIG`)."""

    name: str
    world: WorldSpec
    validation_world: WorldSpec
    evaluation_world: WorldSpec
    model: ClipArchitecture = field(default_factory=ClipArchitecture)
    data: FrameDataSpec = field(default_factory=FrameDataSpec)
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        seeds = [self.world.seed, self.validation_world.seed, self.evaluation_world.seed]
        if len(set(seeds)) != 3:
            raise ConfigError(f"recipe {self.name!r}: the pretraining, validation and evaluation "
                              f"worlds need different seeds, got {seeds}")
        if abs(sum(self.data.caption_mix) - 1.0) > 1e-6 or min(self.data.caption_mix) < 0:
            raise ConfigError(f"data.caption_mix: must be 3 probabilities summing to 1, got "
                              f"{self.data.caption_mix}")

    def to_dict(self) -> dict:
        out = config_to_dict(self)
        out["train"] = self.train.to_dict()
        return out


_SECTIONS = {"world": WorldSpec, "validation_world": WorldSpec, "evaluation_world": WorldSpec,
             "model": ClipArchitecture, "data": FrameDataSpec, "objective": ObjectiveSpec}


def recipe_from_dict(data: dict) -> PretrainRecipe:
    """Build a `PretrainRecipe` from its JSON object (unknown keys raise `ConfigError`)."""
    if not isinstance(data, dict):
        raise ConfigError(f"pretraining recipe: expected a JSON object, got {type(data).__name__}")
    allowed = {"name", "train", *_SECTIONS}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"pretraining recipe: unknown section(s) {unknown}; valid: "
                          f"{sorted(allowed)}")
    for key in ("name", "world", "validation_world", "evaluation_world"):
        if key not in data:
            raise ConfigError(f"pretraining recipe: missing {key!r}")
    sections = {k: config_from_dict(cls, data[k], k) for k, cls in _SECTIONS.items() if k in data}
    train = train_config_from_dict(data.get("train", {}))
    return PretrainRecipe(name=str(data["name"]), train=train, **sections)


def load_recipe(path) -> PretrainRecipe:
    """Read a pretraining recipe JSON file.

    Args:
        path: the file (e.g. `mumur/configs/pretrain/world-clip.json`).

    Returns:
        The recipe.

    Raises:
        ConfigError: unreadable file, unknown keys, bad values.
    """
    try:
        return recipe_from_dict(read_json(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# ------------------------------------------------------------------------------ frame cache

@dataclass
class FrameTable:
    """Decoded, CLIP-cropped frames of a world.

    Attributes:
        frames: `(N, S, S, 3)` uint8 (memory-mapped).
        item: `(N,)` int, the index in `items` of each frame's item.
        t: `(N,)` float32, each frame's clip time in [0, 1] (images 0).
        items: the planned items (scene, split, media type) of the world.
        manifest: the world's manifest (captions).
        root: the world's folder.
    """

    frames: np.ndarray
    item: np.ndarray
    t: np.ndarray
    items: list
    manifest: dict
    root: Path

    def rows_of(self) -> list[np.ndarray]:
        """Frame rows per item, in time order."""
        order = np.argsort(self.item, kind="stable")
        bounds = np.searchsorted(self.item[order], np.arange(len(self.items) + 1))
        return [order[bounds[k]:bounds[k + 1]] for k in range(len(self.items))]


def _decode_item(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Decode one item into CLIP crops and clip times (runs in a worker process)."""
    from ..media.decode import media_type_of, read_frames
    from ..media.transforms import ClipPreprocess

    path, num_frames, image_size, fps, total_frames = job
    sampled = read_frames(path, num_frames)
    crop = ClipPreprocess(image_size)
    crops = np.stack([crop.crop_uint8(im) for im in sampled.frames])  # (k, S, S, 3)
    times = [frame_time(min(total_frames - 1, round(ts * fps)), total_frames)
             for ts in sampled.timestamps]
    if media_type_of(path) == "image":
        times = [0.0] * len(crops)
    return crops, np.asarray(times, np.float32)


def _ensure_world(spec: WorldSpec, folder: Path, workers: int, progress: bool) -> tuple:
    cfg = spec.synth_config()
    planned = plan_corpus(cfg)
    manifest = build_manifest(cfg, planned)
    path = folder / "manifest.json"
    if not (path.is_file() and json.loads(path.read_text(encoding="utf-8")) == manifest):
        generate(folder, cfg, workers=workers, progress=progress)
    return cfg, planned, manifest


def world_frames(spec: WorldSpec, folder, image_size: int, frames_per_video: int,
                 workers: int = 2, progress: bool = True) -> FrameTable:
    """Generate (if needed) a world in `folder/world` and its frame cache in `folder`.

    Both are reused when present and matching: the world when its manifest equals the one the
    spec describes, the cache when its `frames-*.json` records the same world and settings.

    Args:
        spec: the world.
        folder: cache folder of this world.
        image_size: crop side S (the model's input size).
        frames_per_video: frames per video (uniform segment centres).
        workers: render / decode processes.
        progress: show progress bars.

    Returns:
        The `FrameTable` of the items of `spec.split`.
    """
    from tqdm import tqdm

    folder = Path(folder)
    cfg, planned, manifest = _ensure_world(spec, folder / "world", workers, progress)
    keep = [k for k, p in enumerate(planned) if spec.split in ("all", p.split)]
    items = [planned[k] for k in keep]
    key = {"world": dataclasses.asdict(spec), "image_size": image_size,
           "frames_per_video": frames_per_video}
    stem = f"frames-{spec.split}-{image_size}px-{frames_per_video}f"
    info_path, frames_path = folder / f"{stem}.json", folder / f"{stem}.npy"
    if info_path.is_file() and frames_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("key") == key:
            return FrameTable(np.load(frames_path, mmap_mode="r"), np.asarray(info["item"]),
                              np.asarray(info["t"], np.float32), items,
                              {**manifest, "items": [manifest["items"][k] for k in keep]},
                              folder / "world")
    render = cfg.render
    jobs = [(str(folder / "world" / p.path), frames_per_video, image_size, render.fps,
             render.num_frames) for p in items]
    parts = []
    bar = tqdm(total=len(jobs), desc=f"decode world {spec.seed}", unit="item",
               disable=not progress)
    if workers <= 1:
        for job in jobs:
            parts.append(_decode_item(job))
            bar.update()
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for part in pool.map(_decode_item, jobs, chunksize=16):
                parts.append(part)
                bar.update()
    bar.close()
    frames = np.concatenate([p[0] for p in parts])
    item = np.concatenate([np.full(len(p[0]), k) for k, p in enumerate(parts)])
    t = np.concatenate([p[1] for p in parts])
    tmp = frames_path.with_name(f".{frames_path.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, frames)
    os.replace(tmp, frames_path)
    atomic_write_text(info_path, json.dumps({"key": key, "item": item.tolist(),
                                             "t": [float(x) for x in t]}))
    return FrameTable(np.load(frames_path, mmap_mode="r"), item, t.astype(np.float32), items,
                      {**manifest, "items": [manifest["items"][k] for k in keep]},
                      folder / "world")


# ---------------------------------------------------------------------------------- batches

class PretrainBatches:
    """Image-text pairs of a `FrameTable` as a `BatchSource` (batch `i` of epoch `e` is a pure
    function of `(seed, e, i)`).

    Each batch is filled with sources (videos and images) in a seeded random order; a video gives
    `frames_per_source` distinct frames, an image its one frame. Every sample draws its caption
    kind by `caption_mix`.

    Args:
        table: the frames.
        tokenizer: the CLIP tokenizer.
        batch_size: pairs per batch.
        spec: sampling settings.
        slots: geometry slots.
        seed: base seed.
        context_length: token limit.
    """

    def __init__(self, table: FrameTable, tokenizer, batch_size: int, spec: FrameDataSpec,
                 slots: int = 3, seed: int = 0, context_length: int = 77):
        self.table = table
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.spec = spec
        self.slots = slots
        self.seed = seed
        self.context_length = context_length
        self.rows = table.rows_of()
        self._plans: dict[int, list[np.ndarray]] = {}

    def num_batches(self) -> int:
        return self.spec.steps_per_epoch

    def _plan(self, epoch: int) -> list[np.ndarray]:
        if epoch in self._plans:
            return self._plans[epoch]
        rng = np.random.default_rng([self.seed, epoch, 0])
        batches, current, order = [], [], np.empty(0, int)
        while len(batches) < self.spec.steps_per_epoch:
            if len(order) == 0:
                order = rng.permutation(len(self.rows))
            source, order = int(order[0]), order[1:]
            rows = self.rows[source]
            take = min(len(rows), self.spec.frames_per_source, self.batch_size - len(current))
            current.extend(int(r) for r in rng.choice(rows, size=take, replace=False))
            if len(current) == self.batch_size:
                batches.append(np.asarray(current))
                current = []
        self._plans = {epoch: batches}  # one epoch at a time is all the trainer asks for
        return batches

    def batch(self, epoch: int, index: int) -> dict:
        rows = self._plan(epoch)[index]  # (B,)
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        texts, kinds, cells, targets = [], [], [], []
        for row in rows:
            item = self.table.items[self.table.item[row]]
            t = float(self.table.t[row])
            is_video = item.media_type == "video"
            mix = self.spec.caption_mix
            probs = mix if is_video else (mix[0], mix[1] + mix[2], 0.0)
            kind = int(rng.choice(3, p=probs))
            if kind == _SPATIAL:
                texts.append(spatial_caption(item.scene, t, rng))
            else:
                texts.append(template_caption(item.scene, rng, video=kind == _VIDEO_TEMPLATE))
            kinds.append(kind)
            cells.append(tuple(sorted(grid_cell(v.x, v.y) + (v.shape, v.colour, v.size)
                                      for v in frame_views(item.scene, t))))
            targets.append(geometry_targets(item.scene, t, self.slots))
        source = self.table.item[rows]
        return {"pixel_values": pixels(self.table.frames[rows]),  # (B, 3, S, S)
                **self._tokenize(texts),
                "negative_mask": _true_pair_mask(source, kinds, cells, texts),
                "geometry": torch.from_numpy(np.stack(targets))}

    def _tokenize(self, texts: list[str]) -> dict:
        enc = self.tokenizer(texts, padding=True, truncation=True,
                             max_length=self.context_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def pixels(crops: np.ndarray) -> torch.Tensor:
    """`(n, S, S, 3)` uint8 CLIP crops -> normalised `(n, 3, S, S)` float32 (CLIP mean / std)."""
    from ..media.transforms import ClipPreprocess

    return ClipPreprocess(crops.shape[1]).normalize(np.asarray(crops))


def _true_pair_mask(source, kinds, cells, texts) -> torch.Tensor:
    """`(B, B)` bool: off-diagonal (image i, text j) where text j is also true of image i.

    Text j describes image i when both come from the same item and text j is a template (names
    the item, not the frame) or names the same cells, or when the two texts are identical.
    """
    source = np.asarray(source)
    same_item = source[:, None] == source[None, :]  # (B, B)
    template = np.asarray([k != _SPATIAL for k in kinds])  # (B,)
    cell_ids = {c: n for n, c in enumerate(dict.fromkeys(cells))}
    cid = np.asarray([cell_ids[c] for c in cells])
    text_ids = {t: n for n, t in enumerate(dict.fromkeys(texts))}
    tid = np.asarray([text_ids[t] for t in texts])
    true = (same_item & (template[None, :] | (cid[:, None] == cid[None, :]))) \
        | (tid[:, None] == tid[None, :])
    np.fill_diagonal(true, False)
    return torch.from_numpy(true)


# ------------------------------------------------------------------------------------ model

class WorldClipPretrainer(nn.Module):
    """A `transformers.CLIPModel` with the pretraining loss (and the auxiliary geometry head).

    Args:
        clip: the model.
        tokenizer: its tokenizer (saved with it).
        objective: loss settings.
    """

    def __init__(self, clip: nn.Module, tokenizer, objective: ObjectiveSpec):
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.objective = objective
        dim = clip.config.projection_dim
        self.geometry = (nn.Linear(dim, objective.geometry_slots * len(GEOMETRY_FIELDS))
                         if objective.geometry_weight > 0 else None)

    def image_embeds(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(n, 3, S, S)` -> `(n, d)` un-normalised (= `CLIPModel.get_image_features`)."""
        pooled = self.clip.vision_model(pixel_values=pixel_values).pooler_output  # (n, Hv)
        return self.clip.visual_projection(pooled)  # (n, d)

    def text_embeds(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`(n, L)` tokens -> `(n, d)` un-normalised (= `CLIPModel.get_text_features`)."""
        pooled = self.clip.text_model(input_ids=input_ids,
                                      attention_mask=attention_mask).pooler_output  # (n, Ht)
        return self.clip.text_projection(pooled)  # (n, d)

    def compute_loss(self, batch: dict) -> LossOutput:
        """CLIP loss (+ geometry). `loss_en` holds the contrastive term alone."""
        image = F.normalize(self.image_embeds(batch["pixel_values"]), dim=-1)  # (B, d)
        text = F.normalize(self.text_embeds(batch["input_ids"], batch["attention_mask"]),
                           dim=-1)  # (B, d)
        # CLIP clips the temperature at 100; clamping in the forward has the same effect.
        scale = self.clip.logit_scale.clamp(max=math.log(self.objective.max_logit_scale)).exp()
        logits = scale * image @ text.T  # (B, B) image i vs text j
        logits = logits.masked_fill(batch["negative_mask"], float("-inf"))
        labels = torch.arange(len(logits), device=logits.device)
        # Symmetric InfoNCE (CLIP, Fig. 3): mean of the image->text and text->image CE.
        contrastive = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        terms = {"en": contrastive}  # named terms, logged as loss_<name>
        weights = {}
        if self.geometry is not None:
            terms["geometry"] = self.geometry_loss(image, batch["geometry"])
            weights["geometry"] = self.objective.geometry_weight
        return weighted_loss(terms, weights)

    def geometry_loss(self, image: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Masked MSE of standardised geometry: the present flag for every slot, the rest for
        slots holding an object. image `(B, d)` normalised, target `(B, slots, 6)`."""
        b, slots, fields = target.shape
        pred = self.geometry(image).view(b, slots, fields)  # (B, slots, 6)
        mean, std = _GEOMETRY_MEAN.to(target), _GEOMETRY_STD.to(target)
        err = ((pred - (target - mean) / std) ** 2)  # (B, slots, 6)
        present = target[..., :1]  # (B, slots, 1)
        weight = torch.cat([torch.ones_like(present), present.expand(-1, -1, fields - 1)], -1)
        return (err * weight).sum() / weight.sum()

    def save(self, path) -> Path:
        """Write the CLIP folder (the geometry head is not part of it)."""
        return save_clip_folder(self.clip, self.tokenizer, path)


def save_clip_folder(clip: nn.Module, tokenizer, path, dtype: torch.dtype | None = None) -> Path:
    """Write an ordinary CLIP folder: config.json, model.safetensors, tokenizer files and
    preprocessor_config.json (resize shorter side + centre crop to the model's input size).

    Args:
        clip: a `transformers.CLIPModel`.
        tokenizer: its tokenizer.
        path: target folder.
        dtype: storage dtype (e.g. `torch.float16`); the model itself is not changed.
    """
    import copy

    from transformers import CLIPImageProcessor

    from ..media.transforms import CLIP_MEAN, CLIP_STD

    folder = Path(path)
    model = copy.deepcopy(clip).to(dtype) if dtype is not None else clip
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    size = clip.config.vision_config.image_size
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                       image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)).save_pretrained(folder)
    return folder


def export_clip_folder(run_folder, dest, dtype: torch.dtype = torch.float16) -> Path:
    """Copy a run's CLIP folder (`best/` or `model/`) to `dest` with fp16 weights.

    Args:
        run_folder: a CLIP folder written by the pretrainer.
        dest: target folder (its old model files are replaced; other files such as the model
            card are kept).
        dtype: storage dtype.
    """
    from transformers import CLIPModel

    from ..encoders.text import load_tokenizer

    clip = CLIPModel.from_pretrained(run_folder).float()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    save_clip_folder(clip, load_tokenizer(str(run_folder)), dest, dtype=dtype)
    summary = run_summary(Path(run_folder).parent)
    summary["exported_from"] = Path(run_folder).name
    atomic_write_text(dest / TRAINING_SUMMARY, json.dumps(summary, indent=2) + "\n")
    return dest


#: Written beside exported weights: how the run went (for the model card).
TRAINING_SUMMARY = "training_summary.json"


def run_summary(run) -> dict:
    """Steps, wall time and validation history of a pretraining run folder.

    Returns:
        `{"recipe", "steps", "train_seconds", "validations": [...], "best_step", ...}`.
    """
    run = Path(run)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
    vals = [json.loads(x) for x in (run / "val.jsonl").read_text().splitlines() if x.strip()] \
        if (run / "val.jsonl").is_file() else []
    best = [v for v in vals if v.get("best")]
    recipe = json.loads((run / "recipe.json").read_text()) if (run / "recipe.json").is_file() \
        else None
    return {"recipe": recipe, "steps": log[-1]["step"] if log else 0,
            "train_seconds": log[-1]["seconds"] if log else 0.0,
            "final_loss": log[-1]["loss"] if log else None,
            "best_step": best[-1]["step"] if best else None,
            "validations": [{"step": v["step"], **v["metrics"]} for v in vals]}


# ------------------------------------------------------------------------------- zero-shot

@torch.no_grad()
def encode_frames(image_fn, frames: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised features `(N, d)` of uint8 crops `(N, S, S, 3)` through `image_fn`
    (`pixel_values -> (n, d)`)."""
    out = []
    for start in range(0, len(frames), batch_size):
        out.append(F.normalize(image_fn(pixels(frames[start:start + batch_size])).float(),
                               dim=-1))
    return torch.cat(out)


def mean_item_features(frame_features: torch.Tensor, item: np.ndarray, n_items: int
                       ) -> torch.Tensor:
    """Mean of each item's L2-normalised frame features, re-normalised: `(n_items, d)` (meanP)."""
    index = torch.as_tensor(item, dtype=torch.long)
    sums = torch.zeros(n_items, frame_features.shape[1]).index_add_(0, index, frame_features)
    return F.normalize(sums, dim=-1)


def zero_shot_retrieval(image_fn, text_fn, table: FrameTable,
                        frame_features: torch.Tensor | None = None) -> dict:
    """Zero-shot text->item retrieval on a world: items are the mean of their frame features,
    queries the items' English captions.

    Args:
        image_fn: `pixel_values (n, 3, S, S) -> (n, d)`.
        text_fn: `list[str] -> (n, d)`.
        table: the world's frames (its items and captions).
        frame_features: `(N, d)` normalised features of `table.frames` when already computed.

    Returns:
        `t2v_metrics` (R1, R5, R10, MdR, MnR, counts) for all items together.
    """
    from ..eval.metrics import t2v_metrics

    if frame_features is None:
        frame_features = encode_frames(image_fn, table.frames)
    items = mean_item_features(frame_features, table.item, len(table.items))
    captions, caption_item = [], []
    for k, entry in enumerate(table.manifest["items"]):
        for text in entry["captions"]["en"]:
            captions.append(text)
            caption_item.append(k)
    text = torch.cat([F.normalize(text_fn(captions[s:s + 256]).float(), dim=-1)
                      for s in range(0, len(captions), 256)])
    sim = (text @ items.T).numpy()  # (n_captions, n_items)
    return t2v_metrics(sim, np.asarray(caption_item))


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


# ------------------------------------------------------------------------------------- run

def build_pretrainer(recipe: PretrainRecipe) -> WorldClipPretrainer:
    """A freshly initialised model for `recipe` (seeded by `recipe.train.seed`)."""
    from transformers import CLIPModel

    from ..encoders.text import build_clip_tokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.train.seed)
        clip = CLIPModel(recipe.model.clip_config())
        model = WorldClipPretrainer(clip, build_clip_tokenizer(), recipe.objective)
    return model


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
