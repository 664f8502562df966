"""Distillation data: the worlds' manifests, their translation pairs, the frozen encoders' text
features (teacher targets, usem3 inputs) and the batches of pairs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ...data.feature_store import FeatureStore, store_folder, text_tag
from ...data.features import cache_text_features
from ...data.synthetic import build_manifest, generate
from ...data.synthetic.generate import MANIFEST_NAME
from ...data.synthetic.parallel import BitextGroup, ParallelPair, caption_bitext, parallel_pairs
from ...errors import ConfigError
from ...eval.bitext import raw_embeddings
from ..data import TextFeatureTable
from .recipe import DistillRecipe, WorldSpec

__all__ = ["ParallelBatches", "data_summary", "text_features", "translation_pairs",
           "world_manifest"]


def world_manifest(spec: WorldSpec, languages: Sequence[str], cache_dir: Path | None = None,
                   media: bool = False, progress: bool = True) -> tuple[dict, Path | None]:
    """The manifest of a world: from `spec.root`, planned in memory, or generated with media.

    Args:
        spec: the world.
        languages: caption languages.
        cache_dir: where a generated world goes (`<cache_dir>/world-<seed>`); needed with `media`.
        media: whether media files are needed (then the world is rendered once and reused).
        progress: progress bar while rendering.

    Returns:
        `(manifest, folder)`; `folder` is None for a world planned without media.

    Raises:
        ConfigError: `root` holds no manifest, or one of another seed.
    """
    cfg = spec.synth_config(languages)
    if spec.root is not None:
        folder = Path(spec.root)
    elif media:
        folder = Path(cache_dir) / f"world-{spec.seed}"
    else:
        return build_manifest(cfg), None
    manifest_path = folder / MANIFEST_NAME
    if spec.root is None and (not manifest_path.exists() or json.loads(
            manifest_path.read_text(encoding="utf-8")) != build_manifest(cfg)):
        # absent, or a cached world of other settings (e.g. an English-only pretraining world
        # of the same seed): render this one (generation is deterministic)
        generate(folder, cfg, workers=None, progress=progress)
    if not manifest_path.exists():
        raise ConfigError(f"world.root: {folder} holds no {MANIFEST_NAME}")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("seed") != spec.seed:
        raise ConfigError(f"world.root: {folder} is the world of seed {manifest.get('seed')}, "
                          f"the recipe names seed {spec.seed}")
    return manifest, folder


def _split_filter(spec: WorldSpec) -> list[str] | None:
    return None if spec.split == "all" else [spec.split]


def _sample_pairs(pairs: list[ParallelPair], n: int, seed: int) -> list[ParallelPair]:
    if len(pairs) <= n:
        return pairs
    rng = np.random.default_rng([seed, 7])
    return [pairs[i] for i in sorted(rng.choice(len(pairs), size=n, replace=False))]


def translation_pairs(recipe: DistillRecipe
                      ) -> tuple[list[ParallelPair], list[ParallelPair], list[BitextGroup]]:
    """The recipe's training pairs (pretraining world), validation pairs (a fixed sample of the
    validation world's, `recipe.val_pairs` at most) and the validation world's caption groups
    (bitext retrieval, logged at each validation)."""
    languages = recipe.language_list
    world, _ = world_manifest(recipe.world, languages)
    pairs = parallel_pairs(world, languages, _split_filter(recipe.world))
    val_world, _ = world_manifest(recipe.validation_world, languages)
    val_all = parallel_pairs(val_world, languages, _split_filter(recipe.validation_world))
    val_pairs = _sample_pairs(val_all, recipe.val_pairs, recipe.train.seed)
    _, val_groups = caption_bitext(val_world, recipe.validation_world.split, languages)
    return pairs, val_pairs, val_groups


def text_features(encoder, texts: Sequence[str], cache_root: Path, progress: bool
                  ) -> TextFeatureTable:
    """A frozen encoder's raw embeddings of `texts` (deduplicated), cached in a text
    `FeatureStore` under `cache_root` keyed by the encoder's identity."""
    unique = list(dict.fromkeys(texts))
    identity = encoder.identity
    store = FeatureStore.for_texts(store_folder(cache_root, text_tag(identity)), identity)
    features = cache_text_features(store, unique, lambda batch: raw_embeddings(encoder, batch),
                                   batch_size=512, progress=progress)
    return TextFeatureTable(unique, torch.from_numpy(features))


def data_summary(pairs: Sequence[ParallelPair], val_pairs: Sequence[ParallelPair],
                 sentences: Sequence[str], tokenizer_vocab: int | None) -> dict:
    """What a run trained on (`data.json`): pair counts per language, distinct sentences, a
    digest of the pairs, and the student's vocabulary size (scratch transformer)."""
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.language] = counts.get(p.language, 0) + 1
    digest = hashlib.sha1()
    for p in pairs:
        digest.update((p.language + p.source + p.target).encode("utf-8") + b"\x00")
    return {"pairs": len(pairs), "pairs_per_language": counts,
            "source_sentences": len({p.source for p in pairs}),
            "target_sentences": len(sentences), "val_pairs": len(val_pairs),
            "pairs_digest": digest.hexdigest()[:12], "tokenizer_vocab": tokenizer_vocab}


class ParallelBatches:
    """Batches of translation pairs (a trainer `BatchSource`).

    Each batch draws `batch_size` pairs: a language uniformly among `languages`, then a pair of
    that language uniformly (languages balanced whatever their template counts; M-CLIP mixes
    languages inside a mini-batch). Batch `index` of `epoch` depends only on `(seed, epoch,
    index)`. With `fixed`, batches are consecutive slices of `pairs` (validation).

    Args:
        pairs: the translation pairs.
        teacher: `TextFeatureTable` of the teacher's embeddings of every source sentence.
        batch_size: pairs per batch.
        steps_per_epoch: batches per epoch (ignored with `fixed`).
        seed: data-order seed.
        student_features: `TextFeatureTable` of a frozen student base (adapter students).
        fixed: validation mode.
    """

    def __init__(self, pairs: Sequence[ParallelPair], teacher: TextFeatureTable, batch_size: int,
                 steps_per_epoch: int = 1, seed: int = 0,
                 student_features: TextFeatureTable | None = None, fixed: bool = False):
        if not pairs:
            raise ConfigError("no translation pairs (empty world or no languages)")
        self.pairs = list(pairs)
        self.teacher, self.student_features = teacher, student_features
        self.batch_size, self.steps_per_epoch = batch_size, steps_per_epoch
        self.seed, self.fixed = seed, fixed
        by_language: dict[str, list[int]] = {}
        for i, pair in enumerate(self.pairs):
            by_language.setdefault(pair.language, []).append(i)
        self.languages = sorted(by_language)
        self.by_language = [np.asarray(by_language[lang]) for lang in self.languages]

    def num_batches(self) -> int:
        if self.fixed:
            return max(1, len(self.pairs) // self.batch_size)
        return self.steps_per_epoch

    def indices(self, epoch: int, index: int) -> np.ndarray:
        """Pair indices of batch `index` of `epoch`."""
        if self.fixed:
            return np.arange(index * self.batch_size,
                             min(len(self.pairs), (index + 1) * self.batch_size))
        rng = np.random.default_rng([self.seed, epoch, index])
        langs = rng.integers(len(self.languages), size=self.batch_size)
        return np.asarray([self.by_language[k][rng.integers(len(self.by_language[k]))]
                           for k in langs])

    def batch(self, epoch: int, index: int) -> dict:
        pairs = [self.pairs[i] for i in self.indices(epoch, index)]
        out = {"target": [p.target for p in pairs], "language": [p.language for p in pairs],
               "teacher": self.teacher([p.source for p in pairs]),  # (B, D)
               "is_english": torch.tensor([p.language == "en" for p in pairs])}
        if self.student_features is not None:
            out["student_features"] = self.student_features(out["target"])  # (B, Db)
        return out

