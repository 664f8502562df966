"""MLA batches: one language per mini-batch (survey §3.2.3: "we sample mini-batches of one
language for each step, and iteratively train over all languages")."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...data.synthetic.parallel import ParallelPair
from ...errors import ConfigError
from ..data import TextFeatureTable

__all__ = ["ExposureBatches", "NltBatches", "exposure_pairs", "language_of_step"]


def language_of_step(languages: Sequence[str], seed: int, epoch: int, index: int) -> str:
    """The language of batch `index` of `epoch`: the languages in a seeded order that changes
    every pass over them, so consecutive steps cycle through every language."""
    n = len(languages)
    step = epoch * 1_000_003 + index  # epochs never share a pass
    order = np.random.default_rng([seed, step // n]).permutation(n)
    return languages[order[step % n]]


class NltBatches:
    """Stage 1 batches: `batch_size` translation pairs of one language with the frozen teacher's
    embeddings Psi(S) of their English sources (a trainer `BatchSource`).

    Args:
        pairs: translation pairs (English targets are ignored: English keeps CLIP's own path).
        teacher: `TextFeatureTable` of Psi on every source sentence.
        batch_size: pairs per batch.
        steps_per_epoch: batches per epoch.
        seed: data-order seed.
    """

    def __init__(self, pairs: Sequence[ParallelPair], teacher: TextFeatureTable, batch_size: int,
                 steps_per_epoch: int, seed: int = 0):
        by_language: dict[str, list[ParallelPair]] = {}
        for pair in pairs:
            if pair.language != "en":
                by_language.setdefault(pair.language, []).append(pair)
        if not by_language:
            raise ConfigError("MLA stage 1: no non-English translation pairs")
        self.by_language = by_language
        self.languages = sorted(by_language)
        self.teacher, self.batch_size = teacher, batch_size
        self.steps_per_epoch, self.seed = steps_per_epoch, seed

    def num_batches(self) -> int:
        return self.steps_per_epoch

    def batch(self, epoch: int, index: int) -> dict:
        language = language_of_step(self.languages, self.seed, epoch, index)
        pool = self.by_language[language]
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        chosen = [pool[i] for i in rng.integers(len(pool), size=self.batch_size)]
        return {"language": language, "target": [p.target for p in chosen],
                "teacher": self.teacher([p.source for p in chosen])}  # (B, D)


def exposure_pairs(manifest: dict, languages: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
    """Per language, every (item index, caption) of a manifest (item order)."""
    out: dict[str, list[tuple[int, str]]] = {}
    for index, item in enumerate(manifest["items"]):
        for lang in languages:
            for text in item["captions"].get(lang, []):
                out.setdefault(lang, []).append((index, text))
    return out


class ExposureBatches:
    """Stage 2 batches: `batch_size` (caption, item) pairs of one language, distinct items (the
    other items of the batch are the NCE negatives), with the frozen Phi(V) of each item.

    Args:
        captions: `exposure_pairs` output.
        media: `(n_items, D)` frozen item embeddings.
        batch_size: pairs per batch (at most the number of items with a caption in a language).
        steps_per_epoch: batches per epoch.
        seed: data-order seed.
    """

    def __init__(self, captions: dict[str, list[tuple[int, str]]], media: np.ndarray,
                 batch_size: int, steps_per_epoch: int, seed: int = 0):
        self.captions = {lang: pairs for lang, pairs in captions.items() if lang != "en"}
        if not self.captions:
            raise ConfigError("MLA stage 2: no non-English captions in the exposure world")
        self.languages = sorted(self.captions)
        self.by_item = {lang: _group_by_item(pairs) for lang, pairs in self.captions.items()}
        smallest = min(len(items) for items in self.by_item.values())
        if smallest < 2:
            raise ConfigError("MLA stage 2: a language has captions for fewer than 2 items")
        self.batch_size = min(batch_size, smallest)
        self.media = torch.as_tensor(media, dtype=torch.float32)
        self.steps_per_epoch, self.seed = steps_per_epoch, seed

    def num_batches(self) -> int:
        return self.steps_per_epoch

    def batch(self, epoch: int, index: int) -> dict:
        language = language_of_step(self.languages, self.seed, epoch, index)
        items = self.by_item[language]
        rng = np.random.default_rng([self.seed, epoch, index, 2])
        keys = list(items)
        chosen = [keys[i] for i in rng.choice(len(keys), size=self.batch_size, replace=False)]
        texts = [items[k][rng.integers(len(items[k]))] for k in chosen]
        return {"language": language, "target": texts, "media": self.media[chosen]}  # (B, D)


def _group_by_item(pairs: Sequence[tuple[int, str]]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for item, text in pairs:
        out.setdefault(item, []).append(text)
    return out
