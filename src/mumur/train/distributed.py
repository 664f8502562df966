"""Data-parallel training under torchrun: process group, per-rank data, the DDP-wrapped loss.

`torchrun --nproc_per_node N -m mumur train CONFIG` (or `--nnodes`, `--rdzv-endpoint` for several
machines) starts N processes with `RANK`, `LOCAL_RANK`, `WORLD_SIZE` and `MASTER_ADDR/PORT` set;
`init_distributed` joins them in one process group (gloo on CPU, NCCL on GPU). Then:

- data: batch `i` of epoch `e` is the same global batch in every process (`BatchSource` is a pure
  function of `(e, i)`); rank r takes its contiguous r-th slice of it (`RankBatches`), so the
  per-rank sharding is deterministic and the ranks' rows concatenated in rank order are the
  single-process batch;
- loss: `RetrievalModel.compute_loss` gathers every rank's head inputs with gradients
  (`mumur.losses.gather_batch`, as open_clip's `gather_features`) and each rank computes the
  contrastive loss of the whole global batch;
- gradients: `DistributedDataParallel` averages them, which with the gather's backward gives
  exactly the single-process gradient of the global batch (`gather_batch`'s docstring);
- files: rank 0 alone writes logs, checkpoints and model folders (the same files single-process
  training writes, so either kind of run resumes the other's checkpoints); every rank restores
  them on resume.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError

if TYPE_CHECKING:
    from .data import BatchSource

__all__ = [
    "DistInfo",
    "RankBatches",
    "barrier",
    "dist_info",
    "init_distributed",
    "is_main_process",
    "loss_forward",
    "rank_device",
    "rank_rows",
    "rank_zero_first",
]


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the run.

    Attributes:
        rank: global rank (0 writes the files).
        world_size: processes in the run (1 without torchrun).
        local_rank: rank on this machine (its GPU index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0


def dist_info() -> DistInfo:
    """The initialised process group's ranks (a single process when there is none)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(),
                    int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def is_main_process() -> bool:
    """Rank 0, or a single process."""
    return dist_info().rank == 0


def init_distributed(device: str = "auto", timeout_minutes: float = 120.0) -> DistInfo:
    """Join the torchrun process group when `WORLD_SIZE` > 1 (no-op otherwise or when joined).

    Args:
        device: the training device setting: NCCL when it resolves to CUDA, gloo otherwise.
        timeout_minutes: collective timeout (rank 0 builds feature caches while the others wait).

    Returns:
        the `DistInfo`.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or dist.is_initialized():
        return dist_info()
    cuda = torch.cuda.is_available() and device != "cpu" and not device.startswith("cpu")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo",
                            timeout=datetime.timedelta(minutes=timeout_minutes))
    return dist_info()


def rank_device(device: torch.device) -> torch.device:
    """A bare `cuda` device is this process's GPU (`cuda:LOCAL_RANK`) under torchrun."""
    info = dist_info()
    if device.type == "cuda" and device.index is None and info.world_size > 1:
        return torch.device("cuda", info.local_rank)
    return device


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    import torch.distributed as dist

    if dist_info().world_size > 1:
        dist.barrier()


@contextlib.contextmanager
def rank_zero_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. building feature caches), the others after it has
    finished, then read what it wrote instead of computing it again."""
    main = is_main_process()
    if not main:
        barrier()
    yield
    if main:
        barrier()


class RankBatches:
    """Rank r's contiguous slice of every global batch of a `BatchSource`.

    Uses the source's `rank_batch(epoch, index, rank, world)` when it has one (builds only the
    rank's rows), else slices tensors and lists of the full batch along the first dimension.

    Args:
        source: the global batches.
        info: this process's ranks.
    """

    def __init__(self, source: BatchSource, info: DistInfo):
        self.source, self.info = source, info

    def num_batches(self) -> int:
        return self.source.num_batches()

    def batch(self, epoch: int, index: int) -> dict:
        rank, world = self.info.rank, self.info.world_size
        if hasattr(self.source, "rank_batch"):
            return self.source.rank_batch(epoch, index, rank, world)
        full = self.source.batch(epoch, index)
        rows = {len(v) for v in full.values() if isinstance(v, (torch.Tensor, list))}
        if len(rows) != 1:
            raise ConfigError(f"cannot split a batch with entries of sizes {sorted(rows)}")
        part = rank_rows(rows.pop(), rank, world)
        return {k: v[part] if isinstance(v, (torch.Tensor, list)) else v for k, v in full.items()}


def rank_rows(n: int, rank: int, world: int) -> slice:
    """Rows of rank `rank` in a global batch of `n`: equal contiguous parts in rank order.

    Raises:
        ConfigError: `n` is not a multiple of `world` (the all-gather needs equal parts).
    """
    if n % world:
        raise ConfigError(f"train.batch_size: a global batch of {n} does not split into "
                          f"{world} equal per-process parts; use a multiple of {world} (and "
                          "drop_last for a smaller last batch)")
    part = n // world
    return slice(rank * part, (rank + 1) * part)


class _LossModule(torch.nn.Module):
    """`compute_loss` as `forward`, so DistributedDataParallel can wrap it."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict):
        return self.model.compute_loss(batch)


def loss_forward(model: torch.nn.Module, device: torch.device) -> Callable[[dict], object]:
    """`batch -> LossOutput`: `model.compute_loss`, wrapped in DistributedDataParallel (which
    broadcasts rank 0's weights now and averages gradients in backward) when several processes
    train."""
    if dist_info().world_size == 1:
        return model.compute_loss
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    # find_unused_parameters: a head may leave a branch's parameters out of a batch's loss.
    return DistributedDataParallel(_LossModule(model), device_ids=ids,
                                   find_unused_parameters=True)
