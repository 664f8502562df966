"""Pretraining data: a world's frames decoded once into a uint8 cache (`FrameTable`,
`world_frames`) and the image-text batches drawn from it (`PretrainBatches`).

Frames go through the evaluation reader (`read_frames`, uniform segment centres) and the same CLIP
crop (`ClipPreprocess.crop_uint8`), so the model sees exactly what evaluation videos decode to.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from ...data.synthetic import build_manifest, generate, plan_corpus
from ...data.synthetic.frames import (
    cell_targets,
    frame_time,
    frame_views,
    geometry_targets,
    grid_cell,
    spatial_caption,
    template_caption,
)
from ...fsutil import atomic_path, atomic_write_text
from .recipe import FrameDataSpec, WorldSpec

__all__ = ["FrameTable", "PretrainBatches", "pixels", "world_frames"]

# Caption kinds, in the order of `FrameDataSpec.caption_mix`.
_SPATIAL, _IMAGE_TEMPLATE, _VIDEO_TEMPLATE = 0, 1, 2


@dataclass
class FrameTable:
    """Decoded, CLIP-cropped frames of a world.

    Attributes:
        frames: `(N, S, S, 3)` uint8 (memory-mapped).
        item: `(N,)` int, the index in `items` of each frame's item.
        t: `(N,)` float32, each frame's clip time in [0, 1] (images 0).
        items: the planned items (scene, split, media type) of the world.
        manifest: the world's manifest (captions).
        root: the world's folder.
    """

    frames: np.ndarray
    item: np.ndarray
    t: np.ndarray
    items: list
    manifest: dict
    root: Path

    def rows_of(self) -> list[np.ndarray]:
        """Frame rows per item, in time order."""
        order = np.argsort(self.item, kind="stable")
        bounds = np.searchsorted(self.item[order], np.arange(len(self.items) + 1))
        return [order[bounds[k]:bounds[k + 1]] for k in range(len(self.items))]


def _decode_item(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Decode one item into CLIP crops and clip times (runs in a worker process)."""
    from ...media.decode import media_type_of, read_frames
    from ...media.transforms import ClipPreprocess

    path, num_frames, image_size, fps, total_frames = job
    sampled = read_frames(path, num_frames)
    crop = ClipPreprocess(image_size)
    crops = np.stack([crop.crop_uint8(im) for im in sampled.frames])  # (k, S, S, 3)
    times = [frame_time(min(total_frames - 1, round(ts * fps)), total_frames)
             for ts in sampled.timestamps]
    if media_type_of(path) == "image":
        times = [0.0] * len(crops)
    return crops, np.asarray(times, np.float32)


def _ensure_world(spec: WorldSpec, folder: Path, workers: int, progress: bool) -> tuple:
    cfg = spec.synth_config()
    planned = plan_corpus(cfg)
    manifest = build_manifest(cfg, planned)
    path = folder / "manifest.json"
    if not (path.is_file() and json.loads(path.read_text(encoding="utf-8")) == manifest):
        generate(folder, cfg, workers=workers, progress=progress)
    return cfg, planned, manifest


def world_frames(spec: WorldSpec, folder, image_size: int, frames_per_video: int,
                 workers: int = 2, progress: bool = True) -> FrameTable:
    """Generate (if needed) a world in `folder/world` and its frame cache in `folder`.

    Both are reused when present and matching: the world when its manifest equals the one the
    spec describes, the cache when its `frames-*.json` records the same world and settings.

    Args:
        spec: the world.
        folder: cache folder of this world.
        image_size: crop side S (the model's input size).
        frames_per_video: frames per video (uniform segment centres).
        workers: render / decode processes.
        progress: show progress bars.

    Returns:
        The `FrameTable` of the items of `spec.split`.
    """
    from tqdm import tqdm

    folder = Path(folder)
    cfg, planned, manifest = _ensure_world(spec, folder / "world", workers, progress)
    keep = [k for k, p in enumerate(planned) if spec.split in ("all", p.split)]
    items = [planned[k] for k in keep]
    key = {"world": dataclasses.asdict(spec), "image_size": image_size,
           "frames_per_video": frames_per_video}
    stem = f"frames-{spec.split}-{image_size}px-{frames_per_video}f"
    info_path, frames_path = folder / f"{stem}.json", folder / f"{stem}.npy"
    if info_path.is_file() and frames_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("key") == key:
            return FrameTable(np.load(frames_path, mmap_mode="r"), np.asarray(info["item"]),
                              np.asarray(info["t"], np.float32), items,
                              {**manifest, "items": [manifest["items"][k] for k in keep]},
                              folder / "world")
    render = cfg.render
    jobs = [(str(folder / "world" / p.path), frames_per_video, image_size, render.fps,
             render.num_frames) for p in items]
    parts = []
    bar = tqdm(total=len(jobs), desc=f"decode world {spec.seed}", unit="item",
               disable=not progress)
    if workers <= 1:
        for job in jobs:
            parts.append(_decode_item(job))
            bar.update()
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            for part in pool.map(_decode_item, jobs, chunksize=16):
                parts.append(part)
                bar.update()
    bar.close()
    frames = np.concatenate([p[0] for p in parts])
    item = np.concatenate([np.full(len(p[0]), k) for k, p in enumerate(parts)])
    t = np.concatenate([p[1] for p in parts])
    with atomic_path(frames_path) as tmp:
        np.save(tmp, frames)
    atomic_write_text(info_path, json.dumps({"key": key, "item": item.tolist(),
                                             "t": [float(x) for x in t]}))
    return FrameTable(np.load(frames_path, mmap_mode="r"), item, t.astype(np.float32), items,
                      {**manifest, "items": [manifest["items"][k] for k in keep]},
                      folder / "world")


class PretrainBatches:
    """Image-text pairs of a `FrameTable` as a `BatchSource` (batch `i` of epoch `e` is a pure
    function of `(seed, e, i)`).

    Each batch is filled with sources (videos and images); a video gives `frames_per_source`
    distinct frames, an image its one frame. The first `grouped_share` of a batch is filled with
    groups of `group_sources` sources that share the `group_by` facets (place, main colour, ...):
    a batch of 128 random world frames rarely holds two captions that differ only in shape or
    position, so the contrastive loss never needs those; a web-scale batch holds such near misses
    all the time. The rest comes in a seeded random order (a source of a group may come again
    there: the same frame twice, whose pairs `_true_pair_mask` takes out of the softmax). Every
    sample draws its caption kind by `caption_mix`.

    Args:
        table: the frames.
        tokenizer: the CLIP tokenizer.
        batch_size: pairs per batch.
        spec: sampling settings.
        slots: geometry slots.
        seed: base seed.
        context_length: token limit.
    """

    def __init__(self, table: FrameTable, tokenizer, batch_size: int, spec: FrameDataSpec,
                 slots: int = 3, seed: int = 0, context_length: int = 77):
        self.table = table
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.spec = spec
        self.slots = slots
        self.seed = seed
        self.context_length = context_length
        self.rows = table.rows_of()
        self.groups = _groups(table.items, spec.group_by)
        self._plans: dict[int, list[np.ndarray]] = {}

    def num_batches(self) -> int:
        return self.spec.steps_per_epoch

    def _plan(self, epoch: int) -> list[np.ndarray]:
        if epoch in self._plans:
            return self._plans[epoch]
        rng = np.random.default_rng([self.seed, epoch, 0])
        grouped = int(round(self.spec.grouped_share * self.batch_size))
        batches, order = [], np.empty(0, int)
        while len(batches) < self.spec.steps_per_epoch:
            current: list[int] = []
            while len(current) < grouped:
                members = self.groups[int(rng.integers(len(self.groups)))]
                picks = rng.choice(members, size=min(len(members), self.spec.group_sources),
                                   replace=False)
                for source in picks:
                    self._take(current, int(source), grouped, rng)
            while len(current) < self.batch_size:
                if len(order) == 0:
                    order = rng.permutation(len(self.rows))
                source, order = int(order[0]), order[1:]
                self._take(current, source, self.batch_size, rng)
            batches.append(np.asarray(current))
        self._plans = {epoch: batches}  # one epoch at a time is all the trainer asks for
        return batches

    def _take(self, current: list[int], source: int, limit: int, rng) -> None:
        """Append up to `frames_per_source` distinct frames of `source`, never past `limit`."""
        rows = self.rows[source]
        take = min(len(rows), self.spec.frames_per_source, limit - len(current))
        current.extend(int(r) for r in rng.choice(rows, size=max(0, take), replace=False))

    def batch(self, epoch: int, index: int) -> dict:
        rows = self._plan(epoch)[index]  # (B,)
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        texts, kinds, cells, targets, grid = [], [], [], [], []
        for row in rows:
            item = self.table.items[self.table.item[row]]
            t = float(self.table.t[row])
            is_video = item.media_type == "video"
            mix = self.spec.caption_mix
            probs = mix if is_video else (mix[0], mix[1] + mix[2], 0.0)
            kind = int(rng.choice(3, p=probs))
            if kind == _SPATIAL:
                texts.append(spatial_caption(item.scene, t, rng))
            else:
                texts.append(template_caption(item.scene, rng, video=kind == _VIDEO_TEMPLATE))
            kinds.append(kind)
            cells.append(tuple(sorted(grid_cell(v.x, v.y) + (v.shape, v.colour, v.size)
                                      for v in frame_views(item.scene, t))))
            targets.append(geometry_targets(item.scene, t, self.slots))
            grid.append(cell_targets(item.scene, t))
        source = self.table.item[rows]
        return {"pixel_values": pixels(self.table.frames[rows]),  # (B, 3, S, S)
                **self._tokenize(texts),
                "negative_mask": _true_pair_mask(source, kinds, cells, texts),
                "geometry": torch.from_numpy(np.stack(targets)),
                "cells": torch.from_numpy(np.stack(grid))}  # (B, 9, 3)

    def _tokenize(self, texts: list[str]) -> dict:
        enc = self.tokenizer(texts, padding=True, truncation=True,
                             max_length=self.context_length, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def _groups(items: list, facets: tuple[str, ...]) -> list[np.ndarray]:
    """Indices of the items sharing each value of `facets` (groups of one are dropped)."""
    if not facets:
        return []
    keys: dict[tuple, list[int]] = {}
    for k, item in enumerate(items):
        main = item.scene.objects[0]
        key = tuple(item.scene.place if f == "place" else getattr(main, f) for f in facets)
        keys.setdefault(key, []).append(k)
    return [np.asarray(v) for v in keys.values() if len(v) > 1]


def pixels(crops: np.ndarray) -> torch.Tensor:
    """`(n, S, S, 3)` uint8 CLIP crops -> normalised `(n, 3, S, S)` float32 (CLIP mean / std)."""
    from ...media.transforms import ClipPreprocess

    return ClipPreprocess(crops.shape[1]).normalize(np.asarray(crops))


def _true_pair_mask(source, kinds, cells, texts) -> torch.Tensor:
    """`(B, B)` bool: off-diagonal (image i, text j) where text j is also true of image i.

    Text j describes image i when both come from the same item and text j is a template (names
    the item, not the frame) or names the same cells, or when the two texts are identical.
    """
    source = np.asarray(source)
    same_item = source[:, None] == source[None, :]  # (B, B)
    template = np.asarray([k != _SPATIAL for k in kinds])  # (B,)
    cell_ids = {c: n for n, c in enumerate(dict.fromkeys(cells))}
    cid = np.asarray([cell_ids[c] for c in cells])
    text_ids = {t: n for n, t in enumerate(dict.fromkeys(texts))}
    tid = np.asarray([text_ids[t] for t in texts])
    true = (same_item & (template[None, :] | (cid[:, None] == cid[None, :]))) \
        | (tid[:, None] == tid[None, :])
    np.fill_diagonal(true, False)
    return torch.from_numpy(true)

