"""MLMM recipes (`configs/mlmm/<name>.json`): pre-train on the pretraining world, fine-tune for
retrieval on the base study's train world, and measure re-ranking (`mlmm_report.py`).

A recipe names:

* ``model``: `MLMMConfig` fields (the tokenizer fills the vocabulary and special ids, the vision
  tower the feature dimension); ``tokenizer``: the packaged multilingual tokenizer
  (``world-m-clip``, the M-CLIP student's); ``init_from``: a packaged M-CLIP student (a BERT)
  whose embeddings and layers start the transformer (§3.1.4 starts from XLM-R; same shape
  needed, `init_from_student`);
* ``category_scale``: inverse temperature of MRC's soft labels (`train.mlmm.category_embeddings`);
* ``pretrain_world``: the synthetic world MLMM pre-trains on (seed 1001 is world-clip's pretraining
  world; every split is used) and ``pretrain`` / ``finetune``: `MLMMStage` settings;
* ``base_study`` / ``base_variant``: the study whose two-stream runs are re-ranked (its train
  world is the fine-tuning data, its test galleries the evaluation); ``seeds``: fine-tuning seeds,
  each paired with the base variant's run of the same seed; ``k``: shortlist sizes;
  ``galleries``: how many of the study's test galleries to evaluate on;
  ``queries_per_language``: captions per gallery and language scored (a fixed random subset, the
  same for every seed; 0 = all: the cross-encoder's cost is the bound on a CPU);
  ``latency_queries``: queries timed; ``train_queries_per_language``: fine-tuning captions per
  language whose two-stream shortlists give the hard negatives (0 = all);
  ``val_queries_per_language``: validation captions per language (the train world's val split)
  that select the fine-tuning checkpoint and the fusion weight (`rerank.fusion`).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rich.console import Console

from ..config import config_from_dict, load_packaged_config
from ..errors import ConfigError
from ..fsutil import atomic_write_json
from ..rerank.model import MLMM, TOKENIZER_FILE, MLMMConfig, load_mlmm
from ..rerank.reranker import TextTokenizer
from ..train.mlmm import MLMMStage, build_pair_data, category_embeddings, train_mlmm

__all__ = ["MLMMRecipe", "finetune", "init_from_student", "load_mlmm_recipe", "new_model",
           "pretrain", "world_rows"]


@dataclass(frozen=True)
class MLMMRecipe:
    """An MLMM recipe (module docstring)."""

    model: dict = field(default_factory=dict)
    tokenizer: str = "world-m-clip"
    init_from: str | None = None
    category_scale: float = 50.0
    pretrain_world: dict = field(default_factory=lambda: {"seed": 1001, "videos": 800})
    pretrain: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    base_study: str = "demo"
    base_variant: str = "dcm"
    seeds: tuple[int, ...] = (0, 1, 2)
    k: tuple[int, ...] = (10, 50, 100)
    galleries: int = 1
    queries_per_language: int = 0
    latency_queries: int = 30
    train_queries_per_language: int = 0
    val_queries_per_language: int = 40
    name: str = "mlmm"

    def __post_init__(self):
        if not self.seeds or not self.k or min(self.k) < 1:
            raise ConfigError("mlmm recipe: seeds and k (positive shortlist sizes) are needed")

    def stage(self, which: str) -> MLMMStage:
        """The `MLMMStage` of ``pretrain`` or ``finetune``."""
        return config_from_dict(MLMMStage, getattr(self, which),
                                context=f"mlmm recipe {self.name}.{which}")


def load_mlmm_recipe(name: str | Path = "world") -> MLMMRecipe:
    """`configs/mlmm/<name>.json`, or a recipe JSON file (a path ending in .json)."""
    if str(name).endswith(".json"):
        data, name = json.loads(Path(name).read_text(encoding="utf-8")), Path(name).stem
    else:
        data = load_packaged_config("mlmm", str(name))
    return config_from_dict(MLMMRecipe, {**data, "name": str(name)}, context=f"mlmm {name}")


def _tokenizer_file(recipe: MLMMRecipe) -> Path:
    from ..encoders import packaged_checkpoint

    return Path(packaged_checkpoint(recipe.tokenizer)) / TOKENIZER_FILE


def new_model(recipe: MLMMRecipe, frame_dim: int, vision_identity: str = "") -> MLMM:
    """A fresh MLMM sized by the recipe, the tokenizer's vocabulary and `frame_dim` (features of
    the tower `vision_identity`)."""
    from tokenizers import Tokenizer

    from ..data.synthetic.world import COLOURS, SHAPES

    tok = Tokenizer.from_file(str(_tokenizer_file(recipe)))
    special = {k: tok.token_to_id(t) for k, t in
               [("pad_id", "<pad>"), ("cls_id", "<s>"), ("sep_id", "</s>"), ("mask_id", "<mask>")]}
    if None in special.values():
        raise ConfigError(f"tokenizer {recipe.tokenizer!r} lacks a special token: {special}")
    cfg = config_from_dict(MLMMConfig, {**recipe.model, **special, "frame_dim": frame_dim,
                                        "vision_identity": vision_identity,
                                        "vocab_size": tok.get_vocab_size(),
                                        "num_classes": len(COLOURS) * len(SHAPES)},
                           context=f"mlmm {recipe.name}.model")
    model = MLMM(cfg)
    if recipe.init_from:
        from ..encoders import packaged_checkpoint

        init_from_student(model, Path(packaged_checkpoint(recipe.init_from)))
    return model


def init_from_student(model: MLMM, folder: Path) -> None:
    """Start MLMM from an M-CLIP student's BERT (MLMM §3.1.4 initialises the transformer and
    the text embedder from XLM-R): word / position / type embeddings, the embedding LayerNorm
    and every encoder layer (q, k, v stacked into PyTorch's in-projection). The visual
    projection starts as the pseudo-inverse of the student's output projection (hidden -> the
    vision tower's joint space), so a frame token starts where a caption of it would pool to.

    Raises:
        ConfigError: the student's shapes do not fit the model.
    """
    from safetensors.torch import load_file

    w = load_file(str(folder / "model.safetensors"))
    e = "transformer.embeddings."
    pairs = [(model.word_embeddings.weight, w[e + "word_embeddings.weight"]),
             (model.text_positions.weight,
              w[e + "position_embeddings.weight"][:model.config.max_text_len]),
             (model.modality.weight[1], w[e + "token_type_embeddings.weight"][0]),
             (model.norm.weight, w[e + "LayerNorm.weight"]), (model.norm.bias, w[e + "LayerNorm.bias"])]
    for i, layer in enumerate(model.encoder.layers):
        p = f"transformer.encoder.layer.{i}."
        if p + "attention.self.query.weight" not in w:
            raise ConfigError(f"{folder}: no encoder layer {i} for MLMM's {model.config.layers}")
        qkv = [p + f"attention.self.{n}" for n in ("query", "key", "value")]
        pairs += [
            (layer.self_attn.in_proj_weight, torch.cat([w[n + ".weight"] for n in qkv])),
            (layer.self_attn.in_proj_bias, torch.cat([w[n + ".bias"] for n in qkv])),
            (layer.self_attn.out_proj.weight, w[p + "attention.output.dense.weight"]),
            (layer.self_attn.out_proj.bias, w[p + "attention.output.dense.bias"]),
            (layer.norm1.weight, w[p + "attention.output.LayerNorm.weight"]),
            (layer.norm1.bias, w[p + "attention.output.LayerNorm.bias"]),
            (layer.linear1.weight, w[p + "intermediate.dense.weight"]),
            (layer.linear1.bias, w[p + "intermediate.dense.bias"]),
            (layer.linear2.weight, w[p + "output.dense.weight"]),
            (layer.linear2.bias, w[p + "output.dense.bias"]),
            (layer.norm2.weight, w[p + "output.LayerNorm.weight"]),
            (layer.norm2.bias, w[p + "output.LayerNorm.bias"])]
    out_w, out_b = w["LinearTransformation.weight"], w["LinearTransformation.bias"]  # (Dv, H)
    inverse = torch.linalg.pinv(out_w.float())  # (H, Dv)
    pairs += [(model.frame_proj.weight, inverse), (model.frame_proj.bias, -inverse @ out_b)]
    bad = [(tuple(t.shape), tuple(s.shape)) for t, s in pairs if t.shape != s.shape]
    if bad:
        raise ConfigError(f"{folder} does not fit this MLMM (model vs student shapes {bad[:3]})")
    with torch.no_grad():
        for target, source in pairs:
            target.copy_(source)


def world_rows(world: Path, split: str, vision, cache_root: Path, num_frames: int,
               workers: int, media_types=("video",)):
    """(dataset, frame features, mask) of a world split: the frozen vision tower's rows from
    the feature store under `cache_root` (computed once)."""
    from ..data import load_benchmark
    from ..data.features import cached_frame_features

    ds = load_benchmark("synthetic", world, split=split, media_types=list(media_types))

    @torch.no_grad()
    def encode_frames(pixels):
        return vision(pixels).float()

    feats, mask = cached_frame_features(
        [str(ds.media_path(i)) for i in range(len(ds))], encode_frames, vision.identity,
        cache_root / "frame_features", num_frames, int(getattr(vision, "image_size", 224)),
        num_workers=workers, progress=False)
    return ds, feats, mask


def _pair_data(recipe: MLMMRecipe, world: Path, split: str, cache_root: Path, workers: int,
               hard_negatives: int, shortlist=None):
    """PairData of a world split; with `shortlist` (`mlmm_shortlist.Shortlists` of that split)
    its captions and their two-stream hard negatives, else every caption and, for
    `hard_negatives`, nearest items by frame features."""
    from ..encoders import load_encoder
    from .mlmm_shortlist import hard_negatives as shortlist_negatives

    cfg = MLMMConfig(**{k: v for k, v in recipe.model.items() if k in ("vision", "num_frames")})
    vision = load_encoder(cfg.vision, modality="vision").eval()
    ds, feats, mask = world_rows(world, split, vision, cache_root, cfg.num_frames, workers)
    classes = category_embeddings(load_encoder(cfg.vision, modality="text").eval())
    tokenizer = TextTokenizer(_tokenizer_file(recipe), int(recipe.model.get("max_text_len", 40)),
                              0)
    captions = ([(i, t) for i, _, t in ds.captions] if shortlist is None
                else list(zip(shortlist.own.tolist(), shortlist.texts)))
    data = build_pair_data(feats, mask, captions, tokenizer, classes=classes,
                           class_scale=recipe.category_scale,
                           hard_negatives=0 if shortlist is not None else hard_negatives)
    if shortlist is not None and hard_negatives:
        data.caption_negatives = shortlist_negatives(shortlist, hard_negatives)
    return data, int(feats.shape[-1]), vision.identity


def pretrain(recipe: MLMMRecipe, out: Path, *, workers: int = 2, seed: int = 0,
             base_world: Path | None = None, cache_root: Path | None = None,
             console: Console | None = None) -> Path:
    """Pre-train MLMM on the pretraining world (generated into ``out/pretrain-world`` on first
    use) with the recipe's objectives; the model goes to ``out/pretrained`` (reused when there).

    A recipe whose ``pretrain_world`` is ``{"use": "base-train"}`` pre-trains on `base_world`'s
    train split instead (the fine-tuning world; its frame features under `cache_root` are
    already there, so nothing is rendered: the CPU-budget recipe's shortcut, docs/deviations.md).
    """
    from ..data.synthetic.generate import SynthConfig, generate

    console = console or Console()
    done = out / "pretrained"
    if (done / "mlmm_config.json").exists():
        return done
    spec = recipe.pretrain_world
    world, cache = out / "pretrain-world", out / "cache"
    if spec.get("use") == "base-train":
        if base_world is None:
            raise ConfigError(f"mlmm recipe {recipe.name} pre-trains on the base study's train "
                              "world: give it (mumur mlmm pretrain --world DIR --cache DIR)")
        world, cache = Path(base_world), Path(cache_root or out / "cache")
    elif not (world / "manifest.json").exists():
        generate(world, SynthConfig(videos=int(spec["videos"]), images=int(spec.get("images", 0)),
                                    seed=int(spec["seed"]), val_fraction=0.0, test_fraction=0.0,
                                    multi_shot=float(spec.get("multi_shot", 0.0))),
                 workers=workers)
    stage = recipe.stage("pretrain")
    data, frame_dim, identity = _pair_data(recipe, world, "train", cache, workers, 0)
    model = new_model(recipe, frame_dim, identity)
    console.print(f"MLMM pre-training: {len(data.frames)} items, {len(data.caption_item)} "
                  f"captions, {stage.steps} steps, tasks {stage.tasks}")
    info = train_mlmm(model, data, stage, seed=seed, log_path=_log(out / "pretrain.log.jsonl"))
    model.save(done, _tokenizer_file(recipe))
    atomic_write_json(done / "training.json", {"recipe": recipe.name, "stage": "pretrain",
                                                "seed": seed, "world": str(world), **info},
                      indent=2)
    console.print(f"pre-trained in {info['seconds']:.0f} s: {info['final']}")
    return done


def finetune(recipe: MLMMRecipe, pretrained: Path, train_world: Path, cache_root: Path,
             out: Path, *, seed: int, workers: int = 2, base_model: Path | None = None,
             console: Console | None = None) -> Path:
    """Fine-tune a pre-trained MLMM for retrieval (ITM with hard negatives) on `train_world`'s
    train split; the model goes to `out` (reused when there).

    With `base_model` (the two-stream model folder it will re-rank) the hard negatives come from
    that model's train-split shortlists, and its shortlists of the world's val split select the
    checkpoint and the fusion weight per K (`mlmm_select.fit_on_validation`, ``fusion.json``).
    Without it: nearest-item negatives, the final weights and pure ITM scores.
    """
    from .mlmm_select import fit_on_validation, validation_metric
    from .mlmm_shortlist import split_shortlists

    console = console or Console()
    if (out / "mlmm_config.json").exists():
        return out
    stage = recipe.stage("finetune")
    train_sl = val = None
    if base_model is not None:
        train_sl, _, _ = split_shortlists(base_model, train_world, "train", cache_root,
                                          stage.hard_negatives + 1,
                                          per_language=recipe.train_queries_per_language,
                                          workers=workers)
        val = split_shortlists(base_model, train_world, "val", cache_root, max(recipe.k),
                               per_language=recipe.val_queries_per_language, workers=workers)
    data, _, identity = _pair_data(recipe, train_world, "train", cache_root, workers,
                                   stage.hard_negatives, shortlist=train_sl)
    model = load_mlmm(pretrained)
    if model.config.vision_identity not in ("", identity):
        raise ConfigError(f"{pretrained} was pre-trained on {model.config.vision_identity} "
                          f"features; the fine-tuning data come from {identity}")
    tokenizer = Path(pretrained) / TOKENIZER_FILE
    info = train_mlmm(model, data, stage, seed=seed,
                      log_path=_log(out.parent / f"{out.name}.log.jsonl"),
                      validate=None if val is None else validation_metric(val, tokenizer,
                                                                          min(recipe.k)))
    with tempfile.TemporaryDirectory() as tmp:  # fusion.json lands in the folder with the model
        if val is not None:
            info["fusion"] = fit_on_validation(model, val, tokenizer, recipe.k, Path(tmp),
                                               source=f"{train_world}/val")
        model.save(out, tokenizer, extra=list(Path(tmp).iterdir()))
    atomic_write_json(out / "training.json", {"recipe": recipe.name, "stage": "finetune",
                                               "seed": seed, "pretrained": str(pretrained),
                                               "base_model": None if base_model is None
                                               else str(base_model), **info}, indent=2)
    console.print(f"fine-tuned seed {seed} in {info['seconds']:.0f} s: {info['final']}")
    return out


def _log(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
