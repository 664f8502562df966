"""The papers' evaluation protocols as named presets that emit mumur JSON configs.

Each preset is one JSON file, `mumur/configs/presets/<name>.json`, parsed into the `Preset`
dataclass (unknown keys are an error that names them). A preset fixes one paper setting: the
training benchmark, languages and hyper-parameters, and the evaluation benchmark, split, languages
and the paper table it is compared with; its `model` names a model definition,
`mumur/configs/models/<model>.json` (head, encoder specs, head options). It emits
- the experiment config `mumur train CONFIG` reads (`model` / `data` / `train` sections,
  `mumur.train.config.parse_experiment_config`), and
- the evaluation config `mumur eval CONFIG` reads (`model` folder, `data`, `languages`,
  `protocol`; `mumur.eval.runner.evaluate_from_config`).
`mumur presets list` and `mumur presets write NAME ...` are the command-line side.

Sources (the seed texts in `shared/seeds/`), cited in each file's `citation` and `sources`:
- MuMUR §4.3 (implementation details) and Tables 1-8. The model: "The visual encoder and the
  English text encoder are initialized with CLIP-ViT-B-32. The multilingual text encoder is
  initialized with M-CLIP-ViT-B-32" (`models/mumur-dcm-clip-b32.json`);
- LECCR §4.1 (CCR: train on English + machine-translated captions, test on human non-English
  captions; SumR) and Tables 1-3;
- the MLMM / M-CLIP / MLA chapter §3.1.5 (zero-shot / fine-tune on English / fine-tune on all)
  and Tables 1, 6, 8.

Deviations common to every preset (stated once here):
- Maximum text length (MuMUR §4.3: 32 for MSRVTT, 64 DiDeMo, 30 Charades) is recorded in
  `max_text_length` but not applied: the CLIP and M-CLIP text loaders take no `max_length`
  option, so captions are truncated at the tokenizer's own limit (77 tokens for CLIP).
- The paper initialises the encoders from CLIP/M-CLIP and trains; whether the backbone is
  fine-tuned is not stated. `freeze_backbone=True` (default) trains the DCM head (and text
  projections) on cached frame features (`mumur features`); set it False to fine-tune with
  `backbone_lr`.
- Warm-up is not stated in MuMUR §4.3 ("AdamW, a learning rate of 1e-4 and a cosine decay of
  1e-6"): presets use no warm-up and cosine decay from `lr` to `min_lr`. Weight decay is not
  stated: the trainer's CLIP4Clip default (0.2) is kept.
- Translations: MuMUR uses mBART-50 (Tang et al., 2020) and LECCR Google Translate; mumur uses
  `mumur translate` (mBART-50 by default) for both.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import config_from_dict, list_packaged_configs, load_packaged_config
from ..errors import ConfigError
from ..eval.paper_table import PaperTable, list_paper_tables, load_paper_table

__all__ = [
    "PRESETS",
    "Preset",
    "eval_config",
    "experiment_config",
    "get_preset",
    "list_presets",
    "resolve_paper_table",
    "write_preset_configs",
]

SETTINGS = ("translate-train", "zero-shot", "fine-tune-en", "fine-tune-all", "ccr")


@dataclass(frozen=True)
class Preset:
    """One paper setting. Fields that carry a paper's figure have no default: every preset file
    states them.

    Args:
        name: preset name, e.g. `mumur-msrvtt9k` (the file name).
        paper_table: id of the transcribed table (`mumur.eval.paper_table`) to compare with.
        citation: paper and section the numbers below come from.
        setting: `translate-train` (MuMUR: en + machine-translated captions), `zero-shot` (no
            training on the test benchmark / languages), `fine-tune-en`, `fine-tune-all` (MLMM
            §3.1.5), `ccr` (LECCR: en + MT captions in training, human captions at test).
        model: model definition name (`mumur/configs/models/<model>.json`).
        train_benchmark: benchmark adapter of the training data (None: nothing is trained).
        val_split: split for model selection (None: the final model is evaluated).
        ml_languages: languages of the multilingual branch in training (MuMUR §4.3: French).
        eval_benchmark, eval_languages: the test side.
        v2t_protocol: `caption` (Karpathy / LECCR) or `group` (CLIP4Clip-style).
        num_frames: frames per video (1 for images).
        max_text_length: the paper's caption length in tokens (recorded, see module docstring).
        batch_size, epochs, lr, min_lr: optimisation (AdamW + cosine decay to `min_lr`).
        train_options: adapter options for training (e.g. `{"languages": ["en"]}`).
        train_split: split for training.
        translate_languages: languages `mumur translate` must add to the training captions.
        en_only: English-only training.
        eval_split, eval_options: split and adapter options of the test side.
        warmup_ratio: linear warm-up fraction.
        freeze_backbone: train on cached features of frozen encoders.
        backbone_lr: encoder learning rate when `freeze_backbone` is False.
        epoch_unit: `pair` (an epoch visits every (video, caption) pair, as X-Pool / CLIP4Clip
            iterate MSR-VTT-9k; MuMUR builds on them) or `video` (one caption per video).
        sources: the paper statements the figures come from.
        notes: settings the paper leaves unstated and what the preset does instead.
    """

    name: str
    paper_table: str
    citation: str
    setting: str
    model: str
    train_benchmark: str | None
    val_split: str | None
    ml_languages: tuple[str, ...] | None
    eval_benchmark: str
    eval_languages: tuple[str, ...] | None
    v2t_protocol: str
    num_frames: int
    max_text_length: int | None
    batch_size: int
    epochs: int
    lr: float
    min_lr: float
    train_options: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    translate_languages: tuple[str, ...] = ()
    en_only: bool = False
    eval_split: str = "test"
    eval_options: dict[str, Any] = field(default_factory=dict)
    warmup_ratio: float = 0.0
    freeze_backbone: bool = True
    backbone_lr: float | None = None
    epoch_unit: str = "video"
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        if self.setting not in SETTINGS:
            raise ConfigError(f"preset {self.name}: setting {self.setting!r} not in {SETTINGS}")
        if self.v2t_protocol not in ("caption", "group"):
            raise ConfigError(f"preset {self.name}: v2t_protocol must be caption or group")
        if self.num_frames < 1 or self.batch_size < 1 or self.epochs < 1:
            raise ConfigError(f"preset {self.name}: num_frames, batch_size and epochs must be "
                              ">= 1")
        if not 0 < self.min_lr <= self.lr:
            raise ConfigError(f"preset {self.name}: need 0 < min_lr <= lr")
        if self.train_benchmark is None and self.setting != "zero-shot":
            raise ConfigError(f"preset {self.name}: only a zero-shot preset may omit training")

    @property
    def trains(self) -> bool:
        """Whether the preset trains a model (zero-shot presets only evaluate one)."""
        return self.train_benchmark is not None


def _load_presets() -> dict[str, Preset]:
    return {name: config_from_dict(Preset, {**load_packaged_config("presets", name),
                                            "name": name}, context=f"preset {name}")
            for name in list_packaged_configs("presets")}


PRESETS: dict[str, Preset] = _load_presets()


def list_presets() -> list[str]:
    """Names of the presets."""
    return sorted(PRESETS)


def get_preset(name: str, **overrides) -> Preset:
    """A preset by name, with fields replaced by `overrides` (`dataclasses.replace`).

    Raises:
        ConfigError: unknown name or field.
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(list_presets())}")
    valid = {f.name for f in dataclasses.fields(Preset)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(f"preset {name}: unknown field(s) {unknown}; valid: {sorted(valid)}")
    return dataclasses.replace(PRESETS[name], **overrides)


def experiment_config(preset: Preset, data_root: str | Path, *,
                      translations: str | Path | None = None,
                      cache_dir: str | Path | None = None, seed: int = 0) -> dict:
    """The `mumur train` experiment config of a preset.

    Args:
        preset: the preset.
        data_root: the training benchmark's folder (annotation files).
        translations: JSON written by `mumur translate` (needed when
            `preset.translate_languages`): `data.translations`, merged into the training and
            validation captions by item id.
        cache_dir: feature cache root shared with `mumur features` (`train.cache_dir`).
        seed: `train.seed`.

    Returns:
        `{"model": ..., "data": ..., "train": ...}` valid for
        `mumur.train.config.parse_experiment_config`.

    Raises:
        ConfigError: the preset trains nothing (zero-shot).
    """
    if not preset.trains:
        raise ConfigError(f"preset {preset.name} is {preset.setting}: it trains nothing; use "
                          "eval_config with a model trained elsewhere")
    model = load_packaged_config("models", preset.model)
    model["overrides"] = {**model.get("overrides", {}), "num_frames": preset.num_frames}
    data: dict[str, Any] = {"benchmark": preset.train_benchmark, "root": str(data_root),
                            "train_split": preset.train_split, "val_split": preset.val_split,
                            "options": dict(preset.train_options)}
    if preset.val_split is not None and preset.eval_languages:
        # Model selection may not look at human captions the setting forbids in training
        # (CCR: English only; fine-tune on English: English only).
        english_only = preset.setting in ("ccr", "fine-tune-en")
        data["val_languages"] = ["en"] if english_only else list(preset.eval_languages)
    if translations is not None:
        data["translations"] = str(translations)
    train: dict[str, Any] = {
        "epochs": preset.epochs, "batch_size": preset.batch_size, "lr": preset.lr,
        "min_lr_ratio": round(preset.min_lr / preset.lr, 12), "warmup_ratio": preset.warmup_ratio,
        "seed": seed, "freeze_vision": preset.freeze_backbone,
        "freeze_text": preset.freeze_backbone, "en_only": preset.en_only,
        "validate": preset.val_split is not None, "epoch_unit": preset.epoch_unit,
    }
    if preset.ml_languages is not None and not preset.en_only:
        train["ml_languages"] = list(preset.ml_languages)
    if not preset.freeze_backbone and preset.backbone_lr is not None:
        train["backbone_lr"] = preset.backbone_lr
    if cache_dir is not None:
        train["cache_dir"] = str(cache_dir)
    return {"model": model, "data": data, "train": train}


def eval_config(preset: Preset, model: str | Path, data_root: str | Path, *,
                batch_size: int = 16, num_workers: int = 4) -> dict:
    """The `mumur eval` config of a preset.

    Args:
        preset: the preset.
        model: the trained model folder (e.g. `<run>/best` or `<run>/model`).
        data_root: the evaluation benchmark's folder.
        batch_size, num_workers: media decoding settings.

    Returns:
        `{"model", "data", "languages", "protocol", "batch_size", "num_workers",
        "paper_table"}` for `mumur.eval.runner.evaluate_from_config` (which ignores
        `paper_table`; `mumur eval --paper-table` reads it).
    """
    data = {"benchmark": preset.eval_benchmark, "root": str(data_root),
            "split": preset.eval_split, **preset.eval_options}
    cfg: dict[str, Any] = {"model": str(model), "data": data, "protocol": preset.v2t_protocol,
                           "batch_size": batch_size, "num_workers": num_workers,
                           "paper_table": preset.paper_table, "preset": preset.name}
    if preset.eval_languages is not None:
        cfg["languages"] = list(preset.eval_languages)
    return cfg


def write_preset_configs(name: str, out_dir: str | Path, data_root: str | Path, *,
                         eval_root: str | Path | None = None, model: str | Path | None = None,
                         translations: str | Path | None = None,
                         cache_dir: str | Path | None = None, seed: int = 0) -> dict[str, Path]:
    """Write `<out_dir>/train.json` (unless zero-shot) and `<out_dir>/eval.json` for a preset.

    Paths are written absolute, so the configs work from any folder and the feature-cache keys
    (media paths) match those `mumur features` used.

    Args:
        name: preset name.
        out_dir: folder for the configs; the training run goes to `<out_dir>/run`.
        data_root: training benchmark folder.
        eval_root: evaluation benchmark folder (default `data_root`).
        model: model folder to evaluate (default `<out_dir>/run/best` when the preset validates,
            else `<out_dir>/run/model`; required for zero-shot presets).
        translations, cache_dir, seed: see `experiment_config`.

    Returns:
        `{"train": path?, "eval": path}`.

    Raises:
        ConfigError: unknown preset, or a zero-shot preset without `model`.
    """
    preset = get_preset(name)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    absolute = (lambda p: None if p is None else str(Path(p).resolve()))
    if preset.trains:
        cfg = experiment_config(preset, absolute(data_root), translations=absolute(translations),
                                cache_dir=absolute(cache_dir), seed=seed)
        written["train"] = out / "train.json"
        written["train"].write_text(json.dumps(cfg, indent=2) + "\n")
        if model is None:
            model = out / "run" / ("best" if preset.val_split is not None else "model")
    elif model is None:
        raise ConfigError(f"preset {name} is zero-shot: give the model folder to evaluate")
    ecfg = eval_config(preset, absolute(model), absolute(eval_root or data_root))
    written["eval"] = out / "eval.json"
    written["eval"].write_text(json.dumps(ecfg, indent=2) + "\n")
    return written


def resolve_paper_table(name: str) -> PaperTable:
    """A table by id (`mumur-table1`) or by the name of a preset that reports into it
    (`mumur-msrvtt9k`).

    Raises:
        ConfigError: neither a table id nor a preset name.
    """
    if name in list_paper_tables():
        return load_paper_table(name)
    if name in PRESETS:
        return load_paper_table(PRESETS[name].paper_table)
    raise ConfigError(f"unknown paper table or preset {name!r}; tables: "
                      f"{', '.join(list_paper_tables())}; presets: {', '.join(list_presets())}")
