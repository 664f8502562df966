"""Data-parallel training under torchrun (2 CPU processes, gloo) against single-process training
on the same global batches: same losses, same checkpoints, exact resume across the two."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mumur.errors import ConfigError
from mumur.losses import gather_batch
from mumur.train.distributed import DistInfo, RankBatches, rank_rows

WORKER = Path(__file__).parent / "fixtures" / "ddp_train_worker.py"
KEYS = ("loss", "loss_en", "loss_ml", "grad_norm")


def _env() -> dict:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "PYTHONPATH": src + os.pathsep + env.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


def _run(out: Path, *, ranks: int = 1, resume: bool = False) -> list[dict]:
    launcher = [sys.executable] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={ranks}"]
    cmd = [*launcher, str(WORKER), str(out)] + (["--resume"] if resume else [])
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _assert_same_losses(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        for key in KEYS:
            assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-6), (key, x, y)
        assert x["lr"] == y["lr"] and x["epoch"] == y["epoch"]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def single_run(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("single") / "run"
    return out, _run(out)


def test_two_processes_repeat_the_single_process_loss_sequence(single_run, tmp_path):
    single, ref = single_run
    got = _run(tmp_path / "ddp", ranks=2)
    assert len(ref) == 6
    _assert_same_losses(ref, got)
    assert ref[0]["loss"] != ref[-1]["loss"]  # training moved the model
    a, b = _weights(single / "model"), _weights(tmp_path / "ddp" / "model")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)
    # The DDP run wrote the single-process files: one log, the same checkpoints.
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == sorted(
        p.name for p in (single / "checkpoints").iterdir())

    # A single process resumes the DDP run's step-2 checkpoint and repeats its steps 3..6.
    run = tmp_path / "resumed"
    shutil.copytree(tmp_path / "ddp", run)
    (run / "checkpoints" / "latest.json").write_text(
        json.dumps({"checkpoint": "step_00000002"}))
    _assert_same_losses(got, _run(run, resume=True))


@pytest.mark.slow
def test_two_processes_resume_a_single_process_checkpoint(single_run, tmp_path):
    single, ref = single_run
    run = tmp_path / "run"
    shutil.copytree(single, run)
    (run / "checkpoints" / "latest.json").write_text(
        json.dumps({"checkpoint": "step_00000004"}))
    _assert_same_losses(ref, _run(run, ranks=2, resume=True))


def test_rank_rows_split_the_global_batch_in_rank_order():
    parts = [rank_rows(8, r, 4) for r in range(4)]
    assert [list(range(8))[p] for p in parts] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ConfigError, match="multiple of 3"):
        rank_rows(8, 0, 3)


def test_rank_batches_concatenate_to_the_global_batch():
    sys.path.insert(0, str(WORKER.parent))
    try:
        from ddp_train_worker import batches
    finally:
        sys.path.pop(0)
    source = batches(seed=3, batch_size=8)

    class Plain:  # a BatchSource without rank_batch: RankBatches slices the full batch
        def num_batches(self):
            return source.num_batches()

        def batch(self, epoch, index):
            return source.batch(epoch, index)

    full = source.batch(1, 1)
    for src in (source, Plain()):
        parts = [RankBatches(src, DistInfo(r, 2)).batch(1, 1) for r in range(2)]
        for key, value in full.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(torch.cat([p[key] for p in parts]), value), key
            else:
                assert parts[0][key] + parts[1][key] == value, key


def test_gather_batch_is_the_identity_without_a_process_group():
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_batch(x) is x


@pytest.mark.slow
def test_torchrun_mumur_train_matches_one_process(tmp_path):
    """`torchrun -m mumur train CONFIG`: the experiment path (caches built by rank 0 first)."""
    from test_train import _tiny_multi30k, _write_config

    _tiny_multi30k(tmp_path / "m30k")
    config = _write_config(tmp_path, validate=False, freeze_vision=True, batch_size=4)
    spec = json.loads(config.read_text())
    spec["model"]["overrides"]["dropout"] = 0.0  # see the worker's note on dropout
    config.write_text(json.dumps(spec))
    logs = []
    for ranks in (1, 2):
        out = tmp_path / f"run{ranks}"
        launcher = [sys.executable] if ranks == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={ranks}"]
        done = subprocess.run([*launcher, "-m", "mumur", "train", str(config), "--out", str(out)],
                              env=_env(), cwd=tmp_path, capture_output=True, text=True,
                              timeout=900, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        logs.append([json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()])
    _assert_same_losses(logs[0], logs[1])
