"""`create_model` (a registered head name + encoder specs -> a model) and `load_model` (a saved
folder -> the same model)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from torch import nn

from ..config import read_json, replace_config
from ..errors import ConfigError, ModelLoadError
from ..heads import HeadConfig
from .retrieval import RetrievalModel
from .spec import (
    CONFIG_FILE,
    ENCODER_SLOTS,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    ModelConfig,
    head_class,
)

__all__ = ["create_model", "load_model"]


def _load_encoder(spec: str | nn.Module, slot: str) -> nn.Module:
    if isinstance(spec, nn.Module):
        return spec
    from ..encoders import load_encoder

    return load_encoder(spec, modality=ENCODER_SLOTS[slot])


def create_model(name: str, *, vision: str | nn.Module | None = None,
                 text_en: str | nn.Module | None = None, text_ml: str | nn.Module | None = None,
                 head_config: HeadConfig | None = None, **overrides) -> RetrievalModel:
    """Build a model from a registered head name.

    Args:
        name: head name (`list_models()`), e.g. "mumur-dcm" or "meanP".
        vision, text_en, text_ml: encoder specs for `mumur.load_encoder`, built encoders, or None.
            Equal specs for text_en and text_ml load one shared encoder (MuMUR §5.5.2 ablation).
        head_config: start from this head config instead of the head's defaults.
        **overrides: `ModelConfig` fields (num_frames, frame_sampling, image_size) and head
            config fields (embed_dim, temporal, num_heads, dropout, share_branches, ...). The
            head's input dims default to the encoders' output dims.

    Returns:
        a RetrievalModel (head randomly initialised).

    Raises:
        ConfigError: unknown head name or option, or mismatched dims.
    """
    head_cls = head_class(name)
    model_fields = {f.name for f in fields(ModelConfig)} - {"head", "head_config"} - set(
        ENCODER_SLOTS)
    model_over = {k: v for k, v in overrides.items() if k in model_fields}
    head_over = {k: v for k, v in overrides.items() if k not in model_fields}
    specs = {"vision": vision, "text_en": text_en, "text_ml": text_ml}
    encoders: dict[str, nn.Module | None] = {}
    for slot, spec in specs.items():
        shared = slot == "text_ml" and isinstance(spec, str) and spec == specs["text_en"]
        encoders[slot] = (encoders["text_en"] if shared else
                          _load_encoder(spec, slot) if spec is not None else None)
    dims = {"frame_dim": encoders["vision"], "text_dim_en": encoders["text_en"],
            "text_dim_ml": encoders["text_ml"]}
    for key, encoder in dims.items():
        if encoder is not None:
            head_over.setdefault(key, encoder.dim)
    config = head_config if head_config is not None else head_cls.config_class()
    config = replace_config(config, context=f"head {name!r}", **head_over)
    spec_names = {slot: (spec if isinstance(spec, str) or spec is None
                         else getattr(spec, "source", type(spec).__name__))
                  for slot, spec in specs.items()}
    model_config = ModelConfig(head=name, head_config=config, **spec_names, **model_over)
    return RetrievalModel(model_config, head_cls(config), **encoders)


def load_model(path: str | Path, vision: nn.Module | None = None) -> RetrievalModel:
    """Load a folder written by `RetrievalModel.save`.

    Args:
        path: the model folder.
        vision: an encoder to put in the vision slot instead of loading the saved one (a
            `RecordedEncoder` when only text queries will be encoded).

    Returns:
        the model in eval mode, scoring identically to the saved one.

    Raises:
        ModelLoadError: missing/invalid files or weights that do not fit the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: not a mumur model folder (does not exist)")
    meta = read_json(folder / CONFIG_FILE, error=ModelLoadError)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelLoadError(f"{folder / CONFIG_FILE}: not a mumur model config "
                             f"(format != {FORMAT!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelLoadError(f"{folder}: format_version {meta['format_version']} is newer than "
                             f"this mumur ({FORMAT_VERSION})")
    try:
        config = ModelConfig.from_dict(meta["config"], context=str(folder / CONFIG_FILE))
    except (ConfigError, KeyError) as exc:
        raise ModelLoadError(f"{folder / CONFIG_FILE}: {exc}") from None
    model = RetrievalModel(config)
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{folder / WEIGHTS_FILE}: cannot read weights ({exc})") from None
    try:
        model.head.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{folder / WEIGHTS_FILE}: weights do not fit the config: "
                             f"{exc}") from None
    loaded: dict[str, nn.Module] = {}
    for slot, sub in (meta.get("encoder_folders") or {}).items():
        if slot not in ENCODER_SLOTS:
            raise ModelLoadError(f"{folder / CONFIG_FILE}: unknown encoder slot {slot!r}")
        if slot == "vision" and vision is not None:
            model.vision = vision
            continue
        if sub not in loaded:
            if not (folder / sub).is_dir():
                raise ModelLoadError(f"{folder}: encoder folder {sub!r} is missing")
            loaded[sub] = _load_encoder(str(folder / sub), sub)
        setattr(model, slot, loaded[sub])
    model._check_dims()
    return model.eval()
