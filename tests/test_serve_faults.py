"""Faults while serving: a thumbnail cache that cannot be written, and a server restarted (SIGTERM
or kill -9) while clients query.

A full disk must not turn a thumbnail into a 500: the JPEG is served from memory, uncached, and
the cache is tried again on the next request. A restart must give clients only connection
errors they can retry (never a 5xx, never a half or wrong answer), and leave the index intact.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPException

import pytest
from conftest import PaletteEmbedder
from fastapi.testclient import TestClient
from test_index_faults import _assert_consistent, _free_port, _start_cli

import mumur.serve.resources as resources_module
from mumur.serve import create_app, load_resources


def _thumb_ids(resources) -> list[int]:
    return sorted(r.id for r in resources.index.store.records().values())


def _left_in(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                 errno.EFBIG], ids=errno.errorcode.get)
def test_a_thumbnail_cache_that_cannot_be_written_serves_the_jpeg_uncached(
        served, monkeypatch, caplog, err):
    client, resources = served
    real_write = resources_module.atomic_write_bytes

    def refuse(path, data, **kwargs):  # as the disk refuses: after the temporary file was begun
        with open(path.with_name(f".{path.name}.partial"), "wb") as fh:
            fh.write(data[:10])
        os.unlink(fh.name)
        raise OSError(err, os.strerror(err))

    monkeypatch.setattr(resources_module, "atomic_write_bytes", refuse)
    ids = _thumb_ids(resources)
    with caplog.at_level("WARNING", logger="mumur.serve"):
        replies = [client.get(f"/api/thumb/{i}") for i in ids]
    for reply in replies:
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
        assert reply.content[:3] == b"\xff\xd8\xff" and reply.content.endswith(b"\xff\xd9")
    assert _left_in(resources.thumb_dir) == []  # nothing cached, nothing half-written
    warned = [r for r in caplog.records if "thumbnail cache" in r.getMessage()]
    assert len(warned) == 1 and os.strerror(err) in warned[0].getMessage()  # once, with why

    # The disk has room again: the same request now caches, with the same bytes.
    monkeypatch.setattr(resources_module, "atomic_write_bytes", real_write)
    again = client.get(f"/api/thumb/{ids[0]}")
    assert again.status_code == 200 and again.content == replies[0].content
    assert len(_left_in(resources.thumb_dir)) == 1


def test_a_real_file_size_limit_on_the_thumbnail_cache_is_not_a_500(served):
    # The kernel refuses to grow the cached JPEG (EFBIG, as a full disk refuses with ENOSPC);
    # SIGXFSZ would kill the process, so it is ignored, as a server process should.
    client, resources = served
    ids = _thumb_ids(resources)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, hard))  # a JPEG header is about 600 bytes
    try:
        replies = [client.get(f"/api/thumb/{i}") for i in ids]
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old_handler)
    assert [r.status_code for r in replies] == [200] * len(ids)
    assert all(r.content[:3] == b"\xff\xd8\xff" and len(r.content) > 200 for r in replies)
    assert _left_in(resources.thumb_dir) == []


def test_a_thumbnail_cache_path_that_is_a_file_is_not_a_500(palette_index_dir, tmp_path):
    blocker = tmp_path / "thumbs"
    blocker.write_text("not a folder")  # mkdir fails for real (FileExistsError)
    resources = load_resources(palette_index_dir, embedder=PaletteEmbedder(), thumb_dir=blocker)
    try:
        with TestClient(create_app(resources)) as client:
            reply = client.get(f"/api/thumb/{_thumb_ids(resources)[0]}")
        assert reply.status_code == 200 and reply.content[:3] == b"\xff\xd8\xff"
        assert blocker.read_text() == "not a folder"
    finally:
        resources.index.close()


# ---- a server restarted while clients query ---------------------------------------------------
QUERIES = ["red", "green", "blue", "yellow", "blue red"]
# What a client may see while the server is away: the connection refused, reset or closed early.
_RETRYABLE = (ConnectionError, HTTPException, TimeoutError, urllib.error.URLError)


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:  # an HTTP answer, not a connection error
        return exc.code, {}


def _serve(index, port):
    proc = _start_cli(["serve", "--index", index, "--port", str(port)])
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if _get(f"http://127.0.0.1:{port}/api/health")[0] == 200:
                return proc
        except _RETRYABLE:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.communicate(timeout=10))


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_server_restart_while_clients_query_gives_clean_retries_and_right_answers(
        palette_index_dir, how):
    port = _free_port()
    base = f"http://127.0.0.1:{port}/api/search?k=5&q="
    proc = _serve(palette_index_dir, port)
    expected = {q: _get(base + urllib.request.quote(q))[1]["results"] for q in QUERIES}

    stop = threading.Event()
    outcomes: list[list] = [[] for _ in range(3)]  # per client: ("ok"|"retry"|"wrong"|status)

    def client(slot: int) -> None:
        n = 0
        while not stop.is_set() and n < 2000:  # bounded in count and (by `stop`) in time
            query = QUERIES[(slot + n) % len(QUERIES)]
            n += 1
            try:
                status, body = _get(base + urllib.request.quote(query))
            except _RETRYABLE as exc:
                outcomes[slot].append(("retry", type(exc).__name__))
                time.sleep(0.05)  # back off, then retry
                continue
            if status != 200:
                outcomes[slot].append(("status", status))
            elif body["results"] != expected[query]:
                outcomes[slot].append(("wrong", query))
            else:
                outcomes[slot].append(("ok", time.monotonic()))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(outcomes))]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        proc.send_signal(how)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (128 + how, -how), err
        assert "Traceback" not in err
        down_at = time.monotonic()
        time.sleep(0.5)  # clients find nobody listening
        proc = _serve(palette_index_dir, port)  # same index, same port
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        proc.terminate()
        proc.communicate(timeout=60)

    every = [o for slot in outcomes for o in slot]
    bad = [o for o in every if o[0] in ("status", "wrong")]
    assert bad == [], bad  # no 5xx (nor any other status), no answer that differs
    assert any(o[0] == "retry" for o in every)  # the restart was seen by the clients
    for slot in outcomes:  # each client got right answers before and after the restart
        oks = [t for kind, t in slot if kind == "ok"]
        assert min(oks) < down_at < max(oks), slot[-5:]
    assert {name for kind, name in every if kind == "retry"} <= {
        "ConnectionRefusedError", "ConnectionResetError", "RemoteDisconnected", "URLError",
        "BadStatusLine", "IncompleteRead", "TimeoutError", "BrokenPipeError"}
    _assert_consistent(palette_index_dir, 10)  # 8 images + 2 videos, integrity ok
    retried = sorted({name for kind, name in every if kind == "retry"})
    print(f"restart by {how.name}: {len(every)} requests, "  # figures, with `pytest -s`
          f"{sum(o[0] == 'ok' for o in every)} right answers, "
          f"{sum(o[0] == 'retry' for o in every)} connection errors retried ({', '.join(retried)}),"
          " 0 wrong answers, 0 error statuses")
