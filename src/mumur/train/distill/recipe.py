"""The distillation recipe (JSON, e.g. `mumur/configs/distill/world-m-clip-scratch.json`): the
teacher, the student, three worlds by seed, languages, and the trainer's settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...config import config_from_dict, config_to_dict, read_json
from ...data.synthetic import SynthConfig
from ...data.synthetic.languages import LANGUAGES
from ...errors import ConfigError
from ..config import TrainConfig, train_config_from_dict

__all__ = [
    "STUDENT_KINDS",
    "DistillRecipe",
    "StudentSpec",
    "WorldSpec",
    "load_recipe",
    "packaged_recipe",
]

STUDENT_KINDS = ("usem3-adapter", "scratch-transformer")
_SPLITS = ("train", "val", "test", "all")


@dataclass(frozen=True)
class WorldSpec:
    """A synthetic world, named by its seed (worlds of different seeds share no item).

    Args:
        seed: corpus seed.
        videos, images: item counts.
        val_fraction, test_fraction: split fractions (as `mumur synth`).
        split: the split used (`train`, `val`, `test` or `all`).
        root: an already generated corpus of exactly this world (its `manifest.json` must carry
            the same seed); relative to the recipe file. Default: planned in memory (training
            text) or generated under the run's cache folder (the evaluation world needs media).
    """

    seed: int
    videos: int
    images: int = 0
    val_fraction: float = 0.0
    test_fraction: float = 0.0
    split: str = "all"
    root: str | None = None

    def __post_init__(self):
        if self.split not in _SPLITS:
            raise ConfigError(f"world.split: must be one of {_SPLITS} (got {self.split!r})")
        if self.videos < 0 or self.images < 0 or self.videos + self.images < 1:
            raise ConfigError(f"world: needs at least one item (got videos={self.videos}, "
                              f"images={self.images})")

    def synth_config(self, languages: Sequence[str]) -> SynthConfig:
        """The `SynthConfig` that generates this world."""
        return SynthConfig(videos=self.videos, images=self.images, seed=self.seed,
                           languages=tuple(languages), val_fraction=self.val_fraction,
                           test_fraction=self.test_fraction)


@dataclass(frozen=True)
class StudentSpec:
    """The student encoder.

    Args:
        kind: `usem3-adapter` or `scratch-transformer`.
        hidden_dim: adapter MLP width (`usem3-adapter`).
        vocab_size: tokenizer vocabulary (`scratch-transformer`, unigram model).
        hidden_size, layers, heads, intermediate_size: the BERT student's shape.
        max_length: longest input in tokens (position table size).
        dropout: hidden and attention dropout of the BERT student.
        init_from: a student folder of the same kind and shape (e.g. the `best/` of an earlier
            distillation, possibly from another teacher) whose weights, and tokenizer for a
            scratch transformer, initialise this student: a warm start, as M-CLIP starts from a
            pretrained multilingual encoder. Relative to the recipe file.
    """

    kind: str
    hidden_dim: int = 1024
    vocab_size: int = 8000
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    intermediate_size: int = 1024
    max_length: int = 64
    dropout: float = 0.1
    init_from: str | None = None

    def __post_init__(self):
        if self.kind not in STUDENT_KINDS:
            raise ConfigError(f"student.kind: must be one of {STUDENT_KINDS} (got {self.kind!r})")
        for name in ("hidden_dim", "vocab_size", "hidden_size", "layers", "heads",
                     "intermediate_size", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"student.{name}: must be >= 1 (got {getattr(self, name)!r})")
        if self.hidden_size % self.heads:
            raise ConfigError(f"student.heads: {self.heads} does not divide hidden_size "
                              f"{self.hidden_size}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"student.dropout: must be in [0, 1) (got {self.dropout!r})")


@dataclass(frozen=True)
class DistillRecipe:
    """A distillation run (see the module docstring for the JSON layout).

    Args:
        name: run name (recorded in the student's identity and the results).
        teacher: CLIP checkpoint whose text tower is the teacher and whose vision tower embeds the
            evaluation frames (`load_encoder` name, folder or hub id).
        student: the `StudentSpec`.
        world: pretraining world (training pairs).
        validation_world: world for model selection (val_loss: eq. 5 on `val_pairs` of its pairs;
            bitext R@1 is logged).
        evaluation_world: world of the report; never used in training or selection.
        languages: target languages (default: all 15 synthetic languages, English included).
        steps_per_epoch: batches per epoch (validation and checkpoint at each epoch end).
        val_pairs: validation pairs (fixed sample of the validation world's pairs).
        eval_frames: frames per video for the teacher's vision embedding (mean over frames).
        train: `TrainConfig` (selection_metric defaults to `val_loss`).
    """

    name: str
    teacher: str
    student: StudentSpec
    world: WorldSpec
    validation_world: WorldSpec
    evaluation_world: WorldSpec
    languages: tuple[str, ...] | None = None
    steps_per_epoch: int = 200
    val_pairs: int = 2048
    eval_frames: int = 12
    train: TrainConfig = field(default_factory=lambda: TrainConfig(selection_metric="val_loss"))

    def __post_init__(self):
        seeds = [self.world.seed, self.validation_world.seed, self.evaluation_world.seed]
        if len(set(seeds)) != 3:
            raise ConfigError(f"recipe: world, validation_world and evaluation_world need three "
                              f"different seeds (got {seeds})")
        unknown = [lang for lang in self.languages or () if lang not in LANGUAGES]
        if unknown:
            raise ConfigError(f"languages: {unknown} have no synthetic captions; known: "
                              f"{', '.join(LANGUAGES)}")
        if self.languages is not None and "en" not in self.languages:
            raise ConfigError("languages: must include 'en' (bitext and English queries)")
        for name in ("steps_per_epoch", "val_pairs", "eval_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1 (got {getattr(self, name)!r})")

    @property
    def language_list(self) -> tuple[str, ...]:
        return tuple(self.languages or LANGUAGES)

    def to_dict(self) -> dict:
        return config_to_dict(self)


_RECIPE_KEYS = {f.name for f in dataclasses.fields(DistillRecipe)}


def packaged_recipe(name: str) -> Path | None:
    """The packaged recipe `mumur/configs/distill/<name>.json`, or None."""
    path = Path(__file__).resolve().parents[2] / "configs" / "distill" / f"{name}.json"
    return path if path.is_file() else None


def _resolve_path(base: Path, value: str | None) -> str | None:
    """Relative paths that exist next to the recipe resolve there; names stay as they are."""
    if value is None:
        return None
    p = Path(value).expanduser()
    if p.is_absolute() or not (base / p).exists():
        return str(p) if p.is_absolute() else value
    return str(base / p)


def load_recipe(path_or_name: str | Path, **overrides) -> DistillRecipe:
    """Read and validate a distillation recipe.

    Args:
        path_or_name: a JSON file, or the name of a packaged recipe (`world-m-clip-usem3`).
        **overrides: top-level fields replaced after reading (e.g. `teacher=...`); `None` values
            are ignored.

    Returns:
        The `DistillRecipe`.

    Raises:
        ConfigError: missing file, bad JSON, unknown or invalid fields (named).
    """
    path = Path(path_or_name)
    if not path.is_file() and packaged_recipe(str(path_or_name)) is not None:
        path = packaged_recipe(str(path_or_name))
    data = read_json(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe is a JSON object")
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    unknown = sorted(set(data) - _RECIPE_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown recipe key(s) {unknown}; valid: "
                          f"{', '.join(sorted(_RECIPE_KEYS))}")
    missing = [k for k in ("name", "teacher", "student", "world", "validation_world",
                           "evaluation_world") if k not in data]
    if missing:
        raise ConfigError(f"{path}: recipe lacks {', '.join(missing)}")
    base = path.resolve().parent
    worlds = {}
    for key in ("world", "validation_world", "evaluation_world"):
        spec = config_from_dict(WorldSpec, data[key], key)
        worlds[key] = dataclasses.replace(spec, root=_resolve_path(base, spec.root))
    train = train_config_from_dict({"selection_metric": "val_loss", **data.get("train", {})})
    fields = {k: v for k, v in data.items() if k not in ("student", "train", *worlds)}
    if fields.get("languages") is not None:
        fields["languages"] = tuple(fields["languages"])
    fields["teacher"] = _resolve_path(base, str(fields["teacher"]))
    student = config_from_dict(StudentSpec, data["student"], "student")
    student = dataclasses.replace(student, init_from=_resolve_path(base, student.init_from))
    try:
        return DistillRecipe(student=student,
                             train=train, **worlds, **fields)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None

