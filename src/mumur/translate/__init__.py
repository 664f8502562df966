"""Machine translation of captions for translate-train: HF seq2seq backends (MarianMT, M2M100,
NLLB-200, mBART-50), per-family language codes, a persistent SQLite cache and the dataset
pipeline (`translate_dataset`, `save_translations`, `merge_translations`)."""

from __future__ import annotations

from .backends import (
    GenerationOptions,
    Seq2SeqTranslator,
    detect_family,
    model_identity,
    resolve_model_name,
)
from .cache import TranslationCache, default_cache_path
from .codes import FAMILIES, language_code, marian_target_tokens, normalize_language
from .pipeline import (
    load_translations,
    merge_translations,
    save_translations,
    translate_benchmark,
    translate_dataset,
    translate_texts,
    translations_json,
)

__all__ = [
    "FAMILIES",
    "GenerationOptions",
    "Seq2SeqTranslator",
    "TranslationCache",
    "default_cache_path",
    "detect_family",
    "language_code",
    "load_translations",
    "marian_target_tokens",
    "merge_translations",
    "model_identity",
    "normalize_language",
    "resolve_model_name",
    "save_translations",
    "translate_benchmark",
    "translate_dataset",
    "translate_texts",
    "translations_json",
]
