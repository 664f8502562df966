"""CLIP text towers: the transformers CLIP text model with its projection, open_clip's text
tower, and the OpenAI CLIP BPE tokenizer built offline from open_clip's vocabulary file."""

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
    OpenClipTower,
    create_open_clip,
    load_clip_tower,
    write_encoder_file,
)
from mumur.encoders.text.base import TextEncoder, load_tokenizer
from mumur.errors import EncoderLoadError

__all__ = [
    "CLIP_CONTEXT_LENGTH",
    "ClipTextEncoder",
    "OpenClipTextEncoder",
    "build_clip_tokenizer",
    "language_code_family",
    "load_clip_text",
    "load_open_clip_text",
]

CLIP_CONTEXT_LENGTH = 77
# Tokenizer class-name prefix -> (code family, default code) for text towers whose tokenizer
# prefixes a source-language token (NLLB-CLIP's NLLB-200 tokenizer).
_LANGUAGE_TOKENIZERS = {"Nllb": ("nllb", "eng_Latn")}


def language_code_family(hf_tokenizer: Any) -> tuple[str | None, str | None]:
    """``(code family, default code)`` of a transformers tokenizer that takes a source language
    (``set_src_lang_special_tokens``), else ``(None, None)``."""
    if not callable(getattr(hf_tokenizer, "set_src_lang_special_tokens", None)):
        return None, None
    name = type(hf_tokenizer).__name__
    for prefix, (family, default) in _LANGUAGE_TOKENIZERS.items():
        if name.startswith(prefix):
            return family, getattr(hf_tokenizer, "src_lang", None) or default
    return None, None


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
        return self.forward_tokens(enc["input_ids"], enc["attention_mask"])

    def forward_tokens(self, input_ids: torch.Tensor, attention_mask: torch.Tensor
                       ) -> torch.Tensor:
        """The tensor core of `forward` (what fast inference backends run): (n, L) -> (n, dim)."""
        out = self.model(input_ids=input_ids, attention_mask=attention_mask)
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
    model = load_clip_tower(name_or_path, "text")
    tokenizer = load_tokenizer(name_or_path)
    return ClipTextEncoder(model, tokenizer, source or name_or_path).eval()


class OpenClipTextEncoder(OpenClipTower, TextEncoder):
    """open_clip text tower: ``forward`` is ``model.encode_text(tokenizer(texts))``.

    A tower whose tokenizer prefixes the source language (NLLB-CLIP: ``nllb-clip-base``,
    ``nllb-clip-large``, ``*-siglip``) has ``code_family`` ``"nllb"``: ``encode(texts,
    language_code="deu_Latn")`` tokenises as open_clip's ``tokenizer.set_language("deu_Latn")``
    means (English, ``eng_Latn``, when no code is given).

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
        self._keep_open_clip(open_clip, model, model_name)
        family, default = language_code_family(getattr(tokenizer, "tokenizer", None))
        self.code_family, self.default_language_code = family, default

    def _set_language_code(self, code: str) -> None:
        hf = self.tokenizer.tokenizer
        if hf.convert_tokens_to_ids(code) in (None, hf.unk_token_id):
            raise EncoderLoadError(f"encoder {self.source!r}: its tokenizer has no language code "
                                   f"{code!r} ({self.code_family} codes, e.g. deu_Latn)")
        # Not open_clip's `set_language` (`set_src_lang_special_tokens`): with transformers 5 the
        # next tokenizer call resets the prefix to `src_lang`, silently dropping the code. The
        # `src_lang` setter keeps it.
        hf.src_lang = code

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: ``(n, dim)`` un-normalised embeddings."""
        tokens = self.tokenizer(list(texts)).to(self.device)  # (n, context_length)
        return self.model.encode_text(tokens)  # (n, dim)


def load_open_clip_text(name: str, source: str | None = None) -> OpenClipTextEncoder:
    """Load an open_clip text tower from ``open_clip:<arch>[:<pretrained>]`` or a local-dir folder.

    Args:
        name: the encoder name or folder.
        source: name recorded in the identity.

    Returns:
        An ``OpenClipTextEncoder`` in eval mode.
    """
    return OpenClipTextEncoder(*create_open_clip(name), source or name).eval()


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
