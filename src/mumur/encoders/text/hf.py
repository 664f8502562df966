"""Text encoders built on a transformers `AutoModel` backbone with token pooling: any HF text
model (+ optional projection; sentence-transformers folders, mBERT, XLM-R) and M-CLIP (XLM-R,
mean pooling and a linear map into CLIP's space)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mumur.encoders.base import (
    quiet_transformers,
    read_json_file,
    resolve_file,
    write_encoder_file,
)
from mumur.encoders.text.base import (
    POOLINGS,
    TextEncoder,
    load_tokenizer,
    max_input_length,
    pool_hidden_states,
)
from mumur.errors import EncoderLoadError

__all__ = ["HFTextEncoder", "MClipTextEncoder", "load_hf_text", "load_mclip"]

_PROJECTION_FILE = "projection.safetensors"


class HFTextEncoder(TextEncoder):
    """Any transformers ``AutoModel`` text backbone + pooling + optional linear projection.

    Covers sentence-transformers checkpoints (MiniLM: mean pooling), mBERT, XLM-R.

    Args:
        transformer: the ``AutoModel`` backbone.
        tokenizer: its tokenizer (same folder).
        source: name or path it came from.
        pooling: ``mean`` | ``cls`` | ``eos``.
        projection_dim: output size of an extra ``nn.Linear`` (None: no projection).
        max_length: truncation length (None: the model's position limit).
    """

    kind = "hf-text"

    def __init__(
        self,
        transformer: nn.Module,
        tokenizer: Any,
        source: str,
        pooling: str = "mean",
        projection_dim: int | None = None,
        max_length: int | None = None,
    ):
        if pooling not in POOLINGS:
            raise EncoderLoadError(
                f"cannot load encoder {source!r}: pooling {pooling!r} not in {POOLINGS}"
            )
        hidden = int(transformer.config.hidden_size)
        dim = int(projection_dim) if projection_dim else hidden
        max_length = max_length or max_input_length(tokenizer, transformer.config)
        super().__init__(source, dim, tokenizer, max_length)
        self.transformer = transformer
        self.pooling = pooling
        self.projection = nn.Linear(hidden, dim) if projection_dim else None

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: ``(n, dim)`` un-normalised embeddings."""
        enc = self.tokenize(texts)
        hidden = self.transformer(**enc).last_hidden_state  # (n, L, H)
        pooled = pool_hidden_states(hidden, enc["attention_mask"], self.pooling)  # (n, H)
        return self.projection(pooled) if self.projection is not None else pooled  # (n, dim)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the backbone (save_pretrained), tokenizer, projection and mumur_encoder.json."""
        from safetensors.torch import save_file

        folder = Path(path)
        self.transformer.save_pretrained(folder)
        self._save_tokenizer(folder)
        if self.projection is not None:
            state = {
                k: v.detach().cpu().contiguous() for k, v in self.projection.state_dict().items()
            }
            save_file(state, str(folder / _PROJECTION_FILE))
        return write_encoder_file(
            folder,
            self.kind,
            source=self.source,
            pooling=self.pooling,
            projection_dim=self.dim if self.projection is not None else None,
            max_length=self.max_length,
        )


def load_hf_text(
    name_or_path: str,
    pooling: str | None = None,
    projection_dim: int | None = None,
    max_length: int | None = None,
    source: str | None = None,
) -> HFTextEncoder:
    """Load an ``AutoModel`` text encoder from a hub id or folder.

    Settings come from, in order: the arguments, the folder's ``mumur_encoder.json`` (written by
    ``save``), sentence-transformers files (``1_Pooling/config.json``,
    ``sentence_bert_config.json``), defaults (mean pooling, no projection).

    Args:
        name_or_path: hub id or local folder.
        pooling: ``mean`` | ``cls`` | ``eos``.
        projection_dim: add a (new, randomly initialised) projection of this size, unless the
            folder already holds one.
        max_length: truncation length.
        source: name recorded in the identity.

    Returns:
        An ``HFTextEncoder`` in eval mode.
    """
    from transformers import AutoModel

    saved = read_json_file(name_or_path, "mumur_encoder.json", required=False) or {}
    st_pool = read_json_file(name_or_path, "1_Pooling/config.json", required=False) or {}
    st_cfg = read_json_file(name_or_path, "sentence_bert_config.json", required=False) or {}
    if pooling is None:
        pooling = saved.get("pooling")
    if pooling is None and st_pool:
        pooling = "cls" if st_pool.get("pooling_mode_cls_token") else "mean"
        if st_pool.get("pooling_mode_lasttoken"):
            pooling = "eos"
    pooling = pooling or "mean"
    saved_projection = saved.get("projection_dim")
    if projection_dim is not None and saved_projection and projection_dim != saved_projection:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r}: projection_dim {projection_dim} differs from "
            f"the saved projection ({saved_projection})"
        )
    projection_dim = projection_dim or saved_projection
    max_length = max_length or saved.get("max_length") or st_cfg.get("max_seq_length")
    tokenizer = load_tokenizer(name_or_path)
    try:
        with quiet_transformers():
            transformer = AutoModel.from_pretrained(name_or_path)
    except Exception as exc:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r} with AutoModel: {exc}"
        ) from exc
    encoder = HFTextEncoder(
        transformer.float(),
        tokenizer,
        source or saved.get("source") or name_or_path,
        pooling,
        projection_dim,
        max_length,
    )
    if saved_projection:
        from safetensors.torch import load_file

        weights = resolve_file(name_or_path, _PROJECTION_FILE)
        encoder.projection.load_state_dict(load_file(weights))
    return encoder.eval()


class MClipTextEncoder(TextEncoder):
    """M-CLIP text encoder (Carlsson et al. 2022), the ``multilingual_clip`` checkpoint layout.

    ``transformer`` is the ``AutoModel`` backbone (XLM-R for XLM-Roberta-Large-Vit-B-32) and
    ``LinearTransformation`` maps its masked mean-pooled states into CLIP's space, so the state
    dict keys are ``transformer.*`` and ``LinearTransformation.*`` as in the released weights.
    Deviation: inputs are truncated to the backbone's position limit (the reference pads only).

    Args:
        transformer: the backbone.
        num_dims: CLIP embedding size (``numDims``).
        tokenizer: the tokenizer from the same folder.
        source: name or path it came from.
        model_base: the ``modelBase`` string of the checkpoint config.
    """

    kind = "m-clip"

    def __init__(
        self, transformer: nn.Module, num_dims: int, tokenizer: Any, source: str, model_base: str
    ):
        max_length = max_input_length(tokenizer, transformer.config)
        super().__init__(source, num_dims, tokenizer, max_length)
        self.model_base = model_base
        self.transformer = transformer
        self.LinearTransformation = nn.Linear(int(transformer.config.hidden_size), int(num_dims))

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: ``(n, dim)`` un-normalised embeddings."""
        enc = self.tokenize(texts)
        if set(enc) - {"input_ids", "attention_mask", "token_type_ids"} or (
                "token_type_ids" in enc and enc["token_type_ids"].any()):
            embs = self.transformer(**enc)[0]  # (n, L, H)
            embs = pool_hidden_states(embs, enc["attention_mask"], "mean")  # (n, H)
            return self.LinearTransformation(embs)  # (n, dim)
        return self.forward_tokens(enc["input_ids"], enc["attention_mask"])

    def forward_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                       ) -> torch.Tensor:
        """The tensor core of `forward` for single-segment input (token type 0, what fast
        inference backends run): (n, L) -> (n, dim)."""
        embs = self.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
        embs = pool_hidden_states(embs, attention_mask, "mean")  # (n, H)
        return self.LinearTransformation(embs)  # (n, dim)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the M-CLIP layout: config.json (model_type ``M-CLIP``), model.safetensors and
        the tokenizer.

        ``config.json`` also embeds the backbone config as ``transformerConfig`` so the folder
        loads without fetching ``modelBase``.
        """
        from safetensors.torch import save_model

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "model_type": "M-CLIP",
            "architectures": ["MultilingualCLIP"],
            "modelBase": self.model_base,
            "transformerDimensions": int(self.transformer.config.hidden_size),
            "numDims": self.dim,
            "transformerConfig": self.transformer.config.to_dict(),
        }
        with open(folder / "config.json", "w", encoding="utf-8") as fh:
            json.dump(config, fh, indent=2)
        save_model(self, str(folder / "model.safetensors"))
        self._save_tokenizer(folder)
        return write_encoder_file(folder, self.kind, source=self.source)


def _is_buffer_only_key(key: str) -> bool:
    # Older transformers saved these index buffers; current models rebuild them.
    return key.endswith(("position_ids", "token_type_ids"))


def load_mclip(name_or_path: str, source: str | None = None) -> MClipTextEncoder:
    """Load an M-CLIP checkpoint (``M-CLIP/XLM-Roberta-Large-Vit-B-32`` layout).

    The backbone config comes from ``transformerConfig`` in ``config.json`` when present (folders
    written by ``save``), else from ``AutoConfig.from_pretrained(modelBase)`` as the reference
    ``MultilingualCLIP`` does. Weights: ``model.safetensors`` or ``pytorch_model.bin`` (read with
    ``weights_only=True``).

    Args:
        name_or_path: hub id or local folder.
        source: name recorded in the identity.

    Returns:
        An ``MClipTextEncoder`` in eval mode.
    """
    from transformers import AutoConfig, AutoModel

    cfg = read_json_file(name_or_path, "config.json")
    missing = [k for k in ("modelBase", "transformerDimensions", "numDims") if k not in cfg]
    if cfg.get("model_type") != "M-CLIP" or missing:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r} as M-CLIP: config lacks {missing}"
        )
    try:
        if "transformerConfig" in cfg:
            base = dict(cfg["transformerConfig"])
            base_config = AutoConfig.for_model(base.pop("model_type"), **base)
        else:
            base_config = AutoConfig.from_pretrained(cfg["modelBase"])
    except Exception as exc:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r}: backbone config {cfg['modelBase']!r}: {exc}"
        ) from exc
    tokenizer = load_tokenizer(name_or_path)
    with quiet_transformers():
        transformer = AutoModel.from_config(base_config)
    saved = read_json_file(name_or_path, "mumur_encoder.json", required=False) or {}
    encoder = MClipTextEncoder(
        transformer,
        int(cfg["numDims"]),
        tokenizer,
        source or saved.get("source") or name_or_path,
        cfg["modelBase"],
    )
    state = _read_weights(name_or_path)
    state = {k: v for k, v in state.items() if not _is_buffer_only_key(k)}
    result = encoder.load_state_dict(state, strict=False)
    missing_keys = [k for k in result.missing_keys if not _is_buffer_only_key(k)]
    if missing_keys or result.unexpected_keys:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r}: weights do not match the M-CLIP layout "
            f"(missing {missing_keys[:5]}, unexpected {result.unexpected_keys[:5]})"
        )
    return encoder.float().eval()


def _read_weights(name_or_path: str) -> dict[str, torch.Tensor]:
    """Read ``model.safetensors`` or, failing that, ``pytorch_model.bin`` (weights only)."""
    path = resolve_file(name_or_path, "model.safetensors", required=False)
    if path is not None:
        from safetensors.torch import load_file

        return load_file(path)
    path = resolve_file(name_or_path, "pytorch_model.bin", required=False)
    if path is None:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r}: neither model.safetensors nor "
            "pytorch_model.bin found"
        )
    return torch.load(path, map_location="cpu", weights_only=True)
