"""Named evaluation protocols of the papers, as frozen dataclasses that emit mumur JSON configs.

A `Preset` fixes one paper setting: the training benchmark, languages and hyper-parameters, and
the evaluation benchmark, split, languages and the paper table it is compared with. It emits
- the experiment config `mumur train CONFIG` reads (`model` / `data` / `train` sections,
  `mumur.train.config.parse_experiment_config`), and
- the evaluation config `mumur eval CONFIG` reads (`model` folder, `data`, `languages`,
  `protocol`; `mumur.eval.runner.evaluate_from_config`).

Sources (the seed texts in `shared/seeds/`):
- MuMUR §4.3 (implementation details) and Tables 1-8;
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = [
    "PRESETS",
    "Preset",
    "eval_config",
    "experiment_config",
    "get_preset",
    "list_presets",
    "write_preset_configs",
]

# MuMUR §4.3: "The visual encoder and the English text encoder are initialized with CLIP-ViT-B-32.
# The multilingual text encoder is initialized with M-CLIP-ViT-B-32."
CLIP_B32 = "openai/clip-vit-base-patch32"
MCLIP_B32 = "M-CLIP/XLM-Roberta-Large-Vit-B-32"

SETTINGS = ("translate-train", "zero-shot", "fine-tune-en", "fine-tune-all", "ccr")


@dataclass(frozen=True)
class Preset:
    """One paper setting.

    Args:
        name: preset name, e.g. `mumur-msrvtt9k`.
        paper_table: id of the transcribed table (`mumur.eval.paper_table`) to compare with.
        citation: paper and section the numbers below come from.
        setting: `translate-train` (MuMUR: en + machine-translated captions), `zero-shot` (no
            training on the test benchmark / languages), `fine-tune-en`, `fine-tune-all` (MLMM
            §3.1.5), `ccr` (LECCR: en + MT captions in training, human captions at test).
        train_benchmark: benchmark adapter of the training data (None: nothing is trained).
        train_options: adapter options for training (e.g. `{"languages": ["en"]}`).
        train_split, val_split: splits for training and model selection.
        ml_languages: languages of the multilingual branch in training (MuMUR §4.3: French).
        translate_languages: languages `mumur translate` must add to the training captions.
        en_only: English-only training (MLMM fine-tune on English).
        eval_benchmark, eval_split, eval_options, eval_languages: the test side.
        v2t_protocol: `caption` (Karpathy / LECCR) or `group` (CLIP4Clip-style).
        num_frames: frames per video (1 for images).
        max_text_length: the paper's caption length in tokens (recorded, see module docstring).
        batch_size, epochs, lr, min_lr: optimisation (AdamW + cosine decay to `min_lr`).
        warmup_ratio: linear warm-up fraction.
        freeze_backbone: train on cached features of frozen encoders.
        backbone_lr: encoder learning rate when `freeze_backbone` is False.
        head, head_options: method head and its options (MuMUR §4.3: 512-d, dropout 0.4).
        encoders: encoder specs per slot.
        notes: settings the paper leaves unstated and what the preset does instead.
    """

    name: str
    paper_table: str
    citation: str
    setting: str
    train_benchmark: str | None
    eval_benchmark: str
    train_options: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    val_split: str | None = "val"
    ml_languages: tuple[str, ...] | None = None
    translate_languages: tuple[str, ...] = ()
    en_only: bool = False
    eval_split: str = "test"
    eval_options: dict[str, Any] = field(default_factory=dict)
    eval_languages: tuple[str, ...] | None = None
    v2t_protocol: str = "caption"
    num_frames: int = 16
    max_text_length: int | None = None
    batch_size: int = 32
    epochs: int = 5
    lr: float = 1e-4
    min_lr: float = 1e-6
    warmup_ratio: float = 0.0
    freeze_backbone: bool = True
    backbone_lr: float | None = None
    head: str = "mumur-dcm"
    head_options: dict[str, Any] = field(default_factory=lambda: {
        "embed_dim": 512, "dropout": 0.4, "num_heads": 1})
    encoders: dict[str, str | None] = field(default_factory=lambda: {
        "vision": CLIP_B32, "text_en": CLIP_B32, "text_ml": MCLIP_B32})
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


# ------------------------------------------------------------------------------------ MuMUR
_MUMUR = "MuMUR (Madasu et al., 2023)"
_MUMUR_43 = f"{_MUMUR} §4.3"
# §4.3: "We use translations of French for the multilingual inputs to train the MuMUR model."
_FR = ("fr",)


def _mumur_video(name, table, benchmark, frames, length, batch, epochs, notes=(), **kw):
    return Preset(name=name, paper_table=table, citation=f"{_MUMUR_43}; {table}",
                  setting="translate-train", train_benchmark=benchmark,
                  eval_benchmark=kw.pop("eval_benchmark", benchmark), ml_languages=_FR,
                  translate_languages=_FR, num_frames=frames, max_text_length=length,
                  batch_size=batch, epochs=epochs, notes=tuple(notes), **kw)


_MSRVTT_NO_VAL = ("MSRVTT has no validation split in the CLIP4Clip protocol (§4.1.1 follows Luo "
                  "et al., 2021): no model selection, the final model is evaluated.")
_UNSTATED_BATCH = ("§4.3 states batch size and epochs only for MSRVTT (32, 5), DiDeMo (16, 12) "
                   "and Charades (16, 15); the MSRVTT values are used here.")

_presets: list[Preset] = [
    # §4.3: 16 frames, max length 32, batch 32, 5 epochs for MSRVTT-9k / 7k.
    _mumur_video("mumur-msrvtt9k", "mumur-table1", "msrvtt-9k", 16, 32, 32, 5,
                 [_MSRVTT_NO_VAL], val_split=None, v2t_protocol="group"),
    _mumur_video("mumur-msrvtt7k", "mumur-table2", "msrvtt-7k", 16, 32, 32, 5,
                 [_MSRVTT_NO_VAL], val_split=None, v2t_protocol="group"),
    # §4.3: 16 frames for MSVD; length, batch and epochs unstated.
    _mumur_video("mumur-msvd", "mumur-table3", "msvd", 16, None, 32, 5, [_UNSTATED_BATCH]),
    # §4.3: 42 frames, length 64, batch 16, 12 epochs (DiDeMo); 42, 30, 16, 15 (Charades).
    _mumur_video("mumur-didemo", "mumur-table4", "didemo", 42, 64, 16, 12),
    _mumur_video("mumur-charades", "mumur-table5", "charades", 42, 30, 16, 15,
                 ["Charades has no validation split: no model selection."], val_split=None),
    # §4.1.2 / Table 6: Flickr30k 29k/1k/1k; an image is one frame (§3.2.1, N_v = 1).
    _mumur_video("mumur-flickr30k", "mumur-table6", "flickr30k", 1, None, 32, 5,
                 [_UNSTATED_BATCH]),
    # §5.3 / Table 7: "the model trained only using French captions", tested zero-shot on six
    # languages of MSRVTT-multilingual.
    _mumur_video("mumur-msrvtt-multilingual", "mumur-table7", "msrvtt-9k", 16, 32, 32, 5,
                 [_MSRVTT_NO_VAL, ("Table 7's footnote says the model was trained on Charades; "
                  "§5.3 says only 'trained only using French captions'. The MSRVTT-9k French "
                  "model is used (same videos as the test set's source); set train_benchmark="
                  "'charades' to follow the footnote.")],
                 val_split=None, eval_benchmark="msrvtt-multilingual",
                 eval_options={"languages": ["de", "cs", "zh", "ru", "sw", "es"]},
                 eval_languages=("de", "cs", "zh", "ru", "sw", "es"), v2t_protocol="group"),
]
# §5.4 / Table 8: "Our model is fine-tuned for each language and evaluated on the corresponding
# test data" (Multi30K human captions in de / fr / cs, §4.1.2).
for _lang in ("de", "fr", "cs"):
    _presets.append(Preset(
        name=f"mumur-multi30k-{_lang}", paper_table="mumur-table8",
        citation=f"{_MUMUR} §5.4; Table 8", setting="fine-tune-all",
        train_benchmark="multi30k", train_options={"languages": ["en", _lang]},
        ml_languages=(_lang,), eval_benchmark="multi30k",
        eval_options={"languages": ["en", _lang]}, eval_languages=(_lang,), num_frames=1,
        notes=(_UNSTATED_BATCH, ("Trained with the human Multi30K captions of the language "
               "(task 1), as 'fine-tuned for each language'."))))

# ------------------------------------------------------------------------------------ LECCR
# §4.1: "we only use the annotated vision-English data pair in the training process, while using
# the non-English query (human labeled) to evaluate"; 40 epochs, cosine decay, lr 1e-5; SumR.
_LECCR = "LECCR §4.1"
_LECCR_NOTES = (
    ("LECCR's visual features are ResNet-152/ResNeXt-101 (MSR-VTT-CN), I3D (VATEX) and CLIP "
    "(images) with an mBERT text encoder; this preset evaluates the mumur model (CLIP + M-CLIP + "
    "DCM) under the CCR protocol."),
    "Batch size and frame count are not stated in the seed text: batch 32, 16 frames.",
)


def _ccr(name, table, benchmark, lang, train_options, eval_options, frames, extra=()):
    return Preset(name=name, paper_table=table, citation=f"{_LECCR}; {table}", setting="ccr",
                  train_benchmark=benchmark, train_options=train_options, ml_languages=(lang,),
                  translate_languages=(lang,), eval_benchmark=benchmark,
                  eval_options=eval_options, eval_languages=(lang,), num_frames=frames,
                  epochs=40, lr=1e-5, min_lr=1e-7, notes=_LECCR_NOTES + tuple(extra))


for _lang in ("de", "fr", "cs"):
    _presets.append(_ccr(f"leccr-multi30k-{_lang}", "leccr-table1", "multi30k", _lang,
                         {"languages": ["en"]}, {"languages": [_lang]}, 1))
for _lang in ("zh", "ja"):
    # en2zh uses the COCO-CN image split (the adapter's default when zh is asked for); training
    # asks for English only, so the split is named explicitly.
    _split = {"image_split": "coco-cn"} if _lang == "zh" else {}
    _presets.append(_ccr(f"leccr-mscoco-{_lang}", "leccr-table1", "mscoco", _lang,
                         {"languages": ["en"], **_split}, {"languages": [_lang], **_split}, 1))
_presets += [
    _ccr("leccr-vatex-zh", "leccr-table2", "vatex", "zh",
         {"languages": ["en"], "protocol": "ccr"}, {"languages": ["zh"], "protocol": "ccr"}, 16),
    # The msrvtt-cn adapter's training split carries the machine-translated Chinese captions of
    # the dataset itself (`machine_translated=True`), so no `mumur translate` run is needed.
    dataclasses.replace(
        _ccr("leccr-msrvtt-cn", "leccr-table3", "msrvtt-cn", "zh",
             {"machine_translated": True}, {"languages": ["zh"]}, 16,
             ["Training uses the dataset's own machine-translated Chinese captions."]),
        translate_languages=(), val_split=None),
]

# ------------------------------------------------------------------------------------- MLMM
# §3.1.5: 1) zero-shot: tested without fine-tuning; 2) finetune on English, tested on other
# languages; 3) finetune on all languages jointly. Metric: average of R@1/5/10 (Tables 1, 6).
_MLMM = "MLMM/M-CLIP/MLA chapter §3.1.5"
_MLMM_NOTES = (("Downstream fine-tuning hyper-parameters are not in the seed text; MuMUR §4.3's "
               "(batch 32, 5 epochs, lr 1e-4) are used."),)
_MLMM_SETS = {"multi30k": ("en", "de", "fr", "cs"), "mscoco": ("en", "ja")}
for _bench, _langs in _MLMM_SETS.items():
    _eval = {"languages": list(_langs)}
    _presets += [
        Preset(name=f"mlmm-zeroshot-{_bench}", paper_table="mlmm-table6",
               citation=f"{_MLMM} setting 1; Table 6", setting="zero-shot",
               train_benchmark=None, eval_benchmark=_bench, eval_options=_eval,
               eval_languages=_langs, num_frames=1,
               notes=(("No training on this benchmark: evaluate a model trained elsewhere "
                      "(e.g. the mumur-msrvtt9k run), given as the model folder."),)),
        Preset(name=f"mlmm-ft-en-{_bench}", paper_table="mlmm-table6",
               citation=f"{_MLMM} setting 2; Table 6", setting="fine-tune-en",
               train_benchmark=_bench, train_options={"languages": ["en"]}, en_only=True,
               eval_benchmark=_bench, eval_options=_eval, eval_languages=_langs,
               num_frames=1, notes=_MLMM_NOTES),
        Preset(name=f"mlmm-ft-all-{_bench}", paper_table="mlmm-table6",
               citation=f"{_MLMM} setting 3; Table 6", setting="fine-tune-all",
               train_benchmark=_bench, train_options=_eval, ml_languages=_langs[1:],
               eval_benchmark=_bench, eval_options=_eval, eval_languages=_langs,
               num_frames=1, notes=_MLMM_NOTES),
    ]
# §3.3.3-3.3.4 / Table 8: MSR-VTT-7k in 9 languages; MCLIP4VLA "randomly sample sentence scripts
# from different languages", 5 epochs (batch 128, lr 1e-7 for their fine-tuned backbone).
_L9 = ("en", "zh", "cs", "de", "es", "fr", "ru", "sw", "vi")
_presets.append(Preset(
    name="mlmm-msrvtt-multilingual", paper_table="mlmm-table8",
    citation="MLMM/M-CLIP/MLA chapter §3.3.3; Table 8", setting="fine-tune-all",
    train_benchmark="msrvtt-multilingual", train_options={"languages": list(_L9)},
    ml_languages=_L9[1:], val_split=None, eval_benchmark="msrvtt-multilingual",
    eval_options={"languages": list(_L9)}, eval_languages=_L9, v2t_protocol="group",
    batch_size=128, epochs=5,
    notes=(("lr 1e-7 in §3.3.3 is for CLIP4VLA's fine-tuned backbones; the DCM head trained from "
           "scratch uses MuMUR's 1e-4."),)))

PRESETS: dict[str, Preset] = {p.name: p for p in _presets}


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
            `preset.translate_languages`); emitted as `data.translations` only when the train
            config schema has that field.
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
    from ..train.config import DataSpec

    overrides = {**preset.head_options, "num_frames": preset.num_frames}
    data: dict[str, Any] = {"benchmark": preset.train_benchmark, "root": str(data_root),
                            "train_split": preset.train_split, "val_split": preset.val_split,
                            "options": dict(preset.train_options)}
    if preset.val_split is not None and preset.eval_languages:
        # Model selection may not look at human captions the setting forbids in training
        # (CCR: English only; fine-tune on English: English only).
        english_only = preset.setting in ("ccr", "fine-tune-en")
        data["val_languages"] = ["en"] if english_only else list(preset.eval_languages)
    if translations is not None:
        if "translations" not in {f.name for f in dataclasses.fields(DataSpec)}:
            raise ConfigError(f"preset {preset.name}: the train config has no data.translations "
                              "field in this mumur; merge the translations into the dataset "
                              "another way")
        data["translations"] = str(translations)
    train: dict[str, Any] = {
        "epochs": preset.epochs, "batch_size": preset.batch_size, "lr": preset.lr,
        "min_lr_ratio": round(preset.min_lr / preset.lr, 12), "warmup_ratio": preset.warmup_ratio,
        "seed": seed, "freeze_vision": preset.freeze_backbone,
        "freeze_text": preset.freeze_backbone, "en_only": preset.en_only,
        "validate": preset.val_split is not None,
    }
    if preset.ml_languages is not None and not preset.en_only:
        train["ml_languages"] = list(preset.ml_languages)
    if not preset.freeze_backbone and preset.backbone_lr is not None:
        train["backbone_lr"] = preset.backbone_lr
    if cache_dir is not None:
        train["cache_dir"] = str(cache_dir)
    return {"model": {"name": preset.head, "encoders": dict(preset.encoders),
                      "overrides": overrides},
            "data": data, "train": train}


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
    import json

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
