"""Faults during indexing and serving: a failing disk, SIGTERM, a model folder that goes away.

Each fault must give one clear error (or a clean exit), leave the index consistent (integrity
check, every committed row complete, no duplicates) and let a rerun of the same command finish
the job. Disk faults are injected at the SQLite boundary (a connection whose item inserts start
failing after N rows, as a full or read-only disk makes them fail) and for real with a file-size
limit (`RLIMIT_FSIZE`: the kernel refuses to grow the database, EFBIG).
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request

import numpy as np
import pytest
from conftest import PaletteEmbedder
from test_index import TESTS, _count, _many_images, _paths

import mumur.index.store as store_module
from mumur.errors import IndexWriteError, ModelLoadError
from mumur.index import Index, IndexStore, build_index


class _FailingConnection:
    """A sqlite3 connection whose item inserts raise `fault` once `ok_rows` rows went in."""

    def __init__(self, conn: sqlite3.Connection, fault: BaseException, ok_rows: int):
        self._conn, self.fault, self.left = conn, fault, ok_rows

    def execute(self, sql, *args):
        if sql.startswith("INSERT INTO items"):
            if self.left == 0:
                raise self.fault
            self.left -= 1
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def _assert_consistent(index, n_items: int) -> None:
    store = IndexStore(index)
    try:
        assert store.integrity_check() == "ok"
        arrays = store.load_arrays()  # every committed row is complete
        assert len(arrays.ids) == n_items and np.isfinite(arrays.pooled).all()
    finally:
        store.close()
    paths = _paths(index)
    assert len(paths) == len(set(paths)) == n_items


def _build(corpus, index, **kw):
    return build_index([corpus], index, embedder=PaletteEmbedder(), batch_size=2, num_workers=0,
                       progress=False, **kw)


@pytest.mark.parametrize("fault, said", [
    (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), "No space left on device"),
    (PermissionError(errno.EACCES, os.strerror(errno.EACCES)), "Permission denied"),
    (sqlite3.OperationalError("database or disk is full"), "database or disk is full"),
    (sqlite3.OperationalError("attempt to write a readonly database"), "readonly database"),
])
def test_a_write_failing_mid_run_is_one_clear_error_and_a_rerun_completes(
        tmp_path, monkeypatch, fault, said):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    _many_images(corpus, 9)
    real_connect = store_module.connect
    monkeypatch.setattr(store_module, "connect",
                        lambda path: _FailingConnection(real_connect(path), fault, ok_rows=4))
    with pytest.raises(IndexWriteError, match=rf"cannot write index .*index\.sqlite: .*{said}"
                                              r".*rerun"):
        _build(corpus, index)
    monkeypatch.undo()
    _assert_consistent(index, 4)  # two whole batches of 2; the failing batch left nothing

    report = _build(corpus, index)
    assert report.unchanged == 4 and len(report.indexed) == 5 and report.total == 9
    _assert_consistent(index, 9)


def test_a_real_file_size_limit_mid_run_is_a_clear_error_and_a_rerun_completes(tmp_path):
    # The kernel refuses to grow the database or its WAL past the limit (EFBIG, as a full disk
    # refuses with ENOSPC); SIGXFSZ would kill the process, so it is ignored as SQLite expects.
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    _many_images(corpus, 40)
    _build(corpus / "img_000.png", index)
    on_disk = sum(f.stat().st_size for f in index.iterdir() if f.is_file())
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (on_disk + 48 * 1024, hard))
    try:
        with pytest.raises(IndexWriteError, match=r"cannot write index .*rerun"):
            _build(corpus, index)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    committed = _count(index)
    assert 1 <= committed < 40
    _assert_consistent(index, committed)
    report = _build(corpus, index)
    assert report.total == 40 and len(report.indexed) == 40 - report.unchanged
    _assert_consistent(index, 40)


# ---- SIGTERM: the real CLI in a subprocess, with the palette embedder as its model ------------
_CLI = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import PaletteEmbedder
    import mumur.index.builder, mumur.index.search
    load = lambda *args, **kwargs: PaletteEmbedder(delay={delay})
    mumur.index.builder.load_embedder = mumur.index.search.load_embedder = load
    from mumur.cli import main
    sys.argv = ["mumur", *{args!r}]
    main()
""")


def _start_cli(args: list[str], delay: float = 0.0) -> subprocess.Popen:
    script = _CLI.format(tests=str(TESTS), delay=delay, args=[str(a) for a in args])
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigterm_during_mumur_index_exits_cleanly_and_a_rerun_completes(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    _many_images(corpus, 24)
    proc = _start_cli(["index", corpus, "--index", index, "--model", "palette", "--batch-size",
                       "2", "--workers", "1", "--quiet"], delay=0.15)
    deadline = time.time() + 120
    while _count(index) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err
    committed = _count(index)
    assert 4 <= committed < 24
    _assert_consistent(index, committed)

    report = _build(corpus, index)  # the lock was released: no --wait needed
    assert report.unchanged == committed and len(report.indexed) == 24 - committed
    _assert_consistent(index, 24)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_to_mumur_serve_shuts_down_cleanly(palette_index_dir):
    port = _free_port()
    proc = _start_cli(["serve", "--index", palette_index_dir, "--port", str(port)])
    url = f"http://127.0.0.1:{port}/api/search?q=red"
    deadline, answered = time.time() + 120, False
    while not answered and time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                answered = reply.status == 200
        except OSError:
            time.sleep(0.2)
    assert answered, proc.communicate(timeout=10)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM, which `main` ends with one line.
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Application shutdown complete" in err and "Finished server process" in err
    assert err.rstrip().endswith("stopped by SIGTERM") and "Traceback" not in err


# ---- the model folder goes away ---------------------------------------------------------------
def test_a_model_folder_that_disappears_gives_a_clear_error(tiny_mumur_model, palette_corpus,
                                                           tmp_path, monkeypatch):
    model, index = tmp_path / "model", tmp_path / "index"
    shutil.copytree(tiny_mumur_model, model)

    # Mid-run the model is in memory: the run finishes; the folder is needed on the next load.
    from mumur.index import builder

    real_commit = builder._commit_batch

    def commit_then_delete(*args):
        real_commit(*args)
        shutil.rmtree(model, ignore_errors=True)

    monkeypatch.setattr(builder, "_commit_batch", commit_then_delete)
    report = build_index([palette_corpus], index, model=str(model), batch_size=2, num_workers=0,
                         progress=False)
    monkeypatch.undo()
    assert not model.exists() and report.total == len(report.indexed) > 2

    gone = rf"model folder {model.resolve()} does not exist"
    with pytest.raises(ModelLoadError, match=gone):  # `mumur index` rerun, recorded model
        build_index([palette_corpus], index, num_workers=0, progress=False)
    with pytest.raises(ModelLoadError, match=gone):  # search (and `mumur serve` at startup)
        Index(index).search("red")

    # Gone while loading: after its config was read, before its weights.
    shutil.copytree(tiny_mumur_model, model)
    from mumur.model import factory

    real_read_json = factory.read_json

    def read_then_delete(*args, **kwargs):
        data = real_read_json(*args, **kwargs)
        shutil.rmtree(model, ignore_errors=True)
        return data

    monkeypatch.setattr(factory, "read_json", read_then_delete)
    with pytest.raises(ModelLoadError, match=r"cannot read weights"):
        Index(index).search("red")
    _assert_consistent(index, report.total)
