"""Index storage, incremental/resumable building, bad inputs, migration, concurrency."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import PaletteEmbedder, write_palette_image

from mumur.errors import IndexCorruptError, IndexMismatchError
from mumur.index import SCHEMA_VERSION, Index, IndexStore, build_index
from mumur.index import scan as scan_module
from mumur.index.scan import scan_media
from mumur.index.schema import migrate

TESTS = Path(__file__).resolve().parent


def _build(paths, index, embedder=None, **kw):
    kw.setdefault("num_workers", 0)
    return build_index(paths, index, embedder=embedder or PaletteEmbedder(), progress=False, **kw)


def _paths(index_dir) -> list[bytes]:
    with sqlite3.connect(str(Path(index_dir) / "index.sqlite")) as conn:
        return [bytes(r[0]) for r in conn.execute("SELECT path FROM items")]


def _huge_png(path: Path, width: int = 20000, height: int = 20000) -> None:
    """A tiny file whose header claims width x height pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def test_scan_handles_links_empty_and_non_utf8_names(tmp_path):
    root = tmp_path / "scan"
    (root / "a").mkdir(parents=True)
    write_palette_image(root / "a" / "red.png", "red")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)  # folder loop
    (root / "x.jpg").symlink_to(root / "y.jpg")
    (root / "y.jpg").symlink_to(root / "x.jpg")  # file symlink loop
    (root / "broken.png").symlink_to(root / "missing.png")
    (root / "alias.png").symlink_to(root / "a" / "red.png")  # same file twice
    (root / "empty.mp4").write_bytes(b"")
    (root / "notes.txt").write_text("not media")
    raw = os.path.join(os.fsencode(root), b"caf\xe9.png")
    shutil.copyfile(root / "a" / "red.png", raw)

    result = scan_media([root, tmp_path / "nope"])
    found = sorted(os.path.basename(f.path) for f in result.files)
    reasons = {os.path.basename(s.path): s.reason for s in result.skipped}
    assert found == [os.fsdecode(b"caf\xe9.png"), "red.png"]  # a/red.png is scanned first
    assert reasons["loop"].startswith("symlink loop")
    assert reasons["x.jpg"] == reasons["y.jpg"] == "symlink loop"
    assert reasons["broken.png"].startswith("broken symlink")
    assert reasons["alias.png"].startswith("same file as")
    assert reasons["empty.mp4"].startswith("empty file")
    assert reasons["nope"] == "not found"
    assert "notes.txt" not in reasons


def test_incremental_runs_skip_update_and_remove(palette_corpus, tmp_path):
    index = tmp_path / "index"
    first = _build([palette_corpus], index)
    assert (len(first.indexed), first.unchanged, first.total) == (10, 0, 10)

    again = _build([palette_corpus], index)
    assert (len(again.indexed), len(again.updated), again.unchanged) == (0, 0, 10)

    store = IndexStore(index)
    ids = {os.path.basename(r.path): r.id for r in store.records().values()}
    store.close()
    red = palette_corpus / "red_0.png"
    os.utime(red, ns=(time.time_ns(), time.time_ns() + 10**9))  # touched, same content
    write_palette_image(palette_corpus / "sub" / "green_1.png", "purple", seed=1)  # modified
    write_palette_image(palette_corpus / "new_orange.png", "orange")  # added

    third = _build([palette_corpus], index)
    assert [os.path.basename(p) for p in third.updated] == ["green_1.png"]
    assert [os.path.basename(p) for p in third.indexed] == ["new_orange.png"]
    assert third.unchanged == 9 and third.removed == [] and third.total == 11
    store = IndexStore(index)
    records = {os.path.basename(r.path): r for r in store.records().values()}
    assert records["green_1.png"].id == ids["green_1.png"]  # same id after re-embedding
    store.close()
    top = Index(index, embedder=PaletteEmbedder()).search("purple", k=1).results[0]
    assert os.path.basename(top.path) == "green_1.png"

    (palette_corpus / "sub" / "yellow_3.png").unlink()
    fourth = _build([palette_corpus], index)
    assert [os.path.basename(p) for p in fourth.removed] == ["yellow_3.png"]
    assert fourth.total == 10 and len(set(_paths(index))) == 10


def test_bad_inputs_are_skipped_with_reasons(media_files, tmp_path, monkeypatch):
    root = tmp_path / "bad"
    root.mkdir()
    write_palette_image(root / "good.png", "red")
    for name in ["text.mp4", "truncated.mp4", "empty.mp4"]:
        shutil.copyfile(media_files[name], root / name)
    _huge_png(root / "bomb.png")
    write_palette_image(root / "locked.png", "blue")
    (root / "loop").symlink_to(root, target_is_directory=True)
    shutil.copyfile(root / "good.png", os.path.join(os.fsencode(root), b"\xff\xfename.png"))

    real_open = open

    def guarded_open(path, *args, **kwargs):  # root ignores chmod 000; simulate EACCES
        if os.fspath(path).endswith("locked.png"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(scan_module, "open", guarded_open, raising=False)
    index = tmp_path / "index"
    report = _build([root], index)
    reasons = {os.path.basename(s.path): s.reason for s in report.skipped}
    assert sorted(os.path.basename(p) for p in report.indexed) == sorted(
        ["good.png", os.fsdecode(b"\xff\xfename.png")])
    assert reasons["empty.mp4"].startswith("empty file")
    assert reasons["locked.png"] == "permission denied"
    assert reasons["loop"].startswith("symlink loop")
    assert "bomb.png" in reasons and "pixels" in reasons["bomb.png"].lower()
    assert "text.mp4" in reasons  # not a video at all
    # A half file either decodes its first frames or is skipped with a reason; never both.
    truncated_indexed = any(p.endswith("truncated.mp4") for p in report.indexed)
    assert truncated_indexed != ("truncated.mp4" in reasons)
    summary = report.summary()
    assert "skipped" in summary and "permission denied" in summary

    store = IndexStore(index)
    assert store.integrity_check() == "ok"
    assert store.counts()["items"] == len(report.indexed)
    failed = set(store.failures())
    store.close()
    # A rerun does not retry files that failed and did not change, and loses nothing.
    again = _build([root], index)
    assert again.total == report.total and not again.indexed
    assert {os.path.basename(p) for p in failed} <= {
        os.path.basename(s.path) for s in again.skipped}
    hit = Index(index, embedder=PaletteEmbedder()).search("red", k=5).results
    assert any("\ufffd" in r.path for r in hit)  # non-UTF-8 name shown with replacements


def test_model_mismatch_is_refused(palette_corpus, tmp_path):
    index = tmp_path / "index"
    _build([palette_corpus], index)
    other = PaletteEmbedder(tag="v2")
    with pytest.raises(IndexMismatchError, match="built with model"):
        _build([palette_corpus], index, embedder=other)
    with pytest.raises(IndexMismatchError):
        Index(index, embedder=other)
    with pytest.raises(IndexCorruptError):
        Index(tmp_path / "no-index")


def _legacy_db(path: Path, version: int, rows: list[tuple]) -> None:
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    id_col = "id INTEGER PRIMARY KEY, " if version == 1 else ""
    conn.execute(f"CREATE TABLE items ({id_col}path TEXT UNIQUE, media_type TEXT, size INTEGER,"
                 " mtime REAL, n_frames INTEGER, timestamps BLOB, pooled BLOB, state BLOB)")
    if version == 1:
        conn.execute("CREATE TABLE schema_version (version INTEGER)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
    emb = PaletteEmbedder()
    meta = {"model_identity": emb.identity, "model_source": emb.source, "dim": "8",
            "state_dim": "8", "state_layout": '[["frames", 8]]', "num_frames": "4",
            "dtype": "float32", "generation": "3"}
    conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    for i, (p, media_type, size, mtime, vec) in enumerate(rows):
        cols = "(id, path, media_type, size, mtime, n_frames, timestamps, pooled, state)" \
            if version == 1 else "(path, media_type, size, mtime, n_frames, timestamps, pooled," \
            " state)"
        values = ((i + 5,) if version == 1 else ()) + (
            p, media_type, size, mtime, 1, np.zeros(1, "<f4").tobytes(),
            vec.astype("<f4").tobytes(), vec.astype("<f4").tobytes())
        conn.execute(f"INSERT INTO items {cols} VALUES ({','.join('?' * len(values))})", values)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("version", [0, 1])
def test_migration_from_old_layouts(palette_corpus, tmp_path, version):
    index = tmp_path / "index"
    index.mkdir()
    emb = PaletteEmbedder()
    files = sorted(palette_corpus.glob("*.png"))
    rows = []
    for f in files:
        feats = emb.encode_frames(emb.preprocess([__import__("PIL.Image").Image.open(f)]))
        vec = emb.frame_states(feats.numpy()[None], np.ones((1, 1), bool)).pooled[0]
        st = f.stat()
        rows.append((str(f), "image", st.st_size, st.st_mtime_ns / 1e9, vec))
    _legacy_db(index / "index.sqlite", version, rows)

    store = IndexStore(index)  # migrates
    assert store.schema_version() == SCHEMA_VERSION
    records = store.records()
    assert sorted(records) == sorted(str(f) for f in files)
    if version == 1:
        assert sorted(r.id for r in records.values()) == list(range(5, 5 + len(files)))
    assert all(r.hash is None for r in records.values())
    arrays = store.load_arrays()
    assert arrays.pooled.shape == (len(files), 8) and arrays.generation == 3
    store.close()
    # Migrating twice is a no-op.
    conn = sqlite3.connect(str(index / "index.sqlite"), isolation_level=None)
    assert migrate(conn) == SCHEMA_VERSION
    conn.close()
    # The next run fills the hashes without re-embedding the migrated images.
    report = _build([palette_corpus], index)
    # Only the files the legacy index did not hold (sub/ and the videos) are embedded.
    assert len(report.indexed) == 10 - len(files) and report.unchanged == len(files)
    store = IndexStore(index)
    assert all(r.hash for r in store.records().values())
    store.close()


def test_schema2_index_is_migrated_and_a_model_index_asks_for_a_rebuild(palette_corpus,
                                                                          tmp_path):
    """Schema 3 stores each query branch's arrays (`meta.layout`). A schema-2 index held one
    query space: migrated, it keeps its items and serves an embedder with that one space; one
    built from a mumur model (whose identity named the branch it served) is refused with a
    request to rebuild, since it lacks the English branch's arrays."""
    index = tmp_path / "index"
    _build([palette_corpus], index)
    conn = sqlite3.connect(str(index / "index.sqlite"), isolation_level=None)
    conn.execute("UPDATE schema_version SET version = 2")
    conn.execute("DELETE FROM meta WHERE key IN ('layout', 'pooled_dim')")
    conn.execute("INSERT INTO meta VALUES ('state_layout', '[[\"frames\", 8]]')")
    conn.close()
    copy = tmp_path / "copy"
    shutil.copytree(index, copy)

    idx = Index(index, embedder=PaletteEmbedder())  # migrates
    assert idx.info()["schema_version"] == SCHEMA_VERSION and idx.info()["branches"] == ["ml"]
    assert os.path.basename(idx.search("blue", k=1).results[0].path).startswith("blue")
    assert _build([palette_corpus], index).unchanged == 10  # nothing re-embedded
    idx.close()

    conn = sqlite3.connect(str(copy / "index.sqlite"), isolation_level=None)
    conn.execute("UPDATE meta SET value = 'mumur:mumur-dcm@0123456789abcdef:ml'"
                 " WHERE key = 'model_identity'")
    conn.close()
    with pytest.raises(IndexMismatchError, match="schema version 2.*rebuild"):
        Index(copy, embedder=PaletteEmbedder())


_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from conftest import PaletteEmbedder
    from mumur.index import build_index
    report = build_index([{corpus!r}], {index!r}, embedder=PaletteEmbedder(delay={delay}),
                         batch_size=2, num_workers=1, progress=False, wait={wait})
    print("DONE", report.total, len(report.indexed), len(report.updated), flush=True)
""")


def _many_images(root: Path, n: int) -> None:
    root.mkdir()
    colours = ["red", "green", "blue", "yellow", "purple", "orange"]
    for i in range(n):
        write_palette_image(root / f"img_{i:03d}.png", colours[i % len(colours)], seed=i)


def _start_writer(corpus, index, delay, wait=False):
    script = _WRITER.format(tests=str(TESTS), corpus=str(corpus), index=str(index), delay=delay,
                            wait=wait)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _count(index) -> int:
    try:
        with sqlite3.connect(f"file:{index}/index.sqlite?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_kill9_mid_run_leaves_a_consistent_resumable_index(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    _many_images(corpus, 30)
    proc = _start_writer(corpus, index, delay=0.15)
    deadline = time.time() + 60
    while _count(index) < 6 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = _count(index)
    assert 6 <= committed < 30, f"kill landed at {committed} items"

    store = IndexStore(index)
    assert store.integrity_check() == "ok"
    arrays = store.load_arrays()  # every committed row is complete
    assert len(arrays.ids) == committed and np.isfinite(arrays.pooled).all()
    store.close()

    report = _build([corpus], index)
    assert report.unchanged == committed and len(report.indexed) == 30 - committed
    paths = _paths(index)
    assert len(paths) == 30 and len(set(paths)) == 30


def test_reader_searches_while_writer_commits(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    _many_images(corpus, 24)
    _build([corpus / "img_000.png"], index)  # the reader needs a bound model to open
    reader = Index(index, embedder=PaletteEmbedder())
    proc = _start_writer(corpus, index, delay=0.1)
    seen, errors = [], []
    try:
        while proc.poll() is None:
            try:
                response = reader.search("red", k=3)
                seen.append(response.candidates)
            except Exception as exc:  # noqa: BLE001 - any failure here is the test failing
                errors.append(exc)
            time.sleep(0.02)
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert not errors
    assert seen == sorted(seen) and seen[-1] >= seen[0]
    assert len(set(seen)) > 2  # the cache reloaded on new commits
    assert reader.search("red", k=3).candidates == 24
    reader.close()


def test_reader_thread_during_in_process_writes(palette_corpus, tmp_path):
    index = tmp_path / "index"
    _build([palette_corpus / "red_0.png"], index)
    reader = Index(index, embedder=PaletteEmbedder())
    stop, errors, counts = threading.Event(), [], []

    def read():
        while not stop.is_set():
            try:
                counts.append(reader.search("green", k=2).candidates)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        _build([palette_corpus], index, embedder=PaletteEmbedder(delay=0.02), batch_size=2)
    finally:
        stop.set()
        thread.join()
    assert not errors and counts == sorted(counts)
    assert reader.search("green", k=2).candidates == 10
