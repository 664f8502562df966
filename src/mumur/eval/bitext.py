"""Evaluation of a multilingual text encoder distilled from a CLIP text tower (M-CLIP style).

- `bitext_retrieval`: English caption -> the same caption in language l (R@1 among every
  caption in l of the set), per language;
- `teacher_mse`: eq. (5) on held-out text, student(caption in l) vs teacher(English caption of the
  same thing), plus the mean cosine;
- `media_embeddings` + `crosslingual_t2v`: captions in language l ranked against the teacher's
  vision embeddings of the items (L2-normalised frame features averaged over frames, CLIP4Clip's
  mean pooling), zero-shot.

Groups are `mumur.data.synthetic.parallel.BitextGroup`s (`item`, `key`, `captions` by language).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.features import extract_frame_features
from .metrics import t2v_metrics, t2v_ranks
from .stats import bootstrap_ci

__all__ = ["bitext_retrieval", "crosslingual_t2v", "language_embeddings", "media_embeddings",
           "pairwise_bitext_ranks", "raw_embeddings", "tatoeba_scores", "teacher_mse"]


def raw_embeddings(encoder, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Un-normalised `encoder.forward` outputs `(n, D)` float32 on CPU (eval mode, no grad)."""
    was = encoder.training
    encoder.eval()
    chunks = []
    try:
        with torch.no_grad():
            for s in range(0, len(texts), batch_size):
                chunks.append(encoder.forward(list(texts[s:s + batch_size])).float().cpu())
    finally:
        encoder.train(was)
    return torch.cat(chunks) if chunks else torch.zeros(0, encoder.dim)


def _normalised(encoder, texts: Sequence[str]) -> np.ndarray:
    return torch.nn.functional.normalize(raw_embeddings(encoder, texts), dim=-1).numpy()


def _code(encoder, language: str) -> str | None:
    """The language code `encoder` takes for `language` (None: it needs none, or has none)."""
    from ..errors import UnsupportedLanguageError
    from ..translate.codes import language_code

    family = getattr(encoder, "code_family", None)
    if family is None:
        return None
    try:
        return language_code(family, language)
    except UnsupportedLanguageError:
        return None


def language_embeddings(encoder, texts_by_language: dict[str, Sequence[str]]
                        ) -> dict[str, np.ndarray]:
    """L2-normalised embeddings of each language's texts; an encoder that routes by language
    (MLA, NLLB-CLIP) is told each text's language, as evaluation and search tell it.

    Returns:
        `{language: (n_language, D) float32}`.
    """
    out = {}
    for lang, texts in texts_by_language.items():
        with encoder.language(_code(encoder, lang)):
            out[lang] = _normalised(encoder, list(texts))  # (n, D)
    return out


def pairwise_bitext_ranks(embeddings: dict[str, np.ndarray]) -> dict[tuple[str, str], np.ndarray]:
    """Tatoeba-style bitext retrieval between every ordered pair of languages: row i of language
    a retrieves row i of language b among all rows of b.

    Args:
        embeddings: `{language: (n, D)}` L2-normalised, row i of every language the same sentence.

    Returns:
        `{(a, b): (n,) 1-based ranks}` for every a != b (pessimistic on ties, `t2v_ranks`).
    """
    sizes = {len(e) for e in embeddings.values()}
    if len(sizes) > 1:
        raise ValueError(f"languages have different numbers of rows: {sorted(sizes)}")
    truth = np.arange(sizes.pop() if sizes else 0)
    return {(a, b): t2v_ranks(ea @ eb.T, truth)
            for a, ea in embeddings.items() for b, eb in embeddings.items() if a != b}


def _with(groups, *languages: str) -> list:
    return [g for g in groups if all(lang in g.captions for lang in languages)]


def bitext_retrieval(encoder, groups: Sequence, languages: Sequence[str],
                     seen: set[str] | None = None) -> dict[str, dict]:
    """English -> language-l caption retrieval, per non-English language.

    Args:
        encoder: text encoder with `forward(texts)`.
        groups: `BitextGroup`s; a group counts for l when it has captions in en and l.
        languages: languages to score (English is skipped: it would retrieve itself).
        seen: sentences the encoder was trained on; when given, `R1_unseen` / `n_unseen` score
            the queries whose target caption is not among them.

    Returns:
        `{l: {"R1", "R5", "MdR", "n", "R1_ci95", "ranks", ["R1_unseen", "n_unseen"]}}` (R in
        percent; `R1_ci95` a bootstrap interval over the queries; `ranks` the 1-based rank of
        each query's answer, in `groups` order, for intervals over several languages).
    """
    out = {}
    for lang in languages:
        if lang == "en":
            continue
        subset = _with(groups, "en", lang)
        if not subset:
            continue
        en = _normalised(encoder, [g.captions["en"] for g in subset])  # (n, D)
        other = _normalised(encoder, [g.captions[lang] for g in subset])  # (n, D)
        sim = en @ other.T  # (n, n): query i's answer is column i
        truth = np.arange(len(subset))
        m = t2v_metrics(sim, truth)
        ranks = t2v_ranks(sim, truth)  # (n,)
        row = {"R1": m["R1"], "R5": m["R5"], "MdR": m["MdR"], "n": len(subset),
               "R1_ci95": list(bootstrap_ci(ranks[None])), "ranks": ranks.tolist()}
        if seen is not None:
            unseen = np.asarray([g.captions[lang] not in seen for g in subset])
            row["n_unseen"] = int(unseen.sum())
            row["R1_unseen"] = (float(100.0 * np.mean(ranks[unseen] <= 1)) if unseen.any()
                                else None)
        out[lang] = row
    return out


def teacher_mse(student, teacher, groups: Sequence, languages: Sequence[str]) -> dict[str, dict]:
    """Eq. (5) on held-out captions: student(caption in l) vs teacher(English caption).

    Args:
        student: the multilingual encoder.
        teacher: the teacher's text encoder (English).
        groups: `BitextGroup`s.
        languages: languages to score (English included: student(en) vs teacher(en)).

    Returns:
        `{l: {"mse", "cosine", "n"}}`: mean squared error of the raw embeddings (mean over rows
        and dimensions, as the training loss) and the mean cosine similarity.
    """
    out = {}
    for lang in languages:
        subset = _with(groups, "en", lang)
        if not subset:
            continue
        target = raw_embeddings(teacher, [g.captions["en"] for g in subset])  # (n, D)
        pred = raw_embeddings(student, [g.captions[lang] for g in subset])  # (n, D)
        cosine = torch.nn.functional.cosine_similarity(pred, target, dim=-1)  # (n,)
        out[lang] = {"mse": float(((pred - target) ** 2).mean()),
                     "cosine": float(cosine.mean()), "n": len(subset)}
    return out


def media_embeddings(vision, paths: Sequence[str], num_frames: int, batch_size: int = 16,
                     num_workers: int | None = None, progress: bool = False) -> np.ndarray:
    """One embedding per media file: the vision encoder's L2-normalised frame embeddings averaged
    over the frames (an image has one), re-normalised.

    Args:
        vision: a `VisionEncoder` (its `image_size`, `image_mean`, `image_std` preprocess frames).
        paths: media files.
        num_frames: frames per video (uniform segment centres).
        batch_size: files per batch.
        num_workers: decode processes (None: the extractor's default).
        progress: progress bar.

    Returns:
        `(len(paths), D)` float32.

    Raises:
        ValueError: a file failed to decode (an evaluation set must be complete).
    """
    vision.eval()

    def encode(pixels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(vision.forward(pixels.to(vision.device)).float(),
                                             dim=-1).cpu()  # (n, D)

    out = np.zeros((len(paths), vision.dim), dtype=np.float32)
    for batch in extract_frame_features(paths, encode, num_frames, image_size=vision.image_size,
                                        batch_size=batch_size, num_workers=num_workers,
                                        mean=vision.image_mean, std=vision.image_std,
                                        progress=progress):
        if batch.errors:
            raise ValueError(f"cannot decode {batch.errors[0][0]}: {batch.errors[0][1]}")
        mask = batch.mask[..., None].astype(np.float32)  # (B, T, 1)
        pooled = (batch.features * mask).sum(1) / mask.sum(1).clip(min=1.0)  # (B, D)
        out[batch.indices] = pooled
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.clip(norms, 1e-12, None)


def crosslingual_t2v(encoder, groups: Sequence, item_embeddings: np.ndarray,
                     languages: Sequence[str]) -> dict[str, dict]:
    """Text -> media retrieval with captions in each language against fixed item embeddings.

    Args:
        encoder: the text encoder (in the same space as `item_embeddings`).
        groups: `BitextGroup`s (`item` indexes the rows of `item_embeddings`).
        item_embeddings: `(n_items, D)` L2-normalised media embeddings.
        languages: query languages.

    Returns:
        `{l: t2v_metrics + {"R1_ci95", "ranks"}}` (`R1`, `R5`, `R10`, `MdR`, `MnR`, counts; the
        bootstrap interval over queries and each query's 1-based rank, in `groups` order).
    """
    out = {}
    for lang in languages:
        subset = [g for g in groups if lang in g.captions]
        if not subset:
            continue
        text = _normalised(encoder, [g.captions[lang] for g in subset])  # (n, D)
        sim, truth = text @ item_embeddings.T, [g.item for g in subset]
        ranks = t2v_ranks(sim, truth)
        out[lang] = {**t2v_metrics(sim, truth), "R1_ci95": list(bootstrap_ci(ranks[None])),
                     "ranks": ranks.tolist()}
    return out


def tatoeba_scores(encoder, root, languages: Sequence[str] | None = None) -> dict[str, dict]:
    """Tatoeba accuracy (XTREME's metric: R@1 of the nearest English sentence) per language of
    a folder of Tatoeba test files (`mumur.data.tatoeba`), both directions.

    Args:
        encoder: the text encoder (told each side's language when it routes by language).
        root: folder with `tatoeba.<xxx>-eng.{xxx,eng}` files.
        languages: ISO 639-1 codes (default: every pair in the folder).

    Returns:
        `{language: {"x_to_en": R@1, "en_to_x": R@1, "n": pairs}}` (percent).
    """
    from ..data.tatoeba import load_tatoeba, tatoeba_languages

    out = {}
    for lang in languages or tatoeba_languages(root):
        pair = load_tatoeba(root, lang)
        emb = language_embeddings(encoder, {pair.language: pair.sentences})[pair.language]
        eng = language_embeddings(encoder, {"en": pair.english})["en"]
        truth = np.arange(len(pair.sentences))
        out[pair.language] = {"x_to_en": float(100.0 * np.mean(t2v_ranks(emb @ eng.T, truth) == 1)),
                              "en_to_x": float(100.0 * np.mean(t2v_ranks(eng @ emb.T, truth) == 1)),
                              "n": len(truth)}
    return out
