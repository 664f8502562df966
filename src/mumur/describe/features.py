"""Description inputs of a head that reads visual descriptions (LECCR): describe the items with
the model's description backend (`head.config.description_source`), split each description into
units (`heads.slots.description_units`), embed the units with the model's English text encoder
(the caption encoder, shared as LECCR Table 8's best setting), through the text feature store
when a cache folder is given, and pad them to ``description_features (N, U, Dt)`` with
``description_mask (N, U)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.feature_store import FeatureStore, store_folder, text_tag
from ..data.features import cache_text_features
from ..errors import ConfigError
from ..heads.slots import description_units
from ..translate.cache import TranslationCache
from .pipeline import default_description_cache, describe_paths, load_describer

__all__ = ["description_inputs", "needs_descriptions"]


def needs_descriptions(model) -> bool:
    """Whether the model's head reads visual descriptions (`head.item_inputs`)."""
    return "descriptions" in getattr(model.head, "item_inputs", ())


@torch.no_grad()
def description_inputs(model, paths: Sequence[str | Path], cache_dir: str | Path | None = None,
                       *, progress: bool = False, source: str | None = None) -> dict:
    """The head's description inputs for media files (module docstring); {} for a head that
    reads none.

    Args:
        model: a `RetrievalModel`.
        paths: media files, in item order.
        cache_dir: folder of the unit feature store (``text_features/``); None keeps none.
            Descriptions go through `default_description_cache()`.
        progress: progress bars.
        source: describer spec instead of the head's `description_source`.

    Raises:
        ConfigError: the model has no English text encoder, or an unknown describer.
    """
    if not needs_descriptions(model):
        return {}
    cfg = model.head.config
    encoder = getattr(model, "text_en", None)
    if encoder is None:
        raise ConfigError("descriptions are embedded by the English text encoder; the model has "
                          "none (text_en)")
    describer = load_describer(source or cfg.description_source)
    # A model's descriptions live in the one description cache `mumur describe` fills (so a
    # GPU machine describes once, and training, evaluation and indexing reuse them); the
    # world's own descriptions cost nothing to recompute and are not cached.
    cache = (TranslationCache(default_description_cache())
             if getattr(describer, "cacheable", True) else None)
    try:
        texts = describe_paths(paths, describer, cache, progress=progress)
    finally:
        if cache is not None:
            cache.close()
    units = [description_units(t, whole=cfg.description_pooling == "cls",
                               max_units=cfg.max_units) for t in texts]
    flat = [u for item in units for u in item]
    if cache_dir is None:
        unique = list(dict.fromkeys(flat))
        feats = torch.cat([encoder(unique[s:s + 256]).float().cpu()
                           for s in range(0, len(unique), 256)]) if unique else None
        row = {u: i for i, u in enumerate(unique)}
        table = feats[[row[u] for u in flat]].numpy() if flat else np.zeros((0, encoder.dim))
    else:
        store = FeatureStore.for_texts(store_folder(Path(cache_dir) / "text_features",
                                                    text_tag(encoder.identity)), encoder.identity)
        table = cache_text_features(store, flat, lambda b: encoder(b), progress=progress)
    width = max(len(u) for u in units) if units else 1
    out = np.zeros((len(units), width, table.shape[-1]), dtype=np.float32)
    mask = np.zeros((len(units), width), dtype=bool)
    start = 0
    for i, item in enumerate(units):
        out[i, :len(item)] = table[start:start + len(item)]
        mask[i, :len(item)] = True
        start += len(item)
    return {"description_features": torch.from_numpy(out),
            "description_mask": torch.from_numpy(mask)}
