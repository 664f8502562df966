"""Learning-rate schedule: linear warm-up then cosine decay (CLIP4Clip / X-Pool / MuMUR setting).

The multiplier is a pure function of the step so the schedule's whole state is one integer, which
makes checkpoints JSON-only and resume exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["WarmupCosine", "build_scheduler", "warmup_cosine"]


def warmup_cosine(step: int, total_steps: int, warmup_steps: int = 0,
                  min_ratio: float = 0.0) -> float:
    """Learning-rate multiplier at optimiser step `step` (0-based, the step about to be taken).

    Linear warm-up from 0 to 1 over `warmup_steps`, then a half cosine from 1 down to `min_ratio`
    at `total_steps` (the convention of `transformers.get_cosine_schedule_with_warmup`, plus a
    floor):

        m(s) = s / W                                                  for s < W
        m(s) = r + (1 - r) * 0.5 * (1 + cos(pi * (s - W) / (N - W)))  for W <= s <= N
        m(s) = r                                                      for s > N

    Args:
        step: optimiser step index (>= 0).
        total_steps: N, the step at which the decay reaches `min_ratio` (> 0).
        warmup_steps: W (0 <= W <= N); 0 disables warm-up.
        min_ratio: r, the final multiplier (fraction of the base learning rate), in [0, 1].

    Returns:
        The multiplier for the base learning rate.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"warmup_steps must be in [0, {total_steps}], got {warmup_steps}")
    if step < warmup_steps:
        return step / warmup_steps
    if step >= total_steps:
        return min_ratio
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class WarmupCosine:
    """Picklable callable form of `warmup_cosine` for `torch.optim.lr_scheduler.LambdaLR`."""

    total_steps: int
    warmup_steps: int = 0
    min_ratio: float = 0.0

    def __call__(self, step: int) -> float:
        return warmup_cosine(step, self.total_steps, self.warmup_steps, self.min_ratio)


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                    min_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` applying `warmup_cosine` to every parameter group's base learning rate.

    Args:
        optimizer: the optimiser whose groups' `lr` is the base learning rate.
        total_steps: total optimiser steps of the run.
        warmup_steps: linear warm-up steps.
        min_ratio: final multiplier.

    Returns:
        The scheduler; call `.step()` after each `optimizer.step()`. Its `state_dict()` holds only
        numbers (the lambda is rebuilt from the config), so it is stored as JSON.
    """
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, WarmupCosine(total_steps, warmup_steps, min_ratio))
