"""world-CLIP pretraining recipe: the three worlds, the CLIP architecture, pair sampling and loss
settings, read from JSON (`mumur/configs/pretrain/world-clip.json`) into frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...config import config_from_dict, config_to_dict, read_json
from ...data.synthetic import SynthConfig
from ...errors import ConfigError
from ..config import TrainConfig, train_config_from_dict

__all__ = [
    "GROUP_FACETS",
    "ClipArchitecture",
    "FrameDataSpec",
    "ObjectiveSpec",
    "PretrainRecipe",
    "WorldSpec",
    "load_recipe",
    "recipe_from_dict",
]

#: Facets a batch group can share (`FrameDataSpec.group_by`).
GROUP_FACETS = ("place", "shape", "colour", "size")


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
        group_by: facets shared by the sources of a group ("place", and the main object's
            "shape", "colour", "size"); empty = no grouping.
        grouped_share: share of each batch filled by groups (hard negatives: sources that
            differ only outside `group_by`); the rest is drawn at random.
        group_sources: sources per group.
    """

    frames_per_video: int = 12
    frames_per_source: int = 2
    steps_per_epoch: int = 400
    caption_mix: tuple[float, float, float] = (0.5, 0.25, 0.25)
    workers: int = 2
    group_by: tuple[str, ...] = ()
    grouped_share: float = 0.0
    group_sources: int = 8

    def __post_init__(self):
        bad = sorted(set(self.group_by) - set(GROUP_FACETS))
        if bad:
            raise ConfigError(f"data.group_by: unknown facet(s) {bad}; valid: {GROUP_FACETS}")
        if not 0.0 <= self.grouped_share <= 1.0 or (self.grouped_share and not self.group_by):
            raise ConfigError("data.grouped_share: must be in [0, 1], and 0 unless group_by "
                              f"names a facet (got {self.grouped_share})")
        if self.group_sources < 2:
            raise ConfigError(f"data.group_sources: must be >= 2, got {self.group_sources}")


@dataclass(frozen=True)
class ObjectiveSpec:
    """Loss settings.

    Args:
        geometry_weight: weight of the auxiliary geometry regression (0 = pure CLIP loss).
        geometry_slots: object slots of the geometry head (the world has at most 3 objects).
        max_logit_scale: clip of the learnable logit scale (CLIP: 100).
        cells_weight: weight of the auxiliary per-cell classification (what shape, colour and
            size each cell of the 3 x 3 grid shows; 0 = off).
    """

    geometry_weight: float = 0.5
    geometry_slots: int = 3
    max_logit_scale: float = 100.0
    cells_weight: float = 0.0


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

