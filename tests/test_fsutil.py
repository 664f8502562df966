"""mumur.fsutil: a write that fails or is killed midway leaves the old file or folder intact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mumur.config import read_json, write_json
from mumur.fsutil import (
    atomic_directory,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_writes_replace_the_file_and_leave_no_temporaries(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")
    atomic_write_json(target, {"text": "grüße"}, indent=1)
    assert json.loads(target.read_text(encoding="utf-8")) == {"text": "grüße"}
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]


def test_exception_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "state.json"
    write_json(target, {"step": 1})
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".json" and tmp.name.startswith(".")
            tmp.write_text('{"step": 2, "half')  # a partial write, then the writer dies
            raise RuntimeError("simulated crash")
    assert read_json(target) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_config_write_json_is_atomic(tmp_path, monkeypatch):
    import mumur.fsutil

    target = tmp_path / "config.json"
    write_json(target, {"step": 1})

    def crash(*args):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(mumur.fsutil.os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        write_json(target, {"step": 2})
    assert read_json(target) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_killed_writer_leaves_the_old_file(tmp_path):
    target = tmp_path / "model.txt"
    atomic_write_text(target, "old")
    script = (
        "import os, signal, sys\n"
        "from mumur.fsutil import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('new, but only half')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(target)],
                          env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert proc.returncode == -9
    assert target.read_text() == "old"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model.txt"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".model.tmp-")  # hidden, not `target`


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "best"
    with atomic_directory(folder) as tmp:
        (tmp / "weights.bin").write_bytes(b"v1")
        (tmp / "extra.txt").write_text("only in v1")
    with pytest.raises(RuntimeError):
        with atomic_directory(folder) as tmp:
            (tmp / "weights.bin").write_bytes(b"v2-partial")
            raise RuntimeError("simulated crash")
    assert sorted(p.name for p in folder.iterdir()) == ["extra.txt", "weights.bin"]
    assert (folder / "weights.bin").read_bytes() == b"v1"
    with atomic_directory(folder) as tmp:
        (tmp / "weights.bin").write_bytes(b"v2")
    assert [p.name for p in folder.iterdir()] == ["weights.bin"]  # replaced, not merged
    assert (folder / "weights.bin").read_bytes() == b"v2"
    assert [p.name for p in tmp_path.iterdir()] == ["best"]
