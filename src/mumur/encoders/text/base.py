"""What every text encoder shares: the `TextEncoder` base (tokenise, save the tokenizer with the
weights), the tokenizer loader and token pooling."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from mumur.encoders.base import Encoder, quiet_transformers, resolve_file
from mumur.errors import EncoderLoadError

__all__ = [
    "POOLINGS",
    "TextEncoder",
    "load_tokenizer",
    "max_input_length",
    "pool_hidden_states",
]

POOLINGS = ("mean", "cls", "eos")
# One lock for every encoder's tokenizer language: setting it and tokenising are one step.
_LANGUAGE_LOCK = threading.RLock()
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


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
            f"cannot load encoder {name_or_path!r}: no tokenizer files "
            f"({', '.join(_TOKENIZER_FILES)}) in that folder; a text encoder's tokenizer must be "
            "saved next to its weights"
        )
    errors = []
    for loader in (AutoTokenizer, PreTrainedTokenizerFast):
        try:
            with quiet_transformers():
                return loader.from_pretrained(name_or_path)
        except Exception as exc:  # noqa: BLE001 - tokenizer classes raise many types; all reported
            errors.append(f"{loader.__name__}: {exc}")
    raise EncoderLoadError(f"cannot load the tokenizer of {name_or_path!r}: {'; '.join(errors)}")


def max_input_length(tokenizer, config) -> int:
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
    #: Language-code family the tokenizer needs with each text (``"nllb"``: FLORES-200 codes such
    #: as ``deu_Latn``, as NLLB-CLIP); None for encoders that take text in any language as is.
    code_family: str | None = None
    #: The code used when none is given (``eng_Latn`` for NLLB).
    default_language_code: str | None = None

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

    def _set_language_code(self, code: str) -> None:
        """Make the tokenizer prefix ``code`` (encoders with a ``code_family`` implement it)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def language(self, code: str | None) -> Iterator[None]:
        """Tokenise as language ``code`` inside the block (thread-safe; restored on exit).

        Args:
            code: a code of ``code_family`` (e.g. ``deu_Latn``); None, or an encoder without a
                ``code_family``, leaves tokenisation unchanged.
        """
        if code is None or self.code_family is None:
            yield
            return
        with _LANGUAGE_LOCK:
            self._set_language_code(code)
            try:
                yield
            finally:
                self._set_language_code(self.default_language_code)

    @torch.no_grad()
    def encode(self, batch: Any, language_code: str | None = None) -> torch.Tensor:
        """``Encoder.encode``, with the texts' language code for encoders that need one.

        Args:
            batch: list of strings.
            language_code: a code of ``code_family`` for every text of the batch, or None
                (``default_language_code``); ignored by encoders without a ``code_family``.

        Returns:
            ``(n, dim)`` L2-normalised.
        """
        with self.language(language_code):
            return super().encode(batch)

    def _save_tokenizer(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)
