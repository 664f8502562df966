"""The encoder contract shared by every modality, plus checkpoint-file helpers.

Every encoder is an ``nn.Module`` with ``modality``, ``dim``, ``identity``, ``trainable``,
``forward`` (un-normalised, differentiable when trainable), ``encode`` (L2-normalised float32,
no grad) and ``save(path)``, which writes a folder that ``mumur.load_encoder(path)`` reads back.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mumur.errors import EncoderLoadError

__all__ = [
    "ENCODER_FILE",
    "OPEN_CLIP_CONFIG",
    "OPEN_CLIP_PREFIX",
    "Encoder",
    "OpenClipTower",
    "create_open_clip",
    "import_open_clip",
    "load_clip_tower",
    "parse_open_clip_name",
    "quiet_transformers",
    "read_json_file",
    "resolve_file",
    "save_open_clip",
    "state_digest",
    "write_encoder_file",
]

#: Written by every ``Encoder.save``: says which encoder class reads the folder back.
ENCODER_FILE = "mumur_encoder.json"


def resolve_file(name_or_path: str, filename: str, required: bool = True) -> str | None:
    """Locate ``filename`` in a local folder or a hub repository (one code path for both).

    Args:
        name_or_path: local folder or hub id (downloaded only where the network allows it).
        filename: file inside the folder / repository.
        required: raise when the file is absent; otherwise return None.

    Returns:
        The local path of the file, or None when it is absent and not required.
    """
    from transformers.utils import cached_file

    try:
        path = cached_file(
            name_or_path,
            filename,
            _raise_exceptions_for_missing_entries=required,
            _raise_exceptions_for_connection_errors=required,
        )
        reason = "missing"
    except (OSError, ValueError) as exc:
        path, reason = None, str(exc)
    if path is None and required:
        # cached_file returns None for a missing config.json instead of raising
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r}: {filename} not found "
            f"(tried a local folder of that name and the model hub): {reason}"
        )
    return path


def read_json_file(name_or_path: str, filename: str, required: bool = True) -> dict | None:
    """Read a JSON file from a folder or hub repository via :func:`resolve_file`.

    Args:
        name_or_path: local folder or hub id.
        filename: JSON file name inside it.
        required: raise ``EncoderLoadError`` when absent, else return None.

    Returns:
        The parsed object, or None.
    """
    path = resolve_file(name_or_path, filename, required=required)
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r}: bad {filename}: {exc}"
        ) from exc


def write_encoder_file(path: str | os.PathLike, kind: str, **fields: Any) -> Path:
    """Write ``mumur_encoder.json`` (``{"kind": ..., **fields}``) into ``path``.

    Args:
        path: target folder (created).
        kind: loader key, e.g. ``"clip-vision"``, ``"hf-text"``, ``"usem3"``, ``"audio-vit"``.
        **fields: JSON-serialisable settings the loader needs.

    Returns:
        The folder as a ``Path``.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ENCODER_FILE, "w", encoding="utf-8") as fh:
        json.dump({"kind": kind, **fields}, fh, indent=2, sort_keys=True)
    return folder


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading reports (we check missing keys ourselves) and its
    "Loading weights" progress bars (noise on every `mumur search`), restoring both after."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bars:
            hf_logging.enable_progress_bar()


def state_digest(module: nn.Module, length: int = 12) -> str:
    """SHA-256 over a module's state dict (names, dtypes, shapes, bytes), hex-truncated.

    Args:
        module: any module.
        length: number of hex characters kept.

    Returns:
        A hex string that changes whenever any parameter or buffer changes.
    """
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        t = t.reshape(-1)  # 0-d tensors (e.g. a logit scale) cannot be viewed as bytes
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:length]


def load_clip_tower(name_or_path: str, tower: str) -> nn.Module:
    """Load one tower of a transformers CLIP checkpoint, with its projection.

    Args:
        name_or_path: hub id or local folder; ``config.json`` ``model_type`` is ``clip`` (a whole
            ``CLIPModel``) or the tower's own (``clip_text_model`` / ``clip_vision_model``).
        tower: ``"text"`` or ``"vision"``.

    Returns:
        A float32 ``CLIPTextModelWithProjection`` or ``CLIPVisionModelWithProjection``.

    Raises:
        EncoderLoadError: another ``model_type``, or tower weights missing or mismatched.
    """
    from transformers import (
        CLIPConfig,
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    tower_config, tower_model = {
        "text": (CLIPTextConfig, CLIPTextModelWithProjection),
        "vision": (CLIPVisionConfig, CLIPVisionModelWithProjection),
    }[tower]
    model_type = read_json_file(name_or_path, "config.json").get("model_type")
    if model_type == "clip":
        full = CLIPConfig.from_pretrained(name_or_path)
        config = getattr(full, f"{tower}_config")
        # The tower config's own projection_dim may be a default; the checkpoint's is top-level.
        config.projection_dim = full.projection_dim
    elif model_type == f"clip_{tower}_model":
        config = tower_config.from_pretrained(name_or_path)
    else:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r} as a CLIP {tower} tower: "
            f"model_type {model_type!r}"
        )
    with quiet_transformers():
        model, info = tower_model.from_pretrained(
            name_or_path, config=config, output_loading_info=True
        )
    if info["missing_keys"] or info["mismatched_keys"]:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r}: checkpoint lacks {tower} weights "
            f"{sorted(info['missing_keys'])[:5]} {info['mismatched_keys'][:5]}"
        )
    return model.float()


class Encoder(nn.Module, abc.ABC):
    """Base class: one contract for vision, text and audio encoders.

    Subclasses set ``modality``, ``dim``, ``trainable``, ``source`` (the name or path the
    weights came from, kept across save/load) and ``kind`` (the loader key in
    ``mumur_encoder.json``), and implement ``forward``, ``_inputs`` and ``save``.
    """

    modality: str = ""
    kind: str = ""

    def __init__(self, source: str, dim: int, trainable: bool = True):
        super().__init__()
        self.source = str(source)
        self.dim = int(dim)
        self.trainable = bool(trainable)
        self._identity_cache: tuple[tuple, str] | None = None

    # -- identity ------------------------------------------------------------------------------
    def _weights_digest(self) -> str:
        """Digest of the weights; cached until any tensor is modified in place (``_version``)."""
        tensors = list(self.state_dict().values())
        key = tuple((t.data_ptr(), t._version) for t in tensors)
        if self._identity_cache is None or self._identity_cache[0] != key:
            self._identity_cache = (key, state_digest(self))
        return self._identity_cache[1]

    @property
    def identity(self) -> str:
        """Stable string naming these weights: ``<kind>:<source>@<weights digest>``."""
        return f"{self.kind}:{self.source}@{self._weights_digest()}"

    # -- inference -----------------------------------------------------------------------------
    def _inputs(self, batch: Any) -> Any:
        """Turn a user batch (PIL images, strings, waveforms) into what ``forward`` takes."""
        return batch

    @property
    def device(self) -> torch.device:
        """Device of the first parameter (CPU for parameter-free encoders)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @torch.no_grad()
    def encode(self, batch: Any) -> torch.Tensor:
        """Embed a batch for retrieval.

        Args:
            batch: list of PIL images (vision), list of str (text), list of 1-D float32 arrays
                (audio); vision and audio also take an already preprocessed tensor.

        Returns:
            ``torch.FloatTensor (n, dim)``, L2-normalised, on the encoder's device.
        """
        if not isinstance(batch, torch.Tensor) and len(batch) == 0:
            return torch.zeros(0, self.dim, device=self.device)
        was_training = self.training
        self.eval()
        try:
            out = self.forward(self._inputs(batch)).float()  # (n, dim)
        finally:
            self.train(was_training)
        return nn.functional.normalize(out, dim=-1)

    @abc.abstractmethod
    def save(self, path: str | os.PathLike) -> Path:
        """Write a folder that ``mumur.load_encoder(path)`` reads back identically."""

    def extra_repr(self) -> str:
        return f"modality={self.modality!r}, dim={self.dim}, source={self.source!r}"


OPEN_CLIP_PREFIX = "open_clip:"
OPEN_CLIP_CONFIG = "open_clip_config.json"
OPEN_CLIP_WEIGHTS = "open_clip_model.safetensors"


def import_open_clip(name: str):
    """Import ``open_clip`` or raise ``EncoderLoadError`` with the install hint.

    Args:
        name: the encoder name being loaded (for the message).

    Returns:
        The ``open_clip`` module.
    """
    try:
        import open_clip
    except Exception as exc:  # ImportError, or torchvision missing inside open_clip
        raise EncoderLoadError(
            f"cannot load encoder {name!r}: open_clip is not importable ({exc}); "
            "install it with `pip install open_clip_torch torchvision`"
        ) from exc
    return open_clip


def parse_open_clip_name(name: str) -> tuple[str, str | None]:
    """Split ``open_clip:<arch>[:<pretrained>]`` (or a folder holding ``open_clip_config.json``).

    Args:
        name: ``open_clip:ViT-B-32:laion2b_s34b_b79k``, ``open_clip:hf-hub:org/repo``,
            ``open_clip:local-dir:/path`` or a local folder path.

    Returns:
        ``(model_name, pretrained)`` as ``open_clip.create_model_and_transforms`` takes them.
    """
    if os.path.isdir(name):
        return "local-dir:" + str(name), None
    rest = name.removeprefix(OPEN_CLIP_PREFIX)
    if rest.startswith(("hf-hub:", "local-dir:")):
        return rest, None
    arch, _, pretrained = rest.partition(":")
    if not arch:
        raise EncoderLoadError(f"cannot load encoder {name!r}: expected open_clip:<arch>[:<tag>]")
    return arch, (pretrained or None)


def create_open_clip(name: str) -> tuple[Any, nn.Module, str]:
    """Create an open_clip model from ``open_clip:<arch>[:<pretrained>]`` or a local-dir folder.

    Args:
        name: the encoder name or folder.

    Returns:
        ``(open_clip module, float32 model, model_name)``.
    """
    open_clip = import_open_clip(name)
    model_name, pretrained = parse_open_clip_name(name)
    try:
        model, _, _ = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
    except Exception as exc:
        raise EncoderLoadError(f"cannot load encoder {name!r} through open_clip: {exc}") from exc
    return open_clip, model.float(), model_name


def save_open_clip(
    open_clip, model: nn.Module, model_name: str, path: str | os.PathLike, source: str
) -> Path:
    """Write an open_clip ``local-dir`` folder (config + safetensors) plus ``mumur_encoder.json``.

    Args:
        open_clip: the imported module.
        model: the whole open_clip CLIP model.
        model_name: the name it was created from (to look up its model config).
        path: target folder.
        source: the name recorded in the identity.

    Returns:
        The folder.
    """
    from safetensors.torch import save_model

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg = open_clip.get_model_config(model_name)
    preprocess_cfg = open_clip.get_model_preprocess_cfg(model)
    with open(folder / OPEN_CLIP_CONFIG, "w", encoding="utf-8") as fh:
        json.dump({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}, fh, indent=2)
    save_model(model, str(folder / OPEN_CLIP_WEIGHTS))
    return write_encoder_file(folder, "open-clip", source=source)


class OpenClipTower:
    """Mixin of the open_clip encoders (text and visual tower): the whole open_clip model is kept
    as ``self.model``, so ``save`` writes a ``local-dir`` folder that open_clip itself can load
    (deviation: the other tower's memory is not freed)."""

    def _keep_open_clip(self, open_clip, model: nn.Module, model_name: str) -> None:
        self.model = model
        self._open_clip = open_clip
        self._model_name = model_name

    def save(self, path: str | os.PathLike) -> Path:
        """Write an open_clip ``local-dir`` folder plus ``mumur_encoder.json``; a text tower with
        a transformers tokenizer (NLLB-CLIP, XLM-R CLIP) also writes its files there, where
        open_clip's ``local-dir`` loading looks for them."""
        folder = save_open_clip(self._open_clip, self.model, self._model_name, path, self.source)
        tokenizer = getattr(self, "tokenizer", None)
        if callable(getattr(tokenizer, "save_pretrained", None)):
            tokenizer.save_pretrained(str(folder))
        return folder
