"""Visual descriptions of media (LECCR §3.2): backends (the synthetic world's own descriptions,
a degraded variant, Hugging Face captioners and chat VLMs), a persistent resumable cache, and the
description inputs of heads that read them."""

from __future__ import annotations

from .features import description_inputs, needs_descriptions
from .pipeline import (
    DEFAULT_PROMPT,
    Describer,
    default_description_cache,
    describe_benchmark,
    describe_paths,
    item_key,
    load_describer,
)

__all__ = [
    "DEFAULT_PROMPT",
    "Describer",
    "default_description_cache",
    "describe_benchmark",
    "describe_paths",
    "description_inputs",
    "item_key",
    "load_describer",
    "needs_descriptions",
]
