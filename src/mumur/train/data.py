"""Training batches from a `RetrievalDataset`.

An epoch is a seeded random order of training units (`epoch_unit`):
- `video` (the default): every item once, with one English caption drawn at random. Deviation
  from CLIP4Clip / X-Pool (the code MuMUR builds on), whose epoch iterates every (video, English
  caption) pair: on MSR-VTT-9k (20 captions a video) that is about 20x fewer steps per epoch, so
  the papers' epoch counts (5 for MSR-VTT) mean far less training here.
- `pair` (paper-faithful): every (item, English caption) pair once; an item with k captions is
  seen k times an epoch (possibly twice in one batch, as in X-Pool).
Each example carries
- one English caption for the English branch, and
- one caption in a non-English language for the multilingual branch, the language drawn uniformly
  among the item's available non-English languages (the translate-train setting of MuMUR §4;
  restricted to `ml_languages` when given), or, in English-only training, an English caption
  (`en_only_ml="english"`) or nothing (`"disabled"`, the ml branch is not trained). With `pair`,
  when the drawn language has as many captions as English (the layout `mumur translate` writes:
  caption k is the translation of English caption k) the pair's own translation is used.

Frames come from a cache built once (`FeatureFrameSource`: frozen-backbone frame features;
`PixelFrameSource`: decoded, resized and centre-cropped uint8 frames in a memory-mapped `.npy`),
holding `num_frames * frames_per_segment` uniformly spaced candidates per item; each epoch picks
one candidate per segment (`random`) or the central one (`uniform`).

Everything random is drawn from generators seeded by `(seed, epoch, ...)`, so batch `i` of epoch
`e` is the same whichever process builds it and whenever: resuming needs only `(epoch, i)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..data.dataset import RetrievalDataset
from ..errors import ConfigError, DatasetError
from .config import EPOCH_UNITS

__all__ = [
    "BatchSource",
    "CaptionSampler",
    "EpochBatches",
    "FeatureFrameSource",
    "FrameSource",
    "PixelFrameSource",
    "TextFeatureTable",
    "TrainBatches",
    "TrainExample",
    "select_frames",
]

# Stream ids that separate the independent random streams drawn from one seed.
_ORDER, _CAPTIONS, _FRAMES = 0, 1, 2


@dataclass(frozen=True)
class TrainExample:
    """One example of an epoch: the item, the en caption and the ml caption (and its language);
    `pair` is the index of the English caption among the item's with `epoch_unit="pair"`."""

    item: int
    text_en: str
    text_ml: str | None
    ml_language: str | None
    pair: int | None = None


class CaptionSampler:
    """Per-epoch caption sampling for the two branches.

    Args:
        dataset: the training split.
        ml_languages: languages the ml branch may use (default: all non-English ones).
        en_only: English-only training.
        en_only_ml: with `en_only`: `english` (ml branch gets English captions) or `disabled`.
        seed: base seed of the epoch plans.
        epoch_unit: `video` (each item once an epoch, a deviation from X-Pool, see the module
            docstring) or `pair` (each (item, English caption) pair once, as X-Pool).

    Items without an English caption, or (when the ml branch samples non-English captions)
    without a caption in an allowed language, are left out; `skipped` counts them.

    Raises:
        DatasetError: when no item is usable.
    """

    def __init__(self, dataset: RetrievalDataset, *, ml_languages: Sequence[str] | None = None,
                 en_only: bool = False, en_only_ml: str = "english", seed: int = 0,
                 epoch_unit: str = "video"):
        if en_only_ml not in ("english", "disabled"):
            raise ConfigError(f"en_only_ml must be 'english' or 'disabled', got {en_only_ml!r}")
        if epoch_unit not in EPOCH_UNITS:
            raise ConfigError(f"epoch_unit must be one of {EPOCH_UNITS}, got {epoch_unit!r}")
        self.seed = seed
        self.epoch_unit = epoch_unit
        self.en_only = en_only
        self.ml_enabled = not (en_only and en_only_ml == "disabled")
        allowed = None if ml_languages is None else set(ml_languages) - {"en"}
        en: list[list[str]] = [[] for _ in range(len(dataset))]
        ml: list[dict[str, list[str]]] = [{} for _ in range(len(dataset))]
        for item, lang, text in dataset.captions:
            if lang == "en":
                en[item].append(text)
            elif allowed is None or lang in allowed:
                ml[item].setdefault(lang, []).append(text)
        needs_ml = self.ml_enabled and not en_only
        self.items = [i for i in range(len(dataset)) if en[i] and (not needs_ml or ml[i])]
        self.skipped = len(dataset) - len(self.items)
        if not self.items:
            what = "an English caption" + (
                f" and a caption in {sorted(allowed) if allowed else 'another language'}"
                if needs_ml else "")
            raise DatasetError(f"dataset {dataset.name}/{dataset.split}: no item has {what}")
        self._en = en
        # Languages in sorted order so the draw does not depend on caption file order.
        self._ml = [{lang: ml[i][lang] for lang in sorted(ml[i])} for i in range(len(dataset))]
        # (item, English caption index); None = drawn per epoch (`video`).
        self._units = ([(i, None) for i in self.items] if epoch_unit == "video" else
                       [(i, k) for i in self.items for k in range(len(en[i]))])

    @property
    def branches(self) -> tuple[str, ...]:
        return ("en", "ml") if self.ml_enabled else ("en",)

    def __len__(self) -> int:
        """Examples per epoch: items (`video`) or (item, English caption) pairs (`pair`)."""
        return len(self._units)

    def epoch_examples(self, epoch: int) -> list[TrainExample]:
        """The shuffled examples of `epoch` (deterministic in `(seed, epoch)`)."""
        order = np.random.default_rng([self.seed, epoch, _ORDER]).permutation(len(self._units))
        rng = np.random.default_rng([self.seed, epoch, _CAPTIONS])
        out = []
        for u in order:
            item, pair = self._units[u]
            en = self._en[item]
            text_en = en[rng.integers(len(en))] if pair is None else en[pair]
            text_ml = lang = None
            if self.ml_enabled:
                if self.en_only:
                    lang, texts = "en", en
                else:
                    langs = list(self._ml[item])
                    lang = langs[rng.integers(len(langs))]
                    texts = self._ml[item][lang]
                aligned = pair is not None and len(texts) == len(en)  # texts[k] translates en[k]
                text_ml = texts[pair] if aligned else texts[rng.integers(len(texts))]
            out.append(TrainExample(int(item), text_en, text_ml, lang, pair))
        return out

    def fixed_examples(self) -> list[TrainExample]:
        """Item order, first English caption, and for the ml branch the first caption of the
        first allowed language: a deterministic set for validation losses."""
        out = []
        for item in self.items:
            text_ml = lang = None
            if self.ml_enabled and self.en_only:
                text_ml, lang = self._en[item][0], "en"
            elif self.ml_enabled:
                lang = next(iter(self._ml[item]))
                text_ml = self._ml[item][lang][0]
            out.append(TrainExample(item, self._en[item][0], text_ml, lang))
        return out


def select_frames(n_valid: int, num_frames: int, strategy: str,
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """Pick at most `num_frames` of `n_valid` time-ordered candidates, one per segment.

    The candidates are split into `num_frames` contiguous segments (boundaries
    `floor(j * n_valid / num_frames)`); `uniform` takes each segment's central candidate, `random`
    one uniform draw per segment (CLIP4Clip/X-Pool/MuMUR 5.5.6 random sampling). Empty segments
    (fewer candidates than frames, e.g. an image) give no frame.

    Args:
        n_valid: number of valid candidates.
        num_frames: frames wanted.
        strategy: `uniform` or `random`.
        rng: generator for `random`.

    Returns:
        Candidate indices, increasing, length `min(n_valid, num_frames)`.
    """
    if strategy not in ("uniform", "random"):
        raise ConfigError(f"frame sampling strategy must be uniform or random, got {strategy!r}")
    bounds = (np.arange(num_frames + 1) * n_valid) // num_frames
    lo, hi = bounds[:-1], bounds[1:]
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    if strategy == "uniform":
        return lo + (hi - lo - 1) // 2
    if rng is None:
        raise ValueError("random frame sampling needs an rng")
    return lo + (rng.random(len(lo)) * (hi - lo)).astype(np.int64)


class FrameSource(Protocol):
    """Gives the media side of a batch for item indices."""

    def get(self, items: Sequence[int], strategy: str,
            rngs: Sequence[np.random.Generator | None]) -> dict[str, torch.Tensor]: ...


class _CachedFrames:
    """Shared selection logic over `(N, T', ...)` candidate arrays with a `(N, T')` mask."""

    def __init__(self, array, mask: np.ndarray, num_frames: int):
        mask = np.asarray(mask, dtype=bool)
        if array.shape[:2] != mask.shape:
            raise ValueError(f"cached array {array.shape} and mask {mask.shape} disagree")
        self.array = array
        self.mask = mask
        self.num_frames = num_frames

    def __len__(self) -> int:
        return len(self.mask)

    def _select(self, items, strategy, rngs) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((len(items), self.num_frames) + tuple(self.array.shape[2:]),
                       dtype=self.array.dtype)  # (B, T, ...)
        mask = np.zeros((len(items), self.num_frames), dtype=bool)  # (B, T)
        for b, (item, rng) in enumerate(zip(items, rngs)):
            valid = np.flatnonzero(self.mask[item])
            chosen = valid[select_frames(len(valid), self.num_frames, strategy, rng)]
            out[b, :len(chosen)] = self.array[item, chosen]
            mask[b, :len(chosen)] = True
        return out, mask


class FeatureFrameSource(_CachedFrames):
    """Cached frame features of a frozen vision encoder.

    Args:
        features: `(N, T', Dv)` float array (may be a memory map), `T' = num_frames * m`.
        mask: `(N, T')` bool, valid candidates first in time order.
        num_frames: frames per training clip.
    """

    def get(self, items, strategy, rngs):
        feats, mask = self._select(items, strategy, rngs)
        return {"frame_features": torch.from_numpy(np.ascontiguousarray(feats, np.float32)),
                "mask": torch.from_numpy(mask)}


class PixelFrameSource(_CachedFrames):
    """Cached decoded frames (uint8, already resized and centre-cropped) for a trainable vision
    encoder, normalised on the fly by the encoder's preprocessing (`ClipPreprocess.normalize`),
    which gives the same pixels as preprocessing the decoded frame directly.

    Args:
        frames: `(N, T', S, S, 3)` uint8 array (usually `np.load(..., mmap_mode="r")`).
        mask: `(N, T')` bool.
        num_frames: frames per training clip.
        normalize: `(n, S, S, 3)` uint8 -> `(n, 3, S, S)` float tensor.
    """

    def __init__(self, frames, mask, num_frames: int,
                 normalize: Callable[[np.ndarray], torch.Tensor]):
        super().__init__(frames, mask, num_frames)
        self.normalize = normalize

    def get(self, items, strategy, rngs):
        frames, mask = self._select(items, strategy, rngs)  # (B, T, S, S, 3) uint8
        b, t = mask.shape
        pixels = self.normalize(frames.reshape((b * t,) + frames.shape[2:]))  # (B*T, 3, S, S)
        return {"pixel_values": pixels.reshape((b, t) + tuple(pixels.shape[1:])),
                "mask": torch.from_numpy(mask)}


class TextFeatureTable:
    """Precomputed text-encoder outputs looked up by caption text.

    Args:
        texts: the captions.
        features: `(len(texts), Dt)` tensor, row `i` for `texts[i]`.
    """

    def __init__(self, texts: Sequence[str], features: torch.Tensor):
        if len(texts) != len(features):
            raise ValueError(f"{len(texts)} texts but {len(features)} feature rows")
        self.row = {t: i for i, t in enumerate(texts)}
        self.features = features

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        try:
            idx = [self.row[t] for t in texts]
        except KeyError as exc:
            raise KeyError(f"caption not in the text feature cache: {exc.args[0]!r}") from None
        return self.features[idx]  # (B, Dt)


class BatchSource(Protocol):
    """What the trainer needs from training data: a fixed number of batches per epoch and batch
    `i` of epoch `e` as a pure function of `(e, i)`."""

    def num_batches(self) -> int: ...

    def batch(self, epoch: int, index: int) -> dict: ...


class TrainBatches:
    """Batches for `RetrievalModel.compute_loss` built from a caption sampler and a frame source.

    Args:
        sampler: the caption sampler (its items index the frame source).
        frames: the frame source.
        batch_size: examples per batch.
        frame_sampling: `uniform` or `random` (re-drawn every epoch).
        text_en, text_ml: optional `TextFeatureTable`s; with one, the batch carries
            `text_<branch>_features (B, Dt)` instead of the strings `text_<branch>`.
        drop_last: drop the last incomplete batch (kept when it is the only one).
        fixed: use `sampler.fixed_examples()` for every epoch (validation losses).
        item_arrays: per-item head inputs (name -> (N, ...) tensor indexed by item, e.g.
            LECCR's ``description_features``), gathered into every batch under their names.
    """

    def __init__(self, sampler: CaptionSampler, frames: FrameSource, batch_size: int, *,
                 frame_sampling: str = "uniform", text_en: TextFeatureTable | None = None,
                 text_ml: TextFeatureTable | None = None, drop_last: bool = True,
                 fixed: bool = False, item_arrays: dict[str, torch.Tensor] | None = None):
        if frame_sampling not in ("uniform", "random"):
            raise ConfigError(f"frame_sampling must be uniform or random, got {frame_sampling!r}")
        self.sampler = sampler
        self.frames = frames
        self.batch_size = batch_size
        self.frame_sampling = frame_sampling
        self.text_tables = {"en": text_en, "ml": text_ml}
        self.fixed = fixed
        self.item_arrays = dict(item_arrays or {})
        self.drop_last = drop_last and self._examples_per_epoch() >= batch_size
        self._plan: tuple[int, list[TrainExample]] | None = None

    def _examples_per_epoch(self) -> int:
        return len(self.sampler.items) if self.fixed else len(self.sampler)

    def num_batches(self) -> int:
        n = self._examples_per_epoch()
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _examples(self, epoch: int) -> list[TrainExample]:
        if self._plan is None or self._plan[0] != epoch:
            examples = (self.sampler.fixed_examples() if self.fixed
                        else self.sampler.epoch_examples(epoch))
            self._plan = (epoch, examples)
        return self._plan[1]

    def batch(self, epoch: int, index: int) -> dict:
        """Batch `index` of `epoch`: media tensors, mask, and texts or text features per branch."""
        return self._build(self._batch_examples(epoch, index), epoch)

    def rank_batch(self, epoch: int, index: int, rank: int, world: int) -> dict:
        """Rank `rank`'s contiguous part (of `world` equal parts) of `batch(epoch, index)`, built
        alone (data-parallel training, `mumur.train.distributed`)."""
        from .distributed import rank_rows

        examples = self._batch_examples(epoch, index)
        return self._build(examples[rank_rows(len(examples), rank, world)], epoch)

    def _batch_examples(self, epoch: int, index: int) -> list[TrainExample]:
        if not 0 <= index < self.num_batches():
            raise IndexError(f"batch {index} out of range (0..{self.num_batches() - 1})")
        return self._examples(epoch)[index * self.batch_size:(index + 1) * self.batch_size]

    def _build(self, examples: list[TrainExample], epoch: int) -> dict:
        items = [ex.item for ex in examples]
        # Each pair of an item draws its own frames (`pair` is None with epoch_unit="video").
        rngs = [np.random.default_rng([self.sampler.seed, epoch, _FRAMES, ex.item]
                                      + ([] if ex.pair is None else [ex.pair]))
                if self.frame_sampling == "random" else None for ex in examples]
        batch = dict(self.frames.get(items, self.frame_sampling, rngs))
        batch.update({name: values[items] for name, values in self.item_arrays.items()})
        for branch in self.sampler.branches:
            texts = [getattr(ex, f"text_{branch}") for ex in examples]
            table = self.text_tables[branch]
            if table is not None:
                batch[f"text_{branch}_features"] = table(texts)
            else:
                batch[f"text_{branch}"] = texts
        return batch


class EpochBatches(torch.utils.data.Dataset):
    """Map-style view of one epoch of a `BatchSource` for a `DataLoader(batch_size=None)`."""

    def __init__(self, source: BatchSource, epoch: int):
        self.source = source
        self.epoch = epoch

    def __len__(self) -> int:
        return self.source.num_batches()

    def __getitem__(self, index: int) -> dict:
        return self.source.batch(self.epoch, index)
