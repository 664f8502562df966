"""Training MLMM (mumur.rerank): pre-training with the four objectives of §3.1.2 and fine-tuning
for retrieval with ITM scores, on cached frame features of a synthetic world.

`PairData` holds one world split as tensors: per item its frozen frame features (the feature
store's rows), per caption its token ids (every language of the manifest), per frame the MRC soft
label. `train_mlmm` runs the loop: each step samples a batch of (item, caption) pairs and, as
UNITER and MLMM §3.1.4 do, one objective (by the stage's task weights); AdamW with the learning
rate rising linearly over the first `warmup_ratio` of the steps and decaying linearly to 0.

Fine-tuning uses ITM only, with hard negatives: the visual side of a negative pair is one of the
caption's `hard_negatives` top items in the two-stream model's shortlist other than its own
(`PairData.caption_negatives`, recipes/mlmm_shortlist.py: the items the re-ranker will have to
separate), or, without a two-stream model, one of the item's nearest items by mean-pooled frame
features; `hard_fraction` of the negatives are hard, the rest another item of the batch (§3.1.2's
random replacement). With a `validate` callback the loop scores the model every `eval_every`
steps (and before the first) and ends with the best-scoring weights (checkpoint selection on
validation captions; the recipe's callback never sees test captions).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import config_to_dict
from ..errors import ConfigError
from ..rerank.model import MLMM
from ..rerank.objectives import OBJECTIVES, itm_pairs, mask_frames, mask_tokens, soft_labels
from ..rerank.reranker import TextTokenizer
from .runtime import seed_everything

__all__ = ["MLMMStage", "PairData", "build_pair_data", "category_embeddings", "train_mlmm"]


@dataclass(frozen=True)
class MLMMStage:
    """One training stage of a recipe (`configs/mlmm/<name>.json`: ``pretrain`` / ``finetune``).

    Args:
        steps, batch_size, lr, weight_decay, warmup_ratio, grad_clip: the optimisation.
        tasks: objective -> sampling weight (one objective per step).
        hard_negatives: fine-tuning: shortlisted (or nearest) items a negative is drawn from
            (0: any other item of the batch, §3.1.2's random replacement).
        hard_fraction: share of the negatives drawn from those (the rest: another batch item).
        eval_every: steps between validation scores for checkpoint selection (0: none, the
            final weights are kept).
        log_every: steps between log lines.
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    grad_clip: float = 1.0
    tasks: dict[str, float] = field(default_factory=lambda: {k: 1.0 for k in OBJECTIVES})
    hard_negatives: int = 0
    hard_fraction: float = 1.0
    eval_every: int = 0
    log_every: int = 50

    def __post_init__(self):
        bad = sorted(set(self.tasks) - set(OBJECTIVES))
        if bad or not self.tasks or min(self.tasks.values()) < 0 or sum(self.tasks.values()) <= 0:
            raise ConfigError(f"tasks={self.tasks!r}: positive weights of objectives from "
                              f"{list(OBJECTIVES)}")
        if self.batch_size < 2 or self.steps < 1:
            raise ConfigError("steps >= 1 and batch_size >= 2 are needed")
        if not 0.0 <= self.hard_fraction <= 1.0 or self.eval_every < 0:
            raise ConfigError("hard_fraction in [0, 1] and eval_every >= 0 are needed")


@dataclass
class PairData:
    """A world split for MLMM training.

    Attributes:
        frames: (N, T, Dv) frame features; frame_mask: (N, T) bool.
        region_classes: (N, T, C) MRC soft labels (or None when MRC is not trained).
        caption_ids: (M, L) token ids; caption_mask: (M, L) bool; caption_item: (M,) item.
        neighbours: (N, k) nearest other items by mean-pooled features (or None).
        caption_negatives: (M, k) per caption, the two-stream shortlist's other items (or None;
            used before `neighbours`).
    """

    frames: torch.Tensor
    frame_mask: torch.Tensor
    region_classes: torch.Tensor | None
    caption_ids: torch.Tensor
    caption_mask: torch.Tensor
    caption_item: torch.Tensor
    neighbours: torch.Tensor | None = None
    caption_negatives: torch.Tensor | None = None


def category_embeddings(text_encoder) -> torch.Tensor:
    """The frozen text tower's embeddings of the world's object categories (colour x shape): the
    classes of MRC's soft labels (eq. 4), standing in for the detector's categories. (40, D)."""
    from ..data.synthetic.world import COLOURS, SHAPES

    names = [f"A {colour} {shape}." for colour in COLOURS for shape in SHAPES]
    with torch.no_grad():
        return text_encoder.encode(names).float()


def _neighbours(frames: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    pooled = (F.normalize(frames.float(), dim=-1) * mask.unsqueeze(-1)).sum(1)  # (N, Dv)
    pooled = F.normalize(pooled, dim=-1)
    sim = pooled @ pooled.t()  # (N, N)
    sim.fill_diagonal_(-math.inf)
    return sim.topk(min(k, len(sim) - 1), dim=1).indices  # (N, k)


def build_pair_data(frames: np.ndarray, frame_mask: np.ndarray, captions: list[tuple[int, str]],
                    tokenizer: TextTokenizer, *, classes: torch.Tensor | None = None,
                    class_scale: float = 50.0, hard_negatives: int = 0) -> PairData:
    """Tensors of a world split.

    Args:
        frames, frame_mask: the items' cached frame rows.
        captions: (item index, text) pairs, every language.
        tokenizer: the multilingual tokenizer.
        classes: (C, Dv) category embeddings for MRC soft labels (None: no MRC).
        class_scale: inverse temperature of the soft labels.
        hard_negatives: neighbours kept per item (0: none).
    """
    feats = torch.from_numpy(np.asarray(frames, np.float32))
    mask = torch.from_numpy(np.asarray(frame_mask, bool))
    ids, valid = tokenizer([t for _, t in captions])
    return PairData(
        frames=feats, frame_mask=mask,
        region_classes=None if classes is None else soft_labels(feats, classes, class_scale),
        caption_ids=ids, caption_mask=valid,
        caption_item=torch.tensor([i for i, _ in captions], dtype=torch.long),
        neighbours=_neighbours(feats, mask, hard_negatives) if hard_negatives else None)


def _batch(data: PairData, model: MLMM, task: str, stage: MLMMStage,
           g: torch.Generator) -> dict[str, torch.Tensor]:
    """One batch for `task`: B captions of B different items (pairs), prepared per objective."""
    order = torch.randperm(len(data.caption_item), generator=g)
    seen, picked = set(), []
    for c in order.tolist():  # distinct items, so another row is always a non-matching one
        item = int(data.caption_item[c])
        if item not in seen:
            seen.add(item)
            picked.append(c)
            if len(picked) == stage.batch_size:
                break
    caps = torch.tensor(picked)
    items = data.caption_item[caps]
    ids, tmask = data.caption_ids[caps], data.caption_mask[caps]
    length = int(tmask.sum(1).max())
    ids, tmask = ids[:, :length], tmask[:, :length]
    cfg = model.config
    if task != "itm":
        batch = {"input_ids": ids, "text_mask": tmask, "frames": data.frames[items],
                 "frame_mask": data.frame_mask[items]}
        if task == "mlm":
            batch["mlm_input_ids"], batch["mlm_labels"] = mask_tokens(
                ids, tmask, vocab_size=cfg.vocab_size, mask_id=cfg.mask_id,
                special_ids=(cfg.pad_id, cfg.cls_id, cfg.sep_id, cfg.mask_id, 1),
                prob=cfg.text_mask_prob, generator=g)
        else:
            batch["masked_frames"] = mask_frames(batch["frame_mask"], prob=cfg.region_mask_prob,
                                                 generator=g)
            if task == "mrc":
                if data.region_classes is None:
                    raise ConfigError("MRC needs soft labels (category embeddings)")
                batch["region_classes"] = data.region_classes[items]
        return batch
    rows = torch.arange(len(items))
    pool = (data.caption_negatives[caps] if data.caption_negatives is not None
            else None if data.neighbours is None else data.neighbours[items])  # (B, k)
    if stage.hard_negatives and pool is not None:
        # a negative's visual side is one of the caption's shortlisted (or the item's nearest)
        # items, shown with this caption
        pick = torch.randint(pool.shape[1], (len(items),), generator=g)
        _, text, labels = itm_pairs(len(items), generator=g, negative_items=(rows + 1) % len(rows))
        negative = pool[rows, pick]
        if stage.hard_fraction < 1.0:
            easy = torch.rand(len(items), generator=g) >= stage.hard_fraction
            negative = torch.where(easy, items[(rows + 1) % len(rows)], negative)
        vis_items = torch.where(labels > 0, items, negative)
    else:
        visual, text, labels = itm_pairs(len(items), generator=g)
        vis_items = items[visual]
    return {"input_ids": ids[text], "text_mask": tmask[text], "frames": data.frames[vis_items],
            "frame_mask": data.frame_mask[vis_items], "itm_labels": labels}


def _linear_schedule(warmup: int, total: int):
    # §3.1.4: 0 -> lr over the warm-up, then linearly down to 0.
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def train_mlmm(model: MLMM, data: PairData, stage: MLMMStage, *, seed: int,
               log_path: Path | None = None, progress=None, validate=None) -> dict:
    """Train `model` in place for one stage.

    Args:
        validate: model (eval mode) -> a score, higher is better, from validation captions only;
            with ``stage.eval_every`` the model ends with the weights of the best-scoring
            checkpoint (step 0, the starting weights, included).

    Returns:
        ``{"steps", "seconds", "final": {objective: mean loss over the last 10% of its steps}}``
        and, with selection, ``"selection": {"history": [[step, score], ...], "best_step",
        "best"}``.
    """
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=stage.lr, weight_decay=stage.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _linear_schedule(max(1, int(stage.warmup_ratio * stage.steps)), stage.steps))
    names = list(stage.tasks)
    weights = torch.tensor([stage.tasks[n] for n in names], dtype=torch.float)
    history: dict[str, list[float]] = {n: [] for n in names}
    start = time.perf_counter()
    select = validate is not None and stage.eval_every > 0
    checks: list[list[float]] = []
    best: tuple[float, int, dict] | None = None

    def check(step: int) -> None:
        nonlocal best
        model.eval()
        score = float(validate(model))
        model.train()
        checks.append([step, round(score, 4)])
        if best is None or score > best[0]:
            best = (score, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
        if log:
            log.write(json.dumps({"step": step, "validation": round(score, 4)}) + "\n")

    log = open(log_path, "w", encoding="utf-8") if log_path else None  # noqa: SIM115
    try:
        if select:
            check(0)
        for step in range(stage.steps):
            task = names[int(torch.multinomial(weights, 1, generator=g))]
            out = model.loss(_batch(data, model, task, stage, g), (task,))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
            opt.step()
            sched.step()
            history[task].append(out.loss.item())
            if log and (step + 1) % stage.log_every == 0:
                recent = {f"loss_{n}": round(float(np.mean(v[-20:])), 4)
                          for n, v in history.items() if v}
                log.write(json.dumps({"step": step + 1, **recent,
                                      "lr": sched.get_last_lr()[0]}) + "\n")
                log.flush()
            if select and ((step + 1) % stage.eval_every == 0 or step + 1 == stage.steps):
                check(step + 1)
            if progress is not None:
                progress(step + 1, stage.steps)
    finally:
        if log:
            log.close()
    model.eval()
    final = {n: round(float(np.mean(v[-max(1, len(v) // 10):])), 4)
             for n, v in history.items() if v}
    info = {"steps": stage.steps, "seconds": round(time.perf_counter() - start, 1),
            "final": final, "stage": config_to_dict(stage)}
    if best is not None:
        model.load_state_dict(best[2])
        info["selection"] = {"history": checks, "best_step": best[1], "best": round(best[0], 4)}
    return info
