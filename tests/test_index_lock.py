"""Two index runs on one index: the second refuses (or waits), nothing is embedded twice."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import PaletteEmbedder
from test_index import _count, _many_images, _paths, _start_writer

from mumur.errors import IndexLockedError
from mumur.index import IndexStore, build_index
from mumur.index.lock import LOCK_NAME, writer_lock


def _wait_for_commits(proc, index, n: int) -> None:
    deadline = time.time() + 60
    while _count(index) < n and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert _count(index) >= n, proc.stderr.read() if proc.poll() is not None else "timed out"


def test_second_run_refuses_or_waits_and_nothing_is_embedded_twice(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    _many_images(corpus, 16)
    first = _start_writer(corpus, index, delay=0.1)
    _wait_for_commits(first, index, 2)
    os.kill(first.pid, signal.SIGSTOP)  # mid-run, holding the lock, until the others have tried
    try:
        with pytest.raises(IndexLockedError,
                           match=rf"another mumur index run \(pid {first.pid}\).*--wait"):
            build_index([corpus], index, embedder=PaletteEmbedder(), num_workers=0,
                        progress=False)
        waiter = _start_writer(corpus, index, delay=0.0, wait=True)
        said = ""
        while "waiting" not in said:
            line = waiter.stderr.readline()
            assert line, "the waiting run exited without waiting"
            said += line
        assert f"(pid {first.pid}); waiting for it to finish" in said
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out_first, err_first = first.communicate(timeout=120)
    out_waiter, err_waiter = waiter.communicate(timeout=120)
    assert first.returncode == 0 and waiter.returncode == 0, err_first + err_waiter
    assert out_first.split() == ["DONE", "16", "16", "0"]
    assert out_waiter.split() == ["DONE", "16", "0", "0"]  # found everything unchanged

    paths = _paths(index)
    assert len(paths) == 16 and len(set(paths)) == 16
    store = IndexStore(index)
    assert store.integrity_check() == "ok"
    store.close()


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    _many_images(corpus, 12)
    proc = _start_writer(corpus, index, delay=0.2)
    _wait_for_commits(proc, index, 2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (index / LOCK_NAME).exists()
    report = build_index([corpus], index, embedder=PaletteEmbedder(), num_workers=0,
                         progress=False)  # no --wait needed: the kernel dropped the lock
    assert report.total == 12 and len(report.indexed) == 12 - report.unchanged


def test_writers_in_one_process_exclude_each_other(tmp_path):
    messages = []
    with writer_lock(tmp_path / "index"):
        with pytest.raises(IndexLockedError, match=r"pid \d+"):
            with writer_lock(tmp_path / "index"):
                pass
    with writer_lock(tmp_path / "index", wait=True, on_wait=messages.append):
        pass  # free again: no wait, no message
    assert messages == []


def test_cli_refuses_with_one_line(tmp_path, monkeypatch, capsys):
    from mumur.cli import main

    (tmp_path / "media").mkdir()
    monkeypatch.setattr("sys.argv", ["mumur", "index", str(tmp_path / "media"), "--index",
                                     str(tmp_path / "index"), "--model", "unused", "--quiet"])
    with writer_lock(tmp_path / "index"), pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and "pass --wait" in err
