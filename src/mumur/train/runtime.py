"""What a training run sets up before its first step: seeds, device, autocast precision and the
AdamW optimiser with its parameter groups."""

from __future__ import annotations

import random

import numpy as np
import torch

from ..errors import ConfigError
from .config import TrainConfig

__all__ = ["build_optimizer", "resolve_device", "resolve_precision", "seed_everything"]

_BACKBONE_PREFIXES = ("vision.", "text_en.", "text_ml.", "audio.")


def seed_everything(seed: int) -> None:
    """Seed python `random`, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; anything else is passed to `torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"train.device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but CUDA is not available")
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for `precision` on `device` (`None` = plain fp32).

    `auto` is bf16 on a CUDA device that supports it and fp32 elsewhere; explicit `bf16` is
    honoured on CPU too (CPU bf16 autocast is slower on most CPUs, hence not the default).
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"train.precision: bf16 is not supported on {device}")
        return torch.bfloat16
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    raise ConfigError(f"train.precision: unknown precision {precision!r}")


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, in up to four groups: {head, backbone} x {decay, no
    decay}. Parameters with fewer than 2 dims (biases, norm gains, logit scale) get no weight
    decay, as in CLIP/open_clip training.

    Args:
        model: the module; parameters with `requires_grad=False` are left out.
        config: learning rates, weight decay, betas, eps.

    Returns:
        The optimiser (groups carry a `name` key for logging).
    """
    groups: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part = "backbone" if name.startswith(_BACKBONE_PREFIXES) else "head"
        groups.setdefault((part, param.ndim >= 2), []).append(param)
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    param_groups = []
    for (part, decay), params in sorted(groups.items()):
        lr = config.backbone_lr if part == "backbone" and config.backbone_lr is not None \
            else config.lr
        param_groups.append({"params": params, "lr": lr,
                             "weight_decay": config.weight_decay if decay else 0.0,
                             "name": f"{part}{'' if decay else '_no_decay'}"})
    return torch.optim.AdamW(param_groups, lr=config.lr, betas=tuple(config.betas),
                             eps=config.eps, weight_decay=config.weight_decay)
