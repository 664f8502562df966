"""`train_from_config`: a JSON experiment config -> a trained `RetrievalModel` in a run folder.

Steps: build the model (`create_model` or `load_model(init_from)`), load the train / validation
splits, freeze what the config freezes, fill the caches (frozen frame features or uint8 frames;
frozen text-encoder outputs), then run the `Trainer` with validation on the validation split
(mean t2v R@1 over its languages by default). The test split is never touched.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import RetrievalDataset
from ..data.feature_store import FeatureStore, store_folder, text_tag
from ..data.features import cache_text_features, cached_frame_features
from ..errors import ConfigError
from ..fsutil import atomic_write_json
from .caches import pixel_frame_cache
from .config import ExperimentConfig, ModelSpec, TrainConfig, load_experiment_config
from .data import (
    CaptionSampler,
    FeatureFrameSource,
    PixelFrameSource,
    TextFeatureTable,
    TrainBatches,
)
from .distributed import init_distributed, rank_device, rank_zero_first
from .runtime import resolve_device, seed_everything
from .trainer import Trainer, TrainResult

__all__ = [
    "build_model",
    "freeze_encoders",
    "train_experiment",
    "train_from_config",
    "validation_metrics",
]


def train_from_config(config_path: str | Path, out_dir: str | Path,
                      resume: bool = False) -> TrainResult:
    """Train the experiment described by a JSON config file.

    Args:
        config_path: the experiment config (`model`, `data`, `train` sections; see
            `mumur.train.config`).
        out_dir: run folder (log.jsonl, val.jsonl, checkpoints/, best/, model/, cache/).
        resume: continue from the run folder's latest checkpoint.

    Returns:
        The `TrainResult`; `out_dir/model` and `out_dir/best` load with `mumur.load_model`.

    Raises:
        ConfigError: a bad config field (named in the message).
    """
    return train_experiment(load_experiment_config(config_path), out_dir, resume=resume)


def build_model(spec: ModelSpec, train: TrainConfig | None = None):
    """Build the model of a `model` config section.

    Args:
        spec: the section.
        train: the training config (English-only training without the ml branch sets the head's
            `train_branches` to `("en",)` unless the overrides say otherwise).

    Returns:
        A `RetrievalModel`.

    Raises:
        ConfigError: unknown model name, encoder or option (field named).
    """
    from ..encoders import load_encoder
    from ..errors import EncoderLoadError
    from ..model import create_model, list_models, load_model

    if spec.init_from is not None:
        if spec.encoders or spec.overrides:
            raise ConfigError("model.init_from: cannot be combined with model.encoders or "
                              "model.overrides (the saved model fixes them)")
        return load_model(spec.init_from)
    if spec.name not in list_models():
        raise ConfigError(f"model.name: unknown model {spec.name!r}; known: "
                          f"{', '.join(list_models())}")
    encoders = {}
    for slot, value in spec.encoders.items():
        if isinstance(value, dict):
            options = {k: v for k, v in value.items() if k != "name"}
            modality = "vision" if slot == "vision" else "text"
            try:
                value = load_encoder(value["name"], modality=modality, **options)
            except (EncoderLoadError, TypeError) as exc:
                raise ConfigError(f"model.encoders.{slot}: {exc}") from None
        encoders[slot] = value
    overrides = dict(spec.overrides)
    if train is not None and train.en_only and train.en_only_ml == "disabled":
        overrides.setdefault("train_branches", ["en"])
    try:
        return create_model(spec.name, **encoders, **overrides)
    except EncoderLoadError as exc:
        raise ConfigError(f"model.encoders: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"model.overrides: {exc}") from None


def _load_split(exp: ExperimentConfig, split: str, field: str) -> RetrievalDataset:
    from ..data import list_benchmarks, load_benchmark

    data = exp.data
    if data.benchmark not in list_benchmarks():
        raise ConfigError(f"data.benchmark: unknown benchmark {data.benchmark!r}; known: "
                          f"{', '.join(list_benchmarks())}")
    try:
        dataset = load_benchmark(data.benchmark, data.root, split=split, **data.options)
    except TypeError as exc:
        raise ConfigError(f"data.options: {exc}") from None
    except ConfigError as exc:
        raise ConfigError(f"data.{field}: {exc}") from None
    if data.translations is not None:
        from ..translate.pipeline import merge_translations

        dataset = merge_translations(dataset, data.translations)
    dataset.check_media()
    return dataset


def freeze_encoders(model, cfg: TrainConfig) -> dict[str, bool]:
    """Freeze the encoders `cfg` freezes (`freeze_vision`, `freeze_text`) or that cannot train.

    Args:
        model: a `RetrievalModel`; frozen encoders get `requires_grad=False` and eval mode.
        cfg: the training config.

    Returns:
        slot -> frozen, for the slots the model has.
    """
    frozen = {}
    for slot in ("vision", "text_en", "text_ml"):
        encoder = getattr(model, slot, None)
        if encoder is None:
            continue
        wanted = cfg.freeze_vision if slot == "vision" else cfg.freeze_text
        frozen[slot] = wanted or not getattr(encoder, "trainable", True)
        if frozen[slot]:
            encoder.requires_grad_(False)
            encoder.eval()
    return frozen


def _frame_source(model, dataset: RetrievalDataset, frozen: bool, num_frames: int,
                  candidates: int, cache_dir: Path, cfg: TrainConfig):
    """Frames of every item of `dataset`, `candidates` per item, from the right cache."""
    vision = model.vision
    paths = [str(dataset.media_path(i)) for i in range(len(dataset))]
    if frozen:
        features, mask = cached_frame_features(
            paths, model.encode_frames, vision.identity, cache_dir / "frame_features",
            candidates, model.image_size, num_workers=cfg.num_workers,
            progress=cfg.progress)
        return FeatureFrameSource(features, mask, num_frames)
    from ..media.transforms import ClipPreprocess

    frames, mask = pixel_frame_cache(paths, cache_dir / "frames_uint8", candidates,
                                     model.image_size, num_workers=cfg.num_workers,
                                     progress=cfg.progress)
    preprocess = ClipPreprocess(model.image_size, vision.image_mean, vision.image_std)
    return PixelFrameSource(frames, mask, num_frames, preprocess.normalize)


def _text_tables(model, sampler: CaptionSampler, datasets: list[RetrievalDataset],
                 frozen: dict[str, bool], cache_dir: Path, cfg: TrainConfig
                 ) -> dict[str, TextFeatureTable | None]:
    """Frozen text encoders: every caption they will see is encoded once (and cached on disk)."""
    tables: dict[str, TextFeatureTable | None] = {"en": None, "ml": None}
    for branch in sampler.branches:
        slot = f"text_{branch}"
        encoder = getattr(model, slot, None)
        if encoder is None:
            raise ConfigError(f"model.encoders.{slot}: the {branch} branch is trained but the "
                              "model has no encoder for it")
        if not frozen.get(slot):
            continue
        english = branch == "en" or cfg.en_only
        texts = sorted({text for ds in datasets for _, lang, text in ds.captions
                        if (lang == "en") == english})
        store = FeatureStore.for_texts(
            store_folder(cache_dir / "text_features", text_tag(encoder.identity)),
            encoder.identity)
        features = cache_text_features(store, texts, lambda batch, e=encoder: e(batch),
                                       progress=cfg.progress)
        tables[branch] = TextFeatureTable(texts, torch.from_numpy(features))
    return tables


def validation_metrics(result: dict) -> dict[str, float]:
    """Flatten an `evaluate_states` result into selection metrics: `t2v_R1` (mean t2v R@1 over
    languages), `SumR` (mean over languages) and `t2v_R1/<lang>`, `SumR/<lang>` per language."""
    langs = result["languages"]
    out = {"t2v_R1": float(np.mean([v["t2v"]["R1"] for v in langs.values()])),
           "SumR": float(np.mean([v["SumR"] for v in langs.values()]))}
    for lang, v in langs.items():
        out[f"t2v_R1/{lang}"] = float(v["t2v"]["R1"])
        out[f"SumR/{lang}"] = float(v["SumR"])
    return out


def _description_arrays(model, dataset: RetrievalDataset, cache_dir: Path,
                        cfg: TrainConfig) -> dict:
    """The head's description inputs for every item of `dataset` ({} for heads without)."""
    from ..describe import description_inputs

    return description_inputs(model, [str(dataset.media_path(i)) for i in range(len(dataset))],
                              cache_dir, progress=cfg.progress)


def _evaluate_fn(val: RetrievalDataset, frames, frozen: bool, languages, extra: dict):
    """Retrieval metrics on the validation split with the current weights. Frames come from the
    validation cache (`num_frames` uniform frames, as evaluation samples them); a trainable vision
    encoder re-encodes the cached pixels each time."""
    from ..eval.runner import encode_dataset_media, evaluate_states

    def evaluate(model) -> dict[str, float]:
        if frozen:
            features, mask = frames.array, frames.mask
        else:
            mask = frames.mask
            features = None
            for s in range(0, len(mask), 16):
                part = frames.get(list(range(s, min(s + 16, len(mask)))), "uniform",
                                  [None] * min(16, len(mask) - s))
                valid = part["mask"]  # (b, T)
                feats = model.encode_frames(part["pixel_values"][valid]).cpu()  # (n, Dv)
                if features is None:
                    features = np.zeros(mask.shape + (feats.shape[-1],), dtype=np.float32)
                block = np.zeros(valid.shape + (feats.shape[-1],), dtype=np.float32)
                block[valid.numpy()] = feats.numpy()
                features[s:s + len(valid)] = block
        states = encode_dataset_media(model, val, frame_features=(features, mask),
                                      extra=extra, progress=False)
        return validation_metrics(evaluate_states(model, val, states, languages=languages))

    return evaluate


def train_experiment(exp: ExperimentConfig, out_dir: str | Path,
                     resume: bool = False) -> TrainResult:
    """Train a parsed `ExperimentConfig` (see `train_from_config`)."""
    cfg = exp.train
    init_distributed(cfg.device)  # joins the torchrun process group, if any
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = {"model": dataclasses.asdict(exp.model), "data": dataclasses.asdict(exp.data),
              "train": cfg.to_dict()}
    saved = out_dir / "experiment.json"
    if resume and saved.exists() and json.loads(saved.read_text()) != json.loads(
            json.dumps(record)):
        raise ConfigError(f"{exp.source or 'config'}: differs from the run's experiment.json; "
                          "resume needs the same config")
    atomic_write_json(saved, record, indent=2)

    seed_everything(cfg.seed)  # the head's random initialisation is part of the run
    model = build_model(exp.model, cfg)
    if model.vision is None:
        raise ConfigError("model.encoders.vision: training needs a vision encoder")
    model.to(rank_device(resolve_device(cfg.device)))
    train_ds = _load_split(exp, exp.data.train_split, "train_split")
    val_ds = (_load_split(exp, exp.data.val_split, "val_split")
              if exp.data.val_split and cfg.validate else None)
    if cfg.validate and val_ds is None:
        raise ConfigError("data.val_split: validation is on (train.validate) but no validation "
                          "split is set")
    frozen = freeze_encoders(model, cfg)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else out_dir / "cache"
    num_frames = model.config.num_frames
    sampling = cfg.frame_sampling or model.config.frame_sampling

    sampler = CaptionSampler(train_ds, ml_languages=cfg.ml_languages, en_only=cfg.en_only,
                             en_only_ml=cfg.en_only_ml, seed=cfg.seed, epoch_unit=cfg.epoch_unit)
    with rank_zero_first():  # torchrun: rank 0 fills the caches, the others then read them
        frames = _frame_source(model, train_ds, frozen["vision"], num_frames,
                               num_frames * cfg.frames_per_segment, cache_dir, cfg)
        datasets = [train_ds] + ([val_ds] if val_ds is not None else [])
        tables = _text_tables(model, sampler, datasets, frozen, cache_dir, cfg)
        train_data = TrainBatches(sampler, frames, cfg.batch_size, frame_sampling=sampling,
                                  text_en=tables["en"], text_ml=tables["ml"],
                                  drop_last=cfg.drop_last,
                                  item_arrays=_description_arrays(model, train_ds, cache_dir, cfg))

        evaluate_fn = val_data = None
        if val_ds is not None:
            val_frames = _frame_source(model, val_ds, frozen["vision"], num_frames, num_frames,
                                       cache_dir, cfg)
            if cfg.selection_metric == "val_loss":
                val_sampler = CaptionSampler(val_ds, ml_languages=cfg.ml_languages,
                                             en_only=cfg.en_only, en_only_ml=cfg.en_only_ml,
                                             seed=cfg.seed)
                val_data = TrainBatches(val_sampler, val_frames, cfg.batch_size,
                                        frame_sampling="uniform", text_en=tables["en"],
                                        text_ml=tables["ml"], drop_last=False, fixed=True,
                                        item_arrays=_description_arrays(model, val_ds, cache_dir,
                                                                        cfg))
            else:
                evaluate_fn = _evaluate_fn(val_ds, val_frames, frozen["vision"],
                                           list(exp.data.val_languages or []) or None,
                                           _description_arrays(model, val_ds, cache_dir, cfg))
    torch.manual_seed(cfg.seed)
    trainer = Trainer(model, train_data, cfg, out_dir, evaluate_fn=evaluate_fn,
                      val_data=val_data)
    return trainer.fit(resume=resume)
