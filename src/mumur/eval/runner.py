"""Evaluation runner: t2v and v2t for every caption language of a dataset.

The media side is encoded once (frame features -> the head's query-independent per-frame states);
each language's captions are encoded with the branch that language uses, and the similarity is
computed block by block (`BlockSimilarity`), so large test sets never build a full matrix of DCM
states.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import RetrievalDataset
from ..errors import ConfigError, DatasetError
from ..model import branch_for_language
from .metrics import BlockSimilarity, sum_r, t2v_metrics, v2t_metrics

__all__ = [
    "MediaStates",
    "encode_dataset_media",
    "evaluate",
    "evaluate_states",
    "evaluate_from_config",
]


@dataclass
class MediaStates:
    """Query-independent media side of a dataset: contextualised frames and their mask."""

    frames_ctx: torch.Tensor  # (B, T, d)
    mask: torch.Tensor  # (B, T) bool


@torch.no_grad()
def encode_dataset_media(model, dataset: RetrievalDataset, *, batch_size: int = 16,
                         num_workers: int = 1, strategy: str = "uniform",
                         frame_features: tuple[np.ndarray, np.ndarray] | None = None,
                         progress: bool = True) -> MediaStates:
    """Encode every item of `dataset` into the head's per-frame states.

    Args:
        model: a `RetrievalModel`.
        dataset: the dataset whose `media_path(i)` files are decoded.
        frame_features: optional precomputed raw frame features `(features (B,T,Dv), mask (B,T))`
            in item order (from a `FeatureCache`); skips decoding.
        strategy: frame sampling (`uniform` for evaluation, as the papers).

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
        for batch in extract_frame_features(
                paths, model.encode_frames, num_frames=model.config.num_frames,
                strategy=strategy, image_size=model.image_size, batch_size=batch_size,
                num_workers=num_workers, progress=progress):
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
    features_t = torch.as_tensor(features, dtype=torch.float32)
    mask_t = torch.as_tensor(mask, dtype=torch.bool)
    ctx = [model.head.contextualize(features_t[s:s + 256], mask_t[s:s + 256])
           for s in range(0, len(features_t), 256)]
    return MediaStates(torch.cat(ctx), mask_t)


@torch.no_grad()
def evaluate_states(model, dataset: RetrievalDataset, states: MediaStates, *,
                    languages: list[str] | None = None, protocol: str = "caption",
                    text_batch_size: int = 256, block: int = 256) -> dict:
    """Metrics per language from precomputed media states.

    Returns:
        ``{"languages": {lang: {"t2v": {...}, "v2t": {...}, "SumR": float, "branch": str}}}``.
    """
    model.eval()
    languages = languages or dataset.languages
    out: dict = {"languages": {}}
    for lang in languages:
        texts, caption_item = dataset.captions_for(lang)
        if not texts:
            raise DatasetError(f"dataset {dataset.name}/{dataset.split} has no {lang!r} captions")
        branch = branch_for_language(lang, model.query_branches())
        text_emb = torch.cat([model.encode_text(texts[s:s + text_batch_size], branch=branch)
                              for s in range(0, len(texts), text_batch_size)])

        def sim_block(rows: slice, cols: slice, text_emb=text_emb, branch=branch) -> np.ndarray:
            return model.score(text_emb[rows], states.frames_ctx[cols], states.mask[cols],
                               branch=branch).float().numpy()

        sim = BlockSimilarity((len(texts), len(dataset)), sim_block)
        t2v = t2v_metrics(sim, caption_item, chunk_size=block)
        v2t = v2t_metrics(sim, caption_item, protocol=protocol, chunk_size=block)
        out["languages"][lang] = {"t2v": t2v, "v2t": v2t, "SumR": sum_r(t2v, v2t),
                                  "branch": branch}
    return out


def evaluate(model, dataset: RetrievalDataset, *, languages: list[str] | None = None,
             protocol: str = "caption", batch_size: int = 16, num_workers: int = 1,
             progress: bool = True) -> dict:
    """Encode `dataset`'s media with `model` and compute t2v/v2t metrics for every language."""
    start = time.perf_counter()
    states = encode_dataset_media(model, dataset, batch_size=batch_size,
                                  num_workers=num_workers, progress=progress)
    result = evaluate_states(model, dataset, states, languages=languages, protocol=protocol)
    result["eval_seconds"] = time.perf_counter() - start
    result["dataset"] = {"name": dataset.name, "split": dataset.split, "items": len(dataset)}
    return result


def evaluate_from_config(config_path: str | Path) -> dict:
    """Run the evaluation described by a JSON config.

    Config keys: ``model`` (a saved model folder), ``data`` (``{"benchmark", "root", "split",
    ...adapter options}``), optional ``languages``, ``protocol``, ``batch_size``, ``num_workers``.
    """
    from ..data import load_benchmark
    from ..model import load_model

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
    model_path = path.parent / cfg["model"]
    dataset = load_benchmark(data.pop("benchmark"), root, split=data.pop("split", "test"), **data)
    model = load_model(model_path)
    return evaluate(model, dataset, languages=cfg.get("languages"),
                    protocol=cfg.get("protocol", "caption"),
                    batch_size=cfg.get("batch_size", 16), num_workers=cfg.get("num_workers", 1))
