"""The training loop: AdamW, warm-up + cosine schedule, gradient clipping, bf16 autocast, seeded,
resumable checkpoints, JSONL logs, per-epoch validation with model selection and early stopping.

The trainer is generic: it trains any `nn.Module` with `compute_loss(batch: dict) -> LossOutput`
(the weighted total `loss` and a dict of named `terms`; it logs whatever terms come back) on any `BatchSource` (a fixed number of batches per epoch; batch
`i` of epoch `e` a pure function of `(e, i)`).

Run folder::

    log.jsonl          one line per logged step: step, epoch, loss, loss_<term> for each named
                       loss term (MuMUR: loss_en, loss_ml), lr, grad_norm, seconds (cumulative
                       training wall time)
    val.jsonl          one line per validation: step, epoch, metrics, best
    checkpoints/latest.json            {"checkpoint": "step_00000500"}
    checkpoints/step_XXXXXXXX/         model.safetensors, optimizer.safetensors, trainer_state.json
    best/              the model with the best validation metric (model.save format)
    model/             the final model

Checkpoints contain no pickle (`mumur.train.checkpoint`): weights, optimiser moments and torch
RNG states are safetensors; step, data-order position (epoch, batch), scheduler, optimiser
hyper-parameters, python/numpy RNG states and selection state are JSON. Every file and folder is
written whole and renamed into place, so a crash never leaves a half-written checkpoint behind
`latest.json`.

Resume restores all of it and truncates the logs to the checkpoint's step; because the data order
is a function of `(seed, epoch, batch)` and the RNG states are restored, the resumed run repeats
the uninterrupted run's loss sequence exactly (on the same device and thread settings).
Under torchrun the same loop runs data-parallel (`mumur.train.distributed`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..fsutil import atomic_write_json, atomic_write_text
from .checkpoint import (
    CheckpointError,
    latest_checkpoint,
    read_checkpoint,
    restore_checkpoint,
    save_checkpoint,
    save_model_folder,
)
from .config import TrainConfig
from .data import BatchSource, EpochBatches
from .distributed import RankBatches, barrier, dist_info, loss_forward, rank_device
from .runtime import build_optimizer, resolve_device, resolve_precision, seed_everything
from .schedule import build_scheduler

__all__ = ["TrainResult", "TrainState", "Trainer"]

# ------------------------------------------------------------------------------------- trainer

@dataclass
class TrainState:
    """Scalar progress of a run (JSON in every checkpoint).

    `epoch`, `batch`: data-order position, the next batch to train is `batch` of `epoch`.
    """

    step: int = 0
    epoch: int = 0
    batch: int = 0
    seconds: float = 0.0
    best_value: float | None = None
    best_step: int | None = None
    bad_validations: int = 0
    last_validated_step: int | None = None
    stopped_early: bool = False
    finished: bool = False


@dataclass
class TrainResult:
    """What `Trainer.fit` returns."""

    out_dir: Path
    steps: int
    epochs_completed: int
    best_value: float | None
    best_step: int | None
    stopped_early: bool
    seconds: float
    final_model: Path
    best_model: Path | None
    history: list[dict] = field(default_factory=list)


class Trainer:
    """Train a module with `compute_loss(batch) -> LossOutput` on a `BatchSource`.

    Args:
        model: the module (moved to the configured device).
        train_data: training batches.
        config: the `TrainConfig`.
        out_dir: run folder.
        evaluate_fn: `model -> dict[str, float]` validation metrics (e.g. mean t2v R@1 over
            languages on the validation split); called in eval mode under `torch.no_grad`.
        val_data: validation batches for `val_loss` (evaluated with the fixed plan of epoch 0).
        collate_device: move batch tensors to the device (default True).

    Model selection uses only the validation data given here; the test split is never seen.
    """

    def __init__(self, model: torch.nn.Module, train_data: BatchSource, config: TrainConfig,
                 out_dir: str | Path, *, evaluate_fn: Callable[[torch.nn.Module], dict] | None
                 = None, val_data: BatchSource | None = None):
        if not hasattr(model, "compute_loss"):
            raise ConfigError("the model has no compute_loss(batch) method")
        self.config = config
        self.out_dir = Path(out_dir)
        self.dist = dist_info()  # torchrun: rank 0 writes the files (mumur.train.distributed)
        self.main = self.dist.rank == 0
        self.device = rank_device(resolve_device(config.device))
        self.autocast_dtype = resolve_precision(config.precision, self.device)
        self.model = model.to(self.device)
        self.train_data = train_data if self.dist.world_size == 1 else \
            RankBatches(train_data, self.dist)
        self.evaluate_fn = evaluate_fn
        self.val_data = val_data
        needs_loss = config.selection_metric == "val_loss"
        if config.validate and needs_loss and val_data is None:
            raise ConfigError("train.selection_metric: 'val_loss' needs validation data")
        if config.validate and not needs_loss and evaluate_fn is None:
            raise ConfigError(f"train.selection_metric: {config.selection_metric!r} needs an "
                              "evaluate function (or set validate=false)")
        self.batches_per_epoch = train_data.num_batches()
        if self.batches_per_epoch < 1:
            raise ConfigError("train.batch_size: the training data gives no full batch "
                              f"(batch_size={config.batch_size})")
        self.total_steps = config.max_steps or config.epochs * self.batches_per_epoch
        warmup = config.warmup_steps if config.warmup_steps is not None else \
            int(config.warmup_ratio * self.total_steps)
        if warmup > self.total_steps:
            raise ConfigError(f"train.warmup_steps: {warmup} exceeds the {self.total_steps} "
                              "training steps")
        self.warmup_steps = warmup
        self.optimizer = build_optimizer(self.model, config)
        self.forward = loss_forward(self.model, self.device)  # DDP-wrapped under torchrun
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, warmup,
                                         config.min_lr_ratio)
        self.state = TrainState()
        self.history: list[dict] = []
        self.ckpt_dir = self.out_dir / "checkpoints"

    # ---------------------------------------------------------------------------- one step
    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                for k, v in batch.items()}

    def train_step(self, batch: dict) -> dict:
        """One optimiser step on `batch`: forward under autocast, backward, clip, AdamW, schedule.

        Args:
            batch: a `compute_loss` batch (tensors are moved to the device).

        Returns:
            `{"loss", "loss_<term>" for each named term, "lr", "grad_norm"}` (grad_norm before
            clipping).
        """
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        batch = self._to_device(batch)
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else contextlib.nullcontext())
        with autocast:
            out = self.forward(batch)
        loss = out.loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {self.state.step}")
        loss.backward()
        params = [p for g in self.optimizer.param_groups for p in g["params"]
                  if p.grad is not None]
        max_norm = self.config.grad_clip if self.config.grad_clip else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        lr = self._head_lr()
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": float(loss.detach()), **_term_scalars(out), "lr": lr,
                "grad_norm": float(grad_norm)}

    def _head_lr(self) -> float:
        # The logged lr is the head's (encoder groups may run at backbone_lr).
        for group in self.optimizer.param_groups:
            if group.get("name", "").startswith("head"):
                return group["lr"]
        return self.optimizer.param_groups[0]["lr"]

    # ----------------------------------------------------------------------------- the loop
    def _loader(self, epoch: int, start: int) -> torch.utils.data.DataLoader:
        # A dedicated generator keeps DataLoader's worker seeding off the global torch RNG, so
        # the training RNG stream is the same with or without an interruption.
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        return torch.utils.data.DataLoader(
            EpochBatches(self.train_data, epoch), batch_size=None,
            sampler=range(start, self.batches_per_epoch), num_workers=self.config.num_workers,
            generator=generator, persistent_workers=False)

    def fit(self, resume: bool = False) -> TrainResult:
        """Train to `total_steps` (or early stop), validating each epoch.

        Args:
            resume: continue from `checkpoints/latest.json` if present (else start fresh).

        Returns:
            A `TrainResult`.
        """
        if self.main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        latest = latest_checkpoint(self.ckpt_dir)
        if resume and latest is not None:
            self.load_checkpoint(latest)
            self._truncate_logs(self.state.step)
        else:  # a fresh run (also `resume` without a checkpoint): old logs are stale
            seed_everything(self.config.seed)
            if self.main:
                for name in ("log.jsonl", "val.jsonl"):
                    (self.out_dir / name).unlink(missing_ok=True)
                atomic_write_json(self.out_dir / "train_config.json", self.config.to_dict(),
                                  indent=2)
        cfg, st = self.config, self.state
        bar = _progress(cfg.progress, self.total_steps, st.step)
        try:
            while not st.finished:
                start_time = time.perf_counter()
                if st.batch < self.batches_per_epoch and st.step < self.total_steps:
                    for batch in self._loader(st.epoch, st.batch):
                        record = self.train_step(batch)
                        st.step += 1
                        st.batch += 1
                        st.seconds += time.perf_counter() - start_time
                        start_time = time.perf_counter()
                        record = {"step": st.step, "epoch": st.epoch, **record,
                                  "seconds": round(st.seconds, 4)}
                        if st.step % cfg.log_every == 0 or st.step == self.total_steps:
                            self._append("log.jsonl", record)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(loss=f"{record['loss']:.4f}", epoch=st.epoch)
                        if st.step >= self.total_steps:
                            break
                        if (cfg.checkpoint_every and st.step % cfg.checkpoint_every == 0
                                and st.batch < self.batches_per_epoch):
                            self.save_checkpoint()
                epoch_done = st.batch >= self.batches_per_epoch
                final = st.step >= self.total_steps
                if cfg.validate and st.last_validated_step != st.step:
                    self._validate()
                if epoch_done:
                    st.epoch += 1
                    st.batch = 0
                st.finished = final or st.stopped_early
                self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        final_model = self._save_model("model")
        barrier()  # torchrun: every rank returns once rank 0 has written the model
        best = self.out_dir / "best"
        if not best.exists():  # no validation ran: the final model is the selected one
            best = None
        return TrainResult(self.out_dir, st.step, st.epoch, st.best_value, st.best_step,
                           st.stopped_early, st.seconds, final_model, best, self.history)

    # ------------------------------------------------------------------------------ validation
    @torch.no_grad()
    def validation_loss(self) -> dict:
        """Mean `loss` and every named term over the validation batches (fixed plan, eval mode),
        as ``val_loss`` and ``val_loss_<term>``."""
        self.model.eval()
        totals: dict[str, float] = {}
        n = self.val_data.num_batches()
        for i in range(n):
            batch = self._to_device(self.val_data.batch(0, i))
            out = self.model.compute_loss(batch)
            for key, value in {"loss": float(out.loss), **_term_scalars(out)}.items():
                totals[f"val_{key}"] = totals.get(f"val_{key}", 0.0) + value / n
        return totals

    def _validate(self) -> None:
        st, cfg = self.state, self.config
        # Validation must not move the training RNG streams (resume equivalence).
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            py_state, np_state = random.getstate(), np.random.get_state()
            metrics: dict = {}
            if self.val_data is not None:
                metrics.update(self.validation_loss())
            if self.evaluate_fn is not None:
                self.model.eval()
                with torch.no_grad():
                    metrics.update(self.evaluate_fn(self.model))
            random.setstate(py_state)
            np.random.set_state(np_state)
        self.model.train()
        if cfg.selection_metric not in metrics:
            raise ConfigError(f"train.selection_metric: {cfg.selection_metric!r} is not among "
                              f"the validation metrics {sorted(metrics)}")
        value = float(metrics[cfg.selection_metric])
        better = st.best_value is None or (value < st.best_value if cfg.lower_is_better
                                           else value > st.best_value)
        if better:
            st.best_value, st.best_step, st.bad_validations = value, st.step, 0
            self._save_model("best")
        else:
            st.bad_validations += 1
            if (cfg.early_stopping_patience is not None
                    and st.bad_validations >= cfg.early_stopping_patience):
                st.stopped_early = True
        st.last_validated_step = st.step
        record = {"step": st.step, "epoch": st.epoch, "metrics": metrics,
                  "selection_metric": cfg.selection_metric, "value": value,
                  "best": bool(better)}
        self.history.append(record)
        self._append("val.jsonl", record)

    # ------------------------------------------------------------------------------ logs
    def _save_model(self, name: str) -> Path:
        path = self.out_dir / name
        return save_model_folder(self.model, path) if self.main else path

    def _append(self, name: str, record: dict) -> None:
        if not self.main:
            return
        with open(self.out_dir / name, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()

    def _truncate_logs(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from (they will be redone)."""
        for name in ("log.jsonl", "val.jsonl"):
            path = self.out_dir / name
            if not path.exists():
                continue
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by the crash
                if record.get("step", 0) <= step and not (
                        name == "val.jsonl" and record.get("step") == step
                        and self.state.last_validated_step != step):
                    kept.append(line)
            if self.main:
                atomic_write_text(path, "".join(k + "\n" for k in kept))
            if name == "val.jsonl":
                self.history = [json.loads(k) for k in kept]

    # ------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write `checkpoints/step_XXXXXXXX/` atomically and point `latest.json` at it."""
        if not self.main:
            return latest_checkpoint(self.ckpt_dir) or self.ckpt_dir
        progress = {"trainer": dataclasses.asdict(self.state), "total_steps": self.total_steps,
                    "batches_per_epoch": self.batches_per_epoch, "config": self.config.to_dict()}
        return save_checkpoint(self.ckpt_dir, f"step_{self.state.step:08d}", self.model,
                               self.optimizer, self.scheduler, progress,
                               self.config.keep_checkpoints)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore model, optimiser, scheduler, RNG states and progress from a checkpoint folder.

        Raises:
            CheckpointError: missing files, or a run of a different length / data size.
        """
        state = read_checkpoint(path)
        if (state["total_steps"], state["batches_per_epoch"]) != (
                self.total_steps, self.batches_per_epoch):
            raise CheckpointError(
                f"checkpoint {path} is for {state['total_steps']} steps of "
                f"{state['batches_per_epoch']} batches/epoch, this run has {self.total_steps} "
                f"of {self.batches_per_epoch}; resume with the same config and data")
        restore_checkpoint(path, state, self.model, self.optimizer, self.scheduler, self.device)
        self.state = TrainState(**state["trainer"])


def _term_scalars(out) -> dict[str, float]:
    """``loss_<name>`` -> float for every named term of a `LossOutput`."""
    return {f"loss_{name}": float(value.detach()) for name, value in out.terms.items()}


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)
