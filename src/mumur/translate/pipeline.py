"""Translate a dataset's captions (translate-train) and save/merge the translations as JSON.

`translate_dataset` sends a `RetrievalDataset`'s source-language captions through a translation
model into each target language and returns the same dataset with the extra caption languages.
Unique texts are translated once, in batches sorted by length (less padding), through a persistent
`TranslationCache` committed after every batch, so a rerun or a restart after a crash only
translates what is not cached yet.

The JSON file written by `save_translations` is
`{"model": ..., "source": "en", "captions": {item_id: {lang: [texts]}}}` (plus `identity`,
`generation`, `languages`); `merge_translations` adds such a file to any loaded dataset.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from ..data.dataset import RetrievalDataset
from ..errors import DatasetError, TranslationError
from ..fsutil import atomic_write_json
from .backends import GenerationOptions, Seq2SeqTranslator, resolve_model_name
from .cache import TranslationCache, default_cache_path
from .codes import normalize_language

__all__ = [
    "Translator",
    "load_translations",
    "merge_translations",
    "save_translations",
    "translate_benchmark",
    "translate_dataset",
    "translate_texts",
    "translations_json",
]


class Translator(Protocol):
    """What the pipeline needs from a backend (`Seq2SeqTranslator` implements it)."""

    identity: str

    def check_source(self, source_language: str) -> None: ...

    def target_token(self, target_language: str) -> str | None: ...

    def translate(self, texts: list[str], source_language: str, target_language: str,
                  options: GenerationOptions = ...) -> list[str]: ...


def translate_texts(translator: Translator, texts: list[str], source: str, target: str, *,
                    cache: TranslationCache | None = None,
                    options: GenerationOptions | None = None, batch_size: int = 32,
                    progress: bool = True) -> list[str]:
    """Translate `texts`, reusing and filling the cache.

    Args:
        translator: a loaded backend.
        texts: source texts (duplicates are translated once).
        source: ISO 639-1 tag of `texts`.
        target: ISO 639-1 tag to translate into.
        cache: persistent cache; None translates everything.
        options: decoding options (part of the cache key; default `GenerationOptions()`).
        batch_size: texts per model call.
        progress: show a progress bar.

    Returns:
        Translations parallel to `texts` (blank texts translate to "").

    Raises:
        UnsupportedLanguageError: before any work, when the model lacks either language.
        TranslationError: when the backend returns the wrong number of outputs.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    options = options or GenerationOptions()
    translator.check_source(source)
    translator.target_token(target)
    src, tgt = normalize_language(source), normalize_language(target)
    opts = options.as_dict()
    unique = list(dict.fromkeys(texts))
    done: dict[str, str] = {t: "" for t in unique if not t.strip()}
    if cache is not None:
        done.update(cache.get_many(translator.identity, opts, src, tgt, unique))
    # Longest first: neighbours have similar lengths (little padding) and an out-of-memory
    # batch shows up at the start, not after hours. Order is restored through `done`.
    todo = sorted((t for t in unique if t not in done), key=len, reverse=True)
    with tqdm(total=len(todo), disable=not progress, desc=f"translate {source}->{target}",
              unit="text") as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            out = translator.translate(batch, source, target, options)
            if len(out) != len(batch):
                raise TranslationError(f"{translator.identity} returned {len(out)} "
                                       f"translations for {len(batch)} texts")
            pairs = list(zip(batch, out))
            if cache is not None:
                cache.put_many(translator.identity, opts, src, tgt, pairs)  # commit per batch
            done.update(pairs)
            bar.update(len(batch))
    return [done[t] for t in texts]


def translate_dataset(dataset: RetrievalDataset, languages: list[str],
                      model: str | Translator, *, source: str = "en",
                      cache: TranslationCache | str | os.PathLike | None = None,
                      options: GenerationOptions | None = None, batch_size: int = 32,
                      device: str = "cpu", progress: bool = True,
                      replace_existing: bool = True) -> RetrievalDataset:
    """Translate the dataset's `source` captions into `languages` (translate-train).

    Args:
        dataset: any `RetrievalDataset`.
        languages: target ISO 639-1 tags; the caption language keys are these tags as given.
        model: hub id or folder of a MarianMT / M2M100 / NLLB-200 / mBART-50 checkpoint, a
            template with `{tgt}` for one Marian model per pair
            (`Helsinki-NLP/opus-mt-en-{tgt}`), or an already loaded translator.
        source: language of the captions to translate.
        cache: a `TranslationCache`, a path to one, or None (no cache).
        options: decoding options.
        batch_size: texts per model call.
        device: torch device for models loaded here.
        progress: show progress bars.
        replace_existing: drop captions already in a target language (translations replace
            them); False keeps them next to the translations.

    Returns:
        A copy of `dataset` whose `captions` also hold one translation of every source caption
        per target language, and whose `info["translations"]` records model, identities,
        source, languages and decoding options.

    Raises:
        DatasetError: the dataset has no captions in `source`.
        UnsupportedLanguageError: a language is not supported (checked before translating).
    """
    options = options or GenerationOptions()
    texts, caption_item = dataset.captions_for(source)
    if not texts:
        raise DatasetError(
            f"dataset {dataset.name}/{dataset.split} has no {source!r} captions to translate "
            f"(languages present: {', '.join(dataset.languages) or 'none'})")
    languages = list(dict.fromkeys(languages))
    if not languages:
        raise ValueError("no target languages given")
    own_cache = not isinstance(cache, TranslationCache) and cache is not None
    store = TranslationCache(cache) if own_cache else cache
    loaded: dict[str, Translator] = {}

    def translator_for(lang: str) -> Translator:
        if not isinstance(model, str):
            return model
        name = resolve_model_name(model, lang)
        if name not in loaded:
            loaded.clear()  # one per-pair model in memory at a time
            loaded[name] = Seq2SeqTranslator(name, device=device)
        return loaded[name]

    try:
        if not isinstance(model, str) or "{tgt}" not in model:
            for lang in languages:  # fail on any unsupported language before translating
                translator_for(lang).check_source(source)
                translator_for(lang).target_token(lang)
        targets = set(languages)
        captions = [c for c in dataset.captions if not (replace_existing and c[1] in targets)]
        identities = {}
        for lang in languages:
            translator = translator_for(lang)
            identities[lang] = translator.identity
            out = translate_texts(translator, texts, source, lang, cache=store, options=options,
                                  batch_size=batch_size, progress=progress)
            captions += [(item, lang, text) for item, text in zip(caption_item, out, strict=True)]
    finally:
        if own_cache:
            store.close()
    info = dict(dataset.info)
    info["translations"] = {
        "model": model if isinstance(model, str) else model.identity,
        "identity": identities, "source": source, "languages": languages,
        "generation": options.as_dict(),
    }
    return dataclasses.replace(dataset, captions=captions, info=info)


def translations_json(dataset: RetrievalDataset, languages: list[str] | None = None,
                      model: str | None = None, source: str | None = None) -> dict:
    """The JSON caption file content for `languages` of `dataset`.

    Args:
        dataset: a dataset returned by `translate_dataset` (or any dataset).
        languages: languages to export; default: those recorded by `translate_dataset`.
        model: model name to record; default: the one recorded by `translate_dataset`.
        source: source language to record; default: recorded one, else `en`.

    Returns:
        `{"model", "source", "languages", "identity", "generation",
        "captions": {item_id: {lang: [texts]}}}`; items without captions in `languages` are left
        out.
    """
    meta = dataset.info.get("translations", {})
    languages = list(languages if languages is not None else meta.get("languages", []))
    if not languages:
        raise ValueError("no languages to export")
    wanted = set(languages)
    captions: dict[str, dict[str, list[str]]] = {}
    for item, lang, text in dataset.captions:
        if lang in wanted:
            captions.setdefault(dataset.items[item], {}).setdefault(lang, []).append(text)
    return {
        "model": model if model is not None else meta.get("model"),
        "source": source if source is not None else meta.get("source", "en"),
        "languages": languages,
        "identity": meta.get("identity"),
        "generation": meta.get("generation"),
        "captions": captions,
    }


def save_translations(dataset: RetrievalDataset, path: str | os.PathLike,
                      languages: list[str] | None = None) -> Path:
    """Write `translations_json(dataset, languages)` to `path` atomically (temp file + rename).

    Args:
        dataset: a dataset returned by `translate_dataset`.
        path: output JSON file (its folder is created).
        languages: languages to export (default: the translated ones).

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, translations_json(dataset, languages), indent=1)
    return path


def load_translations(path: str | os.PathLike) -> dict:
    """Read and validate a translation JSON file.

    Args:
        path: file written by `save_translations`.

    Returns:
        The parsed object (`captions`: `{item_id: {lang: [texts]}}`).

    Raises:
        DatasetError: missing file, invalid JSON or wrong shape.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read translations {path}: {exc}") from exc
    caps = data.get("captions") if isinstance(data, dict) else None
    if not isinstance(caps, dict) or not all(
            isinstance(v, dict) and all(isinstance(t, list) for t in v.values())
            for v in caps.values()):
        raise DatasetError(f"{path}: expected {{'captions': {{item_id: {{lang: [texts]}}}}}}")
    return data


def merge_translations(dataset: RetrievalDataset, translations: dict | str | os.PathLike,
                       replace_existing: bool = True) -> RetrievalDataset:
    """Add the captions of a translation file to a dataset (items matched by id).

    Args:
        dataset: the dataset to extend.
        translations: a `load_translations` result or a path to the JSON file. Ids not in the
            dataset are ignored (a file may cover several splits).
        replace_existing: drop the dataset's own captions in the file's languages.

    Returns:
        A copy of `dataset` with the extra captions.

    Raises:
        DatasetError: no item of the dataset appears in the file.
    """
    data = translations if isinstance(translations, dict) else load_translations(translations)
    index = {item_id: i for i, item_id in enumerate(dataset.items)}
    langs = {lang for per_item in data["captions"].values() for lang in per_item}
    captions = [c for c in dataset.captions if not (replace_existing and c[1] in langs)]
    matched = 0
    for item_id, per_item in data["captions"].items():
        i = index.get(item_id)
        if i is None:
            continue
        matched += 1
        for lang, texts in per_item.items():
            captions += [(i, lang, str(t)) for t in texts]
    if matched == 0 and data["captions"]:
        raise DatasetError(
            f"none of the {len(data['captions'])} translated items is in "
            f"{dataset.name}/{dataset.split} ({len(dataset.items)} items)")
    return dataclasses.replace(dataset, captions=captions)


def translate_benchmark(dataset: str, root: str | os.PathLike, split: str, languages: list[str],
                        model: str, out: str | os.PathLike, *, source: str = "en",
                        batch_size: int = 32, cache: str | os.PathLike | None = None,
                        device: str = "cpu", options: GenerationOptions | None = None,
                        progress: bool = True) -> Path:
    """Load a benchmark split, translate its captions and write the JSON file (`mumur translate`).

    Args:
        dataset: benchmark name (`mumur.data.list_benchmarks()`).
        root: benchmark folder.
        split: `train`, `val` or `test`.
        languages: target ISO 639-1 tags.
        model: translation model (see `translate_dataset`).
        out: output JSON path.
        source: source caption language.
        batch_size: texts per model call.
        cache: SQLite cache file (default `default_cache_path()`).
        device: torch device.
        options: decoding options.
        progress: show progress bars.

    Returns:
        The written path.
    """
    from ..data import load_benchmark

    ds = load_benchmark(dataset, root, split=split)
    with TranslationCache(cache if cache is not None else default_cache_path()) as store:
        translated = translate_dataset(ds, languages, model, source=source, cache=store,
                                       options=options, batch_size=batch_size, device=device,
                                       progress=progress)
    return save_translations(translated, out)
