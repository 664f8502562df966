"""Zero-shot text->item retrieval on a world's frames (items = mean of their frame features): the
pretraining's validation metric and the report's headline figure."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from .frames import FrameTable, pixels

__all__ = ["encode_frames", "mean_item_features", "zero_shot_retrieval"]


@torch.no_grad()
def encode_frames(image_fn, frames: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """L2-normalised features `(N, d)` of uint8 crops `(N, S, S, 3)` through `image_fn`
    (`pixel_values -> (n, d)`)."""
    out = []
    for start in range(0, len(frames), batch_size):
        out.append(F.normalize(image_fn(pixels(frames[start:start + batch_size])).float(),
                               dim=-1))
    return torch.cat(out)


def mean_item_features(frame_features: torch.Tensor, item: np.ndarray, n_items: int
                       ) -> torch.Tensor:
    """Mean of each item's L2-normalised frame features, re-normalised: `(n_items, d)` (meanP)."""
    index = torch.as_tensor(item, dtype=torch.long)
    sums = torch.zeros(n_items, frame_features.shape[1]).index_add_(0, index, frame_features)
    return F.normalize(sums, dim=-1)


def zero_shot_retrieval(image_fn, text_fn, table: FrameTable,
                        frame_features: torch.Tensor | None = None) -> dict:
    """Zero-shot text->item retrieval on a world: items are the mean of their frame features,
    queries the items' English captions.

    Args:
        image_fn: `pixel_values (n, 3, S, S) -> (n, d)`.
        text_fn: `list[str] -> (n, d)`.
        table: the world's frames (its items and captions).
        frame_features: `(N, d)` normalised features of `table.frames` when already computed.

    Returns:
        `t2v_metrics` (R1, R5, R10, MdR, MnR, counts) for all items together.
    """
    from ...eval.metrics import t2v_metrics

    if frame_features is None:
        frame_features = encode_frames(image_fn, table.frames)
    items = mean_item_features(frame_features, table.item, len(table.items))
    captions, caption_item = [], []
    for k, entry in enumerate(table.manifest["items"]):
        for text in entry["captions"]["en"]:
            captions.append(text)
            caption_item.append(k)
    text = torch.cat([F.normalize(text_fn(captions[s:s + 256]).float(), dim=-1)
                      for s in range(0, len(captions), 256)])
    sim = (text @ items.T).numpy()  # (n_captions, n_items)
    return t2v_metrics(sim, np.asarray(caption_item))

