"""Evaluation runner: t2v and v2t for every caption language of a dataset.

The media side is encoded once (frame features -> the head's query-independent per-frame states);
each language's captions are encoded with the branch that language uses, and the scores are read
in (caption block x item block) pieces, each computed once for both directions
(`metrics.retrieval_ranks`), so memory stays bounded by one block whatever the gallery size.
Scoring goes through the head's precompute/score pair (`index_state` / `score_index_state`, equal
to `similarity` in eval mode): for DCM that folds the d x d projections into the frames once per
item block instead of once per (caption, item) pair, about 40x less arithmetic.

The head is called in two places only, `media_states` and `_ItemBlockScorer`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import RetrievalDataset
from ..errors import ConfigError, DatasetError, UnsupportedLanguageError
from ..model import branch_for_language
from ..translate.codes import language_code
from .metrics import (
    DEFAULT_CHUNK,
    DEFAULT_ITEM_BLOCK,
    BlockSimilarity,
    retrieval_metrics,
    sum_r,
)

__all__ = [
    "MediaStates",
    "caption_language_code",
    "encode_dataset_media",
    "evaluate",
    "evaluate_embeddings",
    "evaluate_from_config",
    "evaluate_states",
    "media_states",
]


@dataclass
class MediaStates:
    """Query-independent media side of a dataset: contextualised frames and their mask."""

    frames_ctx: torch.Tensor  # (B, T, d)
    mask: torch.Tensor  # (B, T) bool


@torch.no_grad()
def media_states(model, frame_features, mask, batch_size: int = 256,
                 extra: dict | None = None) -> MediaStates:
    """The head's per-item states of raw frame features, `batch_size` items at a time.

    Args:
        model: a `RetrievalModel`.
        frame_features: (B, T, Dv) array or tensor; mask: (B, T) bool.
        extra: the head's per-item inputs (`head.item_inputs`, e.g. LECCR's description
            features from `mumur.describe.description_inputs`), rows in item order.
    """
    features = torch.as_tensor(frame_features, dtype=torch.float32)
    mask = torch.as_tensor(mask, dtype=torch.bool)
    extra = extra or {}

    def rows(s):
        return {k: v[s:s + batch_size] for k, v in extra.items()}

    ctx = [model.head.contextualize(features[s:s + batch_size].to(model.device),
                                    mask[s:s + batch_size].to(model.device), rows(s))
           for s in range(0, len(features), batch_size)]
    return MediaStates(torch.cat(ctx), model.head.state_mask(mask.to(model.device)))


class _ItemBlockScorer:
    """`BlockSimilarity` callable: scores of text rows against an item block.

    The head's query-independent state of the current item block is kept between calls;
    `retrieval_ranks` visits item blocks outermost, so each block is prepared twice in all.
    """

    def __init__(self, model, text_emb: torch.Tensor, states: MediaStates, branch: str):
        self.model, self.text_emb, self.states, self.branch = model, text_emb, states, branch
        self._cols: tuple[int, int] | None = None
        self._state: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, rows: slice, cols: slice) -> np.ndarray:
        head, mask = self.model.head, self.states.mask[cols]
        if self._cols != (cols.start, cols.stop):
            self._state = head.index_state(self.states.frames_ctx[cols], mask, self.branch)
            self._cols = (cols.start, cols.stop)
        scores, _ = head.score_index_state(self.text_emb[rows], self._state, mask, self.branch)
        return scores.float().cpu().numpy()  # (rows, cols)


@torch.no_grad()
def encode_dataset_media(model, dataset: RetrievalDataset, *, batch_size: int = 16,
                         num_workers: int = 1, strategy: str = "uniform",
                         frame_features: tuple[np.ndarray, np.ndarray] | None = None,
                         extra: dict | None = None, progress: bool = True) -> MediaStates:
    """Encode every item of `dataset` into the head's per-frame states.

    Args:
        model: a `RetrievalModel`.
        dataset: the dataset whose `media_path(i)` files are decoded.
        frame_features: optional precomputed raw frame features `(features (B,T,Dv), mask (B,T))`
            in item order (from a `FeatureCache`); skips decoding.
        strategy: frame sampling (`uniform` for evaluation, as the papers).
        extra: the head's per-item inputs; a head that reads descriptions gets them from its
            describer when None (`mumur.describe.description_inputs`).

    Raises:
        DatasetError: when some media files cannot be decoded (all failures are listed).
    """
    model.eval()
    if frame_features is None:
        from ..data.features import extract_frame_features

        paths = [str(dataset.media_path(i)) for i in range(len(dataset))]
        feats = [None] * len(paths)
        masks = [None] * len(paths)
        errors = []
        position = {p: i for i, p in enumerate(paths)}
        # The vision encoder's own transform (SigLIP: squash resize, mean/std 0.5), as the index
        # uses; CLIP's centre crop and statistics otherwise.
        preprocess = getattr(model.vision, "preprocessor", None)
        for batch in extract_frame_features(
                paths, model.encode_frames, num_frames=model.config.num_frames,
                strategy=strategy, image_size=model.image_size, batch_size=batch_size,
                num_workers=num_workers, progress=progress, preprocess=preprocess):
            for k, p in enumerate(batch.paths):
                feats[position[p]] = batch.features[k]
                masks[position[p]] = batch.mask[k]
            errors.extend(batch.errors)
        if errors:
            shown = "; ".join(f"{p}: {r}" for p, r in errors[:3])
            raise DatasetError(f"{len(errors)} of {len(paths)} media files failed to decode "
                               f"({shown})")
        features = np.stack(feats)
        mask = np.stack(masks)
    else:
        features, mask = frame_features
    if extra is None:
        from ..describe import description_inputs

        extra = description_inputs(model, [str(dataset.media_path(i))
                                           for i in range(len(dataset))], progress=progress)
    return media_states(model, features, mask, extra=extra)


@torch.no_grad()
def evaluate_embeddings(model, text_emb: torch.Tensor, caption_item, states: MediaStates,
                        branch: str, *, protocol: str = "caption",
                        caption_block: int = DEFAULT_CHUNK,
                        item_block: int = DEFAULT_ITEM_BLOCK) -> dict:
    """t2v and v2t metrics of embedded captions against media states, each score computed once.

    Args:
        model: a `RetrievalModel` (its head scores).
        text_emb: (N, d) caption embeddings of `branch`; caption_item: (N,) their item indices.
        states: the gallery (`encode_dataset_media` / `media_states`).
        protocol: v2t protocol, "caption" or "group" (`metrics.v2t_ranks`).
        caption_block, item_block: block shape; the head's intermediates scale with their
            product (DCM: caption_block x item_block x d floats per tensor).

    Returns:
        ``{"t2v": {...}, "v2t": {...}, "SumR": float}``.
    """
    model.eval()
    caption_item = np.asarray(caption_item, dtype=np.int64)
    order = np.argsort(caption_item, kind="stable")  # an item's captions in one run of rows
    text_emb = text_emb[torch.as_tensor(order, device=text_emb.device)]
    sim = BlockSimilarity((len(order), len(states.mask)),
                          _ItemBlockScorer(model, text_emb, states, branch))
    t2v, v2t = retrieval_metrics(sim, caption_item[order], protocol, caption_block, item_block)
    return {"t2v": t2v, "v2t": v2t, "SumR": sum_r(t2v, v2t)}


@torch.no_grad()
def evaluate_states(model, dataset: RetrievalDataset, states: MediaStates, *,
                    languages: list[str] | None = None, protocol: str = "caption",
                    text_batch_size: int = 256, caption_block: int = DEFAULT_CHUNK,
                    item_block: int = DEFAULT_ITEM_BLOCK) -> dict:
    """Metrics per language from precomputed media states (`evaluate_embeddings` per language).

    Returns:
        ``{"languages": {lang: {"t2v": {...}, "v2t": {...}, "SumR": float, "branch": str}}}``
        (plus ``"code"``, the language code given to a text encoder that needs one, and
        ``"skipped_languages": {lang: reason}`` for languages that encoder has no code for).
    """
    model.eval()
    languages = languages or dataset.languages
    out: dict = {"languages": {}}
    for lang in languages:
        texts, caption_item = dataset.captions_for(lang)
        if not texts:
            raise DatasetError(f"dataset {dataset.name}/{dataset.split} has no {lang!r} captions")
        branch = branch_for_language(lang, model.query_branches())
        code = caption_language_code(model, branch, lang)
        if isinstance(code, UnsupportedLanguageError):
            out.setdefault("skipped_languages", {})[lang] = str(code)
            continue
        text_emb = torch.cat([model.encode_text(texts[s:s + text_batch_size], branch=branch,
                                                language_code=code)
                              for s in range(0, len(texts), text_batch_size)])
        result = evaluate_embeddings(model, text_emb, caption_item, states, branch,
                                     protocol=protocol, caption_block=caption_block,
                                     item_block=item_block)
        out["languages"][lang] = {**result, "branch": branch, **({"code": code} if code else {})}
    return out


def caption_language_code(model, branch: str, language: str
                          ) -> str | None | UnsupportedLanguageError:
    """The code `branch`'s text encoder needs with captions in `language` (NLLB-CLIP:
    FLORES-200, `de` -> `deu_Latn`): the dataset's caption language, as search passes the
    query's, never an interface language.

    Returns:
        The code; None for encoders that need none; the `UnsupportedLanguageError` (returned,
        not raised) when the encoder has no code for the language, which is then skipped.
    """
    family = model.language_code_family(branch)
    if family is None:
        return None
    try:
        return language_code(family, language)
    except UnsupportedLanguageError as exc:
        return exc


def evaluate(model, dataset: RetrievalDataset, *, languages: list[str] | None = None,
             protocol: str = "caption", batch_size: int = 16, num_workers: int = 1,
             progress: bool = True, caption_block: int = DEFAULT_CHUNK,
             item_block: int = DEFAULT_ITEM_BLOCK) -> dict:
    """Encode `dataset`'s media with `model` and compute t2v/v2t metrics for every language."""
    start = time.perf_counter()
    states = encode_dataset_media(model, dataset, batch_size=batch_size,
                                  num_workers=num_workers, progress=progress)
    result = evaluate_states(model, dataset, states, languages=languages, protocol=protocol,
                             caption_block=caption_block, item_block=item_block)
    result["eval_seconds"] = time.perf_counter() - start
    result["dataset"] = {"name": dataset.name, "split": dataset.split, "items": len(dataset)}
    return result


def evaluate_from_config(config_path: str | Path) -> dict:
    """Run the evaluation described by a JSON config.

    Config keys: ``model`` (a saved mumur model folder, or a backbone checkpoint evaluated
    zero-shot as the index uses it: a hub id, a local CLIP / SigLIP folder or
    ``open_clip:<arch>[:<pretrained>]``, frames mean-pooled, `clip_retrieval_model`), ``data``
    (``{"benchmark", "root", "split", ...adapter options}``), optional ``text_model`` (a
    backbone's paired multilingual text encoder, e.g. M-CLIP), ``num_frames`` (backbones, default
    12), ``languages``, ``protocol``, ``batch_size``, ``num_workers``, ``caption_block``,
    ``item_block`` (score block shape, `evaluate_embeddings`).
    """
    from ..data import load_benchmark

    path = Path(config_path)
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    for key in ("model", "data"):
        if key not in cfg:
            raise ConfigError(f"{path}: missing required key {key!r}")
    data = dict(cfg["data"])
    if "benchmark" not in data or "root" not in data:
        raise ConfigError(f"{path}: data needs 'benchmark' and 'root'")
    # Relative paths in a config are relative to the config file, not the working directory.
    root = path.parent / data.pop("root")
    dataset = load_benchmark(data.pop("benchmark"), root, split=data.pop("split", "test"), **data)
    model = _config_model(path.parent, cfg)
    result = evaluate(model, dataset, languages=cfg.get("languages"),
                      protocol=cfg.get("protocol", "caption"),
                      batch_size=cfg.get("batch_size", 16), num_workers=cfg.get("num_workers", 1),
                      caption_block=cfg.get("caption_block", DEFAULT_CHUNK),
                      item_block=cfg.get("item_block", DEFAULT_ITEM_BLOCK))
    result["model"] = {"source": str(cfg["model"]), "text_model": cfg.get("text_model")}
    return result


def _config_model(folder: Path, cfg: dict):
    """The config's model: a saved mumur model, else a backbone checkpoint (meanP, zero-shot)."""
    from ..index.loading import clip_retrieval_model, is_mumur_model_dir
    from ..model import load_model

    def local(name):  # a relative path names a folder beside the config; anything else as given
        candidate = folder / name
        return str(candidate) if name and candidate.exists() else name

    source = local(str(cfg["model"]))
    if is_mumur_model_dir(source):
        return load_model(source)
    text_model = cfg.get("text_model")
    return clip_retrieval_model(source, local(text_model) if text_model else None,
                                num_frames=int(cfg.get("num_frames", 12)))
