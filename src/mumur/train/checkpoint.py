"""Training checkpoints and model folders on disk, without pickle.

A checkpoint folder `checkpoints/step_XXXXXXXX/` holds::

    model.safetensors       the model's state dict
    optimizer.safetensors   optimiser moments (`state.<param index>.<name>`) and torch RNG states
                            (`rng.torch`, `rng.cuda.<device>`)
    trainer_state.json      the caller's progress record, the optimiser's param groups and
                            non-tensor state, the scheduler state, python / numpy RNG states

and `checkpoints/latest.json` (`{"checkpoint": "step_XXXXXXXX"}`) names the newest. Folders and
files are written whole under temporary names and renamed into place (`mumur.fsutil`), and
`latest.json` is rewritten only after its checkpoint is complete, so a crash at any point leaves
`latest.json` naming a whole checkpoint.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ..errors import MumurError
from ..fsutil import atomic_directory, atomic_write_json

__all__ = [
    "CheckpointError",
    "latest_checkpoint",
    "read_checkpoint",
    "restore_checkpoint",
    "save_checkpoint",
    "save_model_folder",
]

_FILES = ("model.safetensors", "optimizer.safetensors", "trainer_state.json")
_LATEST = "latest.json"


class CheckpointError(MumurError):
    """A checkpoint folder is missing files or does not match the run."""


def _state_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # Shared tensors are stored once per name; clone breaks storage sharing for safetensors.
    return {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}


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
    with atomic_directory(path) as tmp:
        if hasattr(model, "save"):
            model.save(tmp)
        else:
            save_file(_state_tensors(model), str(tmp / "model.safetensors"))
    return path


def save_checkpoint(ckpt_dir: Path, name: str, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, scheduler, progress: dict,
                    keep: int) -> Path:
    """Write checkpoint `ckpt_dir/name`, point `latest.json` at it, keep the newest `keep`.

    Args:
        ckpt_dir: the run's checkpoints folder.
        name: the checkpoint's folder name (sorting by name must sort by step).
        model, optimizer, scheduler: what to save, with the global RNG states.
        progress: the caller's JSON record (step, data position, run shape, ...), returned by
            `read_checkpoint` as is.
        keep: how many checkpoints to keep (the new one always stays).

    Returns:
        The checkpoint folder.
    """
    tensors, optimizer_json = _flatten_optimizer(optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    state = {**progress, "optimizer": optimizer_json,
             "scheduler": _to_jsonable(scheduler.state_dict()),
             "rng": {"python": _to_jsonable(random.getstate()),
                     "numpy": _to_jsonable(np.random.get_state())}}
    folder = ckpt_dir / name
    with atomic_directory(folder) as tmp:
        save_file(_state_tensors(model), str(tmp / "model.safetensors"))
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    atomic_write_json(ckpt_dir / _LATEST, {"checkpoint": name})
    older = sorted(p for p in ckpt_dir.glob("step_*") if p.is_dir() and p.name != name)
    for p in older[:max(0, len(older) + 1 - keep)]:
        shutil.rmtree(p, ignore_errors=True)
    return folder


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint `latest.json` names, or None when there is none yet."""
    latest = ckpt_dir / _LATEST
    if not latest.exists():
        return None
    return ckpt_dir / json.loads(latest.read_text(encoding="utf-8"))["checkpoint"]


def read_checkpoint(path: str | Path) -> dict:
    """The JSON state of a checkpoint folder (the caller's `progress` record and the rest).

    Raises:
        CheckpointError: files are missing.
    """
    path = Path(path)
    missing = [f for f in _FILES if not (path / f).exists()]
    if missing:
        raise CheckpointError(f"checkpoint {path} is missing {', '.join(missing)}")
    return json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))


def restore_checkpoint(path: str | Path, state: dict, model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer, scheduler,
                       device: torch.device) -> None:
    """Load weights, optimiser, scheduler and every RNG state of a checkpoint into place.

    Args:
        path: the checkpoint folder.
        state: its `read_checkpoint` state.
        model, optimizer, scheduler: restored in place (built as for the saved run).
        device: where the weights go.
    """
    path = Path(path)
    model.load_state_dict(load_file(str(path / "model.safetensors"), device=str(device)),
                          strict=True)
    tensors = load_file(str(path / "optimizer.safetensors"))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    version, internal, gauss = state["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["rng"]["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _to_jsonable(value):
    if isinstance(value, (tuple, list)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


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
