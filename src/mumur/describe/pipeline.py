"""Describe media files with a backend, through a persistent cache, resumably.

A backend (`load_describer(spec)`) has an ``identity`` (model and generation options), a
``prompt`` and ``describe(paths) -> texts``. `describe_paths` looks every file up in the cache
first, keyed by (backend identity, prompt, file content hash), describes only the missing ones in
batches and commits each batch before the next: a run killed midway keeps every finished batch and
a rerun describes only the rest. The cache is the translation cache's SQLite store
(`mumur.translate.cache.TranslationCache`, WAL, one transaction per batch) in its own file, the
item's content hash in the source-text column.

Specs: ``world-descriptions``; ``world-descriptions-degraded[:share=0.3,mode=mixed,seed=0]``;
``hf-caption:<model id or folder>`` (BLIP / BLIP-2); ``hf-chat:<model id or folder>`` (LLaVA,
Qwen2-VL, any chat VLM with a chat template). Options after a comma:
``hf-chat:llava-hf/llava-1.5-7b-hf,frames=4,max_new_tokens=256``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from ..errors import ConfigError
from ..translate.cache import TranslationCache

__all__ = ["DEFAULT_PROMPT", "Describer", "default_description_cache", "describe_benchmark",
           "describe_paths", "item_key", "load_describer"]

DEFAULT_PROMPT = "Please describe the contents of this image in detail."  # LECCR §3.2
_BLOCK = 1 << 20


class Describer(Protocol):
    identity: str
    prompt: str

    def describe(self, paths: list[str]) -> list[str]: ...


def default_description_cache() -> Path:
    """`$MUMUR_CACHE_DIR/descriptions.sqlite`, else `~/.cache/mumur/descriptions.sqlite`."""
    root = os.environ.get("MUMUR_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mumur"
    return Path(root) / "descriptions.sqlite"


def item_key(path: str | Path) -> str:
    """Cache key of a media file: sha1 of its bytes (a moved file keeps its descriptions)."""
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _options(text: str) -> dict:
    out = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigError(f"describer option {part!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def load_describer(spec: str) -> Describer:
    """The backend named by `spec` (module docstring).

    Raises:
        ConfigError: unknown backend or bad option.
    """
    name, _, rest = spec.partition(":")
    if name == "world-descriptions" and not rest:
        from .world import WorldDescriptions

        return WorldDescriptions()
    if name == "world-descriptions-degraded":
        from .world import WorldDescriptions

        opts = {"share": 0.3, **_options(rest)}
        try:
            return WorldDescriptions(float(opts.pop("share")), opts.pop("mode", "mixed"),
                                     int(opts.pop("seed", 0)), **opts)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"describer {spec!r}: {exc}") from None
    if name in ("hf-caption", "hf-chat") and rest:
        from .hf import HFDescriber

        model, _, options = rest.partition(",")
        try:
            return HFDescriber(model, kind=name[3:], **_options(options))
        except TypeError as exc:
            raise ConfigError(f"describer {spec!r}: {exc}") from None
    raise ConfigError(f"unknown describer {spec!r}; use world-descriptions, "
                      "world-descriptions-degraded[:share=S,mode=M,seed=K], hf-caption:<model> "
                      "or hf-chat:<model>")


def describe_paths(paths: Sequence[str | Path], describer: Describer,
                   cache: TranslationCache | None = None, *, batch_size: int = 8,
                   progress: bool = False) -> list[str]:
    """One description per file, from the cache or the backend (module docstring).

    Args:
        paths: media files (duplicates allowed).
        describer: the backend.
        cache: the persistent cache (None: describe everything, keep nothing).
        batch_size: files per backend call (and per committed transaction).
        progress: show a progress bar over the files still to describe.

    Returns:
        Descriptions in `paths` order.
    """
    paths = [str(p) for p in paths]
    keys = [item_key(p) for p in paths]
    options = {"prompt": describer.prompt}
    found = {} if cache is None else cache.get_many(describer.identity, options, "media", "en",
                                                    keys)
    todo = list(dict.fromkeys(k for k in keys if k not in found))
    first = {k: p for p, k in zip(paths, keys)}
    with tqdm(total=len(todo), desc="describe", unit="item", disable=not progress) as bar:
        for s in range(0, len(todo), batch_size):
            chunk = todo[s:s + batch_size]
            texts = describer.describe([first[k] for k in chunk])
            pairs = list(zip(chunk, texts))
            if cache is not None:
                cache.put_many(describer.identity, options, "media", "en", pairs)
            found.update(pairs)
            bar.update(len(chunk))
    return [found[k] for k in keys]


def describe_benchmark(dataset: str, root: str | Path, split: str, backend: str,
                       out: str | Path | None = None, *, cache: str | Path | None = None,
                       batch_size: int = 8, progress: bool = True) -> dict:
    """Describe every item of a benchmark split (`mumur describe`), through the cache.

    Args:
        dataset: benchmark name (`mumur.data.list_benchmarks()`).
        root: its folder.
        split: train, val or test.
        backend: describer spec (`load_describer`).
        out: optional JSON file ``{"describer", "prompt", "split", "descriptions": {id: text}}``.
        cache: the SQLite cache (default `default_description_cache()`).
        batch_size: items per backend call and per committed transaction.
        progress: progress bar.

    Returns:
        The JSON object.
    """
    from ..data import load_benchmark
    from ..fsutil import atomic_write_json

    ds = load_benchmark(dataset, root, split=split)
    describer = load_describer(backend)
    paths = [str(ds.media_path(i)) for i in range(len(ds))]
    with TranslationCache(cache or default_description_cache()) as store:
        texts = describe_paths(paths, describer, store, batch_size=batch_size, progress=progress)
    result = {"describer": describer.identity, "prompt": describer.prompt, "split": split,
              "descriptions": dict(zip(map(str, ds.items), texts))}
    if out is not None:
        atomic_write_json(Path(out), result, indent=2)
    return result
