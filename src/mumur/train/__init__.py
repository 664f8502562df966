"""Training: the generic `Trainer`, the warm-up + cosine schedule, training batches from a
`RetrievalDataset`, feature caches for frozen backbones, and `train_from_config` behind
`mumur train CONFIG`."""

from __future__ import annotations

from .config import ExperimentConfig, TrainConfig, load_experiment_config, train_config_from_dict
from .data import CaptionSampler, TrainBatches
from .schedule import build_scheduler, warmup_cosine
from .trainer import Trainer, TrainResult

__all__ = [
    "CaptionSampler",
    "ExperimentConfig",
    "TrainBatches",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "build_scheduler",
    "load_experiment_config",
    "train_config_from_dict",
    "train_from_config",
    "warmup_cosine",
]


def train_from_config(config_path, out_dir, resume: bool = False) -> TrainResult:
    """Train the experiment of a JSON config into `out_dir` (see
    `mumur.train.experiment.train_from_config`)."""
    from .experiment import train_from_config as run

    return run(config_path, out_dir, resume=resume)
