"""The MLA recipe (JSON, e.g. `mumur/configs/mla/world-mla.json`): the frozen CLIP, the acquirer
shape, the worlds of the two stages and each stage's trainer settings."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ...config import config_from_dict, config_to_dict, load_packaged_config, read_json
from ...data.synthetic.languages import LANGUAGES
from ...errors import ConfigError
from ..config import TrainConfig, train_config_from_dict
from ..distill.recipe import WorldSpec

__all__ = ["MlaRecipe", "load_mla_recipe"]


@dataclass(frozen=True)
class MlaRecipe:
    """An MLA run (survey §3.2.2).

    Args:
        name: run name (recorded in the encoder's identity).
        clip: CLIP checkpoint whose text tower is Psi (frozen) and whose vision tower is Phi
            (frozen, embeds the exposure world's frames).
        world: stage 1 (native language transfer) text: translation pairs of this world's scenes
            (planned, no media), also the multilingual tokenizer's training text.
        exposure_world: stage 2 (language exposure): rendered; its items' frame embeddings are the
            NCE partners of their captions.
        validation_world: held-out pairs for the report (eq. 6 and bitext R@1 per language).
        languages: target languages (default: every synthetic language but English).
        exclude_languages: languages left out of everything (held-out-language experiment).
        fallback: acquirers a language without its own goes through (default: the acquirer
            language identified as closest to its text).
        bottleneck: acquirer MLP width.
        vocab_size, max_length: the multilingual tokenizer.
        frames: frames per exposure video (mean of L2-normalised frame embeddings).
        temperature: NCE temperature of eq. (8) (the survey writes none; CLIP's is learnt).
        nlt, le: `TrainConfig`s of the two stages (`max_steps`, `batch_size`, `lr`, `seed`, ...;
            `validate` is off, the run keeps each stage's final weights).
    """

    name: str
    clip: str
    world: WorldSpec
    exposure_world: WorldSpec
    validation_world: WorldSpec
    languages: tuple[str, ...] | None = None
    exclude_languages: tuple[str, ...] = ()
    fallback: str | None = None
    bottleneck: int = 64
    vocab_size: int = 4000
    max_length: int = 64
    frames: int = 8
    temperature: float = 0.05
    nlt: TrainConfig = field(default_factory=TrainConfig)
    le: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        seeds = [self.world.seed, self.exposure_world.seed, self.validation_world.seed]
        if self.validation_world.seed in seeds[:2]:
            raise ConfigError(f"mla recipe: validation_world needs its own seed (got {seeds})")
        unknown = [lang for lang in (*(self.languages or ()), *self.exclude_languages)
                   if lang not in LANGUAGES]
        if unknown:
            raise ConfigError(f"mla recipe: languages {unknown} have no synthetic captions")
        if not self.target_languages:
            raise ConfigError("mla recipe: no target language left")
        if self.bottleneck < 1 or self.temperature <= 0 or self.frames < 1:
            raise ConfigError("mla recipe: bottleneck, temperature and frames must be positive")

    @property
    def target_languages(self) -> tuple[str, ...]:
        """Languages that get acquirers: `languages` (or all) minus English and the excluded."""
        return tuple(lang for lang in (self.languages or LANGUAGES)
                     if lang != "en" and lang not in self.exclude_languages)

    def to_dict(self) -> dict:
        return config_to_dict(self)

    def with_seed(self, seed: int) -> MlaRecipe:
        """Both stages seeded with `seed`."""
        return dataclasses.replace(self, nlt=dataclasses.replace(self.nlt, seed=seed),
                                   le=dataclasses.replace(self.le, seed=seed))


_STAGE_DEFAULTS = {"validate": False, "checkpoint_every": 0, "log_every": 10,
                   "device": "cpu", "precision": "fp32"}


def load_mla_recipe(path_or_name: str | Path, **overrides) -> MlaRecipe:
    """Read an MLA recipe: a JSON file or a packaged name (`world-mla`); `overrides` replace
    top-level fields (None ignored).

    Raises:
        ConfigError: missing file, bad JSON, unknown or invalid fields.
    """
    path = Path(path_or_name)
    data = read_json(path) if path.is_file() else load_packaged_config("mla", str(path_or_name))
    if not isinstance(data, dict):
        raise ConfigError(f"{path_or_name}: an MLA recipe is a JSON object")
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("languages", "exclude_languages"):
        if data.get(key) is not None:
            data[key] = tuple(data[key])
    worlds = {k: config_from_dict(WorldSpec, data.pop(k), k) if k in data else None
              for k in ("world", "exposure_world", "validation_world")}
    stages = {k: train_config_from_dict({**_STAGE_DEFAULTS, **data.pop(k, {})})
              for k in ("nlt", "le")}
    missing = [k for k, v in worlds.items() if v is None]
    if missing:
        raise ConfigError(f"{path_or_name}: MLA recipe lacks {missing}")
    return config_from_dict(MlaRecipe, {**data, **worlds, **stages},
                            context=f"mla recipe {path_or_name}")
