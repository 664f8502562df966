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

Checkpoints contain no pickle: weights, optimiser moments and torch RNG states are safetensors;
step, data-order position (epoch, batch), scheduler, optimiser hyper-parameters, python/numpy RNG
states and selection state are JSON. Every file and folder is written to a temporary name and
moved into place with `os.replace`, so a crash never leaves a half-written checkpoint behind
`latest.json`.

Resume restores all of it and truncates the logs to the checkpoint's step; because the data order
is a function of `(seed, epoch, batch)` and the RNG states are restored, the resumed run repeats
the uninterrupted run's loss sequence exactly (on the same device and thread settings).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import ConfigError, MumurError
from .config import TrainConfig
from .data import BatchSource, EpochBatches
from .schedule import build_scheduler

__all__ = [
    "CheckpointError",
    "TrainResult",
    "TrainState",
    "Trainer",
    "atomic_write_text",
    "build_optimizer",
    "resolve_device",
    "resolve_precision",
    "save_model_folder",
    "seed_everything",
]

_BACKBONE_PREFIXES = ("vision.", "text_en.", "text_ml.", "audio.")


class CheckpointError(MumurError):
    """A checkpoint folder is missing files or does not match the run."""


# ------------------------------------------------------------------------------------ utilities

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


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary file and `os.replace` (never half-written)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a fully written folder into place; an existing one is swapped out then removed."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def save_model_folder(model: torch.nn.Module, path: str | Path) -> Path:
    """Save `model` atomically: `model.save(folder)` when it has one (a `RetrievalModel`, loadable
    by `mumur.load_model`), else its state dict as `model.safetensors`.

    Args:
        model: the module.
        path: destination folder (replaced if it exists).

    Returns:
        The folder.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    if hasattr(model, "save"):
        model.save(tmp)
    else:
        tmp.mkdir(parents=True)
        save_file(_state_tensors(model), str(tmp / "model.safetensors"))
    _replace_dir(tmp, path)
    return path


def _state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Shared tensors are stored once per name; clone breaks storage sharing for safetensors.
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


def _to_jsonable(value):
    if isinstance(value, tuple):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _python_rng_from_json(state) -> tuple:
    version, internal, gauss = state
    return version, tuple(internal), gauss


def _numpy_rng_from_json(state) -> tuple:
    name, keys, pos, has_gauss, cached = state
    return name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached


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
        self.device = resolve_device(config.device)
        self.autocast_dtype = resolve_precision(config.precision, self.device)
        self.model = model.to(self.device)
        self.train_data = train_data
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
            out = self.model.compute_loss(batch)
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
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir.mkdir(exist_ok=True)
        latest = self.ckpt_dir / "latest.json"
        if resume and latest.exists():
            self.load_checkpoint(self.ckpt_dir / json.loads(latest.read_text())["checkpoint"])
            self._truncate_logs(self.state.step)
        else:  # a fresh run (also `resume` without a checkpoint): old logs are stale
            for name in ("log.jsonl", "val.jsonl"):
                (self.out_dir / name).unlink(missing_ok=True)
            seed_everything(self.config.seed)
            atomic_write_text(self.out_dir / "train_config.json",
                              json.dumps(self.config.to_dict(), indent=2))
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
        final_model = save_model_folder(self.model, self.out_dir / "model")
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
            save_model_folder(self.model, self.out_dir / "best")
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
    def _append(self, name: str, record: dict) -> None:
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
            atomic_write_text(path, "".join(k + "\n" for k in kept))
            if name == "val.jsonl":
                self.history = [json.loads(k) for k in kept]

    # ------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write `checkpoints/step_XXXXXXXX/` atomically and point `latest.json` at it."""
        name = f"step_{self.state.step:08d}"
        final = self.ckpt_dir / name
        tmp = self.ckpt_dir / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(_state_tensors(self.model), str(tmp / "model.safetensors"))
        opt_tensors, opt_json = _flatten_optimizer(self.optimizer.state_dict())
        opt_tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                opt_tensors[f"rng.cuda.{i}"] = s
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        state = {
            "trainer": dataclasses.asdict(self.state),
            "optimizer": opt_json,
            "scheduler": _to_jsonable(self.scheduler.state_dict()),
            "rng": {"python": _to_jsonable(random.getstate()),
                    "numpy": _to_jsonable(np.random.get_state())},
            "total_steps": self.total_steps,
            "batches_per_epoch": self.batches_per_epoch,
            "config": self.config.to_dict(),
        }
        with open(tmp / "trainer_state.json", "w", encoding="utf-8") as f:
            json.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        _replace_dir(tmp, final)
        atomic_write_text(self.ckpt_dir / "latest.json", json.dumps({"checkpoint": name}))
        self._prune_checkpoints(keep=name)
        return final

    def _prune_checkpoints(self, keep: str) -> None:
        ckpts = sorted(p for p in self.ckpt_dir.glob("step_*") if p.is_dir())
        old = [p for p in ckpts if p.name != keep][:max(0, len(ckpts) - self.config.
                                                         keep_checkpoints)]
        for p in old:
            shutil.rmtree(p, ignore_errors=True)

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore model, optimiser, scheduler, RNG states and progress from a checkpoint folder.

        Raises:
            CheckpointError: missing files, or a run of a different length / data size.
        """
        path = Path(path)
        files = ("model.safetensors", "optimizer.safetensors", "trainer_state.json")
        missing = [f for f in files if not (path / f).exists()]
        if missing:
            raise CheckpointError(f"checkpoint {path} is missing {', '.join(missing)}")
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        if (state["total_steps"], state["batches_per_epoch"]) != (
                self.total_steps, self.batches_per_epoch):
            raise CheckpointError(
                f"checkpoint {path} is for {state['total_steps']} steps of "
                f"{state['batches_per_epoch']} batches/epoch, this run has {self.total_steps} "
                f"of {self.batches_per_epoch}; resume with the same config and data")
        weights = load_file(str(path / "model.safetensors"), device=str(self.device))
        self.model.load_state_dict(weights, strict=True)
        tensors = load_file(str(path / "optimizer.safetensors"))
        self.optimizer.load_state_dict(_unflatten_optimizer(tensors, state["optimizer"]))
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
        random.setstate(_python_rng_from_json(state["rng"]["python"]))
        np.random.set_state(_numpy_rng_from_json(state["rng"]["numpy"]))
        self.state = TrainState(**state["trainer"])


def _term_scalars(out) -> dict[str, float]:
    """``loss_<name>`` -> float for every named term of a `LossOutput`."""
    return {f"loss_{name}": float(value.detach()) for name, value in out.terms.items()}


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


def _flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state dict into safetensors tensors and a JSON remainder."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for idx, pstate in state_dict["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = _to_jsonable(value)
    return tensors, {"param_groups": _to_jsonable(state_dict["param_groups"]),
                     "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, values in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(values)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g
              for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}
