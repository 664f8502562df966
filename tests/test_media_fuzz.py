"""Media decoder fuzzing: mutated real files either decode or fail with `MediaDecodeError`.

Seeds are real files the tests write (an H.264 mp4 via PyAV, a JPEG, a PNG); mutations truncate,
flip bits, overwrite spans, swap containers and extensions, and claim huge frame sizes; fixed cases
add zero-length files and streams, an audio-only mp4, a variable-frame-rate mp4 and an MJPEG
stream whose frames claim 16000x16000. Every case runs in a worker process (`_Decoder`) with a
timeout, so a crash (signal) or a hang of the decoder is caught and reported, not suffered. The
per-file contract is what the index relies on (`mumur.data.features._FrameDataset`): decoding
gives frames, or raises `MediaDecodeError` (the index records it as skipped); any other exception,
a signal or a hang is a bug.

The default suite runs the fixed cases plus 40 seeded mutations; the longer run is
`pytest -m slow tests/test_media_fuzz.py` (2,000 mutations per seed file; set
`MUMUR_FUZZ_CASES` for another count, `MUMUR_FUZZ_SEED` for other mutations).
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import PaletteEmbedder, write_index_video
from test_index import _huge_png

from mumur.index import build_index

SRC = Path(__file__).resolve().parents[1] / "src"
TIMEOUT_S = 30.0

# Reads one path per line, answers one JSON line: what the index's reader would see (no torch
# import: the index test below runs the same files through the real reader and preprocessing).
_WORKER = textwrap.dedent("""
    import json, sys
    from mumur.errors import MediaDecodeError
    from mumur.media.decode import probe, read_audio, read_frames
    print("ready", flush=True)
    for line in sys.stdin:
        path = line.rstrip("\\n")
        try:
            frames = read_frames(path, 4)
            [im.resize((32, 32)) for im in frames.frames]  # pixels really there
            probe(path)
            read_audio(path, max_seconds=1.0)
            out = {"outcome": "decoded", "frames": len(frames.frames)}
        except MediaDecodeError as e:
            out = {"outcome": "error", "reason": e.reason}
        except Exception as e:  # a bug: the index would crash on this file
            out = {"outcome": "exception", "reason": f"{type(e).__name__}: {e}"}
        print(json.dumps(out), flush=True)
""")


class _Decoder:
    """A worker process decoding one file at a time, restarted after a crash or a hang."""

    def __init__(self, timeout: float = TIMEOUT_S):
        self.timeout, self.proc = timeout, None

    def _start(self):
        env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        # Imports are not the file's time: on a loaded machine they alone can take a minute.
        ready, _, _ = select.select([self.proc.stdout], [], [], 600)
        assert ready and self.proc.stdout.readline() == "ready\n", "the decode worker did not start"

    def __call__(self, path: Path) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.proc.stdin.write(f"{path}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        if not ready:
            self.proc.kill()
        rc = self.proc.wait()
        self.proc = None
        return {"outcome": "hang" if not ready else "crash", "reason": f"exit status {rc}"}

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


# ---- seed files and fixed hostile cases ------------------------------------------------------
def _claim_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the frame size in every JPEG start-of-frame (SOF0) marker."""
    out, i = bytearray(data), 0
    while (i := out.find(b"\xff\xc0", i)) >= 0:
        out[i + 5:i + 9] = struct.pack(">HH", height, width)
        i += 2
    return bytes(out)


def _write_stream_file(path: Path, *, video_pts=None, audio_seconds: float = 0.0) -> None:
    """An mp4 with a video stream showing frames at `video_pts` (1/30 s units; [] gives a video
    stream with no frames, None no video stream) and/or an AAC tone of `audio_seconds`."""
    import av

    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=30) if video_pts is not None else None
        a = out.add_stream("aac", rate=16000) if audio_seconds else None
        if vs is not None:
            vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        if a is not None:  # every stream is added before the first packet is written
            a.layout = "mono"
        packets = []
        for k, pts in enumerate(video_pts or []):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 8 * k % 256, np.uint8),
                                               format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 30)
            packets += vs.encode(frame)
        if vs is not None:
            packets += vs.encode()
        if a is not None:
            wave = np.sin(np.arange(int(16000 * audio_seconds)) / 5).astype(np.float32)[None]
            for start in range(0, wave.shape[1], 1024):
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(wave[:, start:start + 1024]),
                                                format="flt", layout="mono")
                af.sample_rate, af.pts, af.time_base = 16000, start, Fraction(1, 16000)
                packets += a.encode(af)
            packets += a.encode()
        for packet in packets:
            out.mux(packet)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    from PIL import Image

    d = tmp_path_factory.mktemp("fuzz_seeds")
    write_index_video(d / "seed.mp4", 30, size=(48, 32), gop=8)
    rgb = (np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(d / "seed.jpg", quality=90)
    Image.fromarray(rgb).save(d / "seed.png")
    return {ext: (d / f"seed.{ext}").read_bytes() for ext in ("mp4", "jpg", "png")}


def _fixed_cases(d: Path, seeds) -> dict[str, str | None]:
    """Hostile files written by hand -> the outcome they must have (None: either is fine)."""
    cases: dict[str, str | None] = {}

    def put(name, data, want):
        (d / name).write_bytes(data)
        cases[name] = want

    put("zero.mp4", b"", "error")
    put("zero.jpg", b"", "error")
    _huge_png(d / "bomb.png", 20000, 20000)  # 400 M pixels claimed
    cases["bomb.png"] = "error"
    put("bomb.jpg", _claim_size(seeds["jpg"], 65000, 65000), "error")
    put("mp4_as.jpg", seeds["mp4"], "error")  # wrong extension both ways
    put("jpg_as.mp4", seeds["jpg"], None)  # FFmpeg reads a JPEG as a one-frame video
    put("png_as.mkv", seeds["png"], None)
    put("mp4_as.webm", seeds["mp4"], "decoded")  # the container is probed, not guessed
    _write_stream_file(d / "no_frames.mp4", video_pts=[])
    cases["no_frames.mp4"] = "error"
    _write_stream_file(d / "audio_only.mp4", audio_seconds=1.0)
    cases["audio_only.mp4"] = "error"
    _write_stream_file(d / "vfr.mp4", video_pts=[0, 1, 2, 9, 10, 40, 41, 42, 90, 91],
                       audio_seconds=3.0)
    cases["vfr.mp4"] = "decoded"
    write_index_video(d / "mjpeg.mkv", 6, codec="mjpeg", pix_fmt="yuvj420p")
    put("mjpeg_bomb.mkv", _claim_size((d / "mjpeg.mkv").read_bytes(), 16000, 16000), "error")
    return cases


# ---- seeded mutations ------------------------------------------------------------------------
def _mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = rng.choice(["truncate", "bitflip", "overwrite", "zero_span", "splice"])
    n = len(data)
    if kind == "truncate":
        cut = int(rng.integers(1, n))
        return f"truncate@{cut}", data[:cut]
    out = bytearray(data)
    if kind == "bitflip":
        flips = int(rng.integers(1, 33))
        for pos in rng.integers(0, n, flips):
            out[pos] ^= 1 << int(rng.integers(0, 8))
        return f"bitflip x{flips}", bytes(out)
    start = int(rng.integers(0, n))
    span = int(rng.integers(1, min(256, n - start) + 1))
    if kind == "overwrite":
        out[start:start + span] = rng.integers(0, 256, span, dtype=np.uint8).tobytes()
    elif kind == "zero_span":
        out[start:start + span] = bytes(span)
    else:  # splice: a span moved elsewhere (a reordered or duplicated box/segment)
        dest = int(rng.integers(0, n))
        out[dest:dest] = data[start:start + span]
    return f"{kind}@{start}+{span}", bytes(out)


def _mutations(d: Path, seeds, count: int, seed: int) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    exts = list(seeds)
    made = []
    for i in range(count):
        ext = exts[i % len(exts)]
        what, data = _mutate(seeds[ext], rng)
        name = f"m{i:05d}.{ext}"
        (d / name).write_bytes(data)
        made.append((name, f"{ext} {what}"))
    return made


def _run(paths: list[Path]) -> dict[str, dict]:
    decoder = _Decoder()
    try:
        return {p.name: decoder(p) for p in paths}
    finally:
        decoder.close()


def _bad(outcomes: dict[str, dict]) -> dict[str, dict]:
    return {k: v for k, v in outcomes.items() if v["outcome"] not in ("decoded", "error")}


def test_fixed_hostile_files_decode_or_fail_cleanly(tmp_path, seeds):
    cases = _fixed_cases(tmp_path, seeds)
    outcomes = _run([tmp_path / name for name in cases])
    assert not _bad(outcomes)
    for name, want in cases.items():
        if want is not None:
            assert outcomes[name]["outcome"] == want, (name, outcomes[name])
    assert "too large" in outcomes["bomb.png"]["reason"]
    assert "too large" in outcomes["bomb.jpg"]["reason"]
    assert outcomes["audio_only.mp4"]["reason"] == "no video stream"


def test_seeded_mutations_decode_or_fail_cleanly_and_the_index_skips_them(tmp_path, seeds):
    made = _mutations(tmp_path, seeds, count=40, seed=16)
    outcomes = _run([tmp_path / name for name, _ in made])
    bad = _bad(outcomes)
    assert not bad, {name: (what, bad[name]) for name, what in made if name in bad}
    errors = {name for name, o in outcomes.items() if o["outcome"] == "error"}
    assert errors and len(errors) < len(made)  # the mutations reach both outcomes

    # The index takes the same files: decoded ones are indexed, the rest skipped with a reason.
    report = build_index([tmp_path], tmp_path / "index", embedder=PaletteEmbedder(),
                         num_workers=0, progress=False)
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(skipped) == errors
    assert {Path(p).name for p in report.indexed} == set(outcomes) - errors
    assert all(skipped[name] == outcomes[name]["reason"] for name in errors)


@pytest.mark.slow
def test_long_fuzz_run(tmp_path, seeds):
    count = int(os.environ.get("MUMUR_FUZZ_CASES", "6000"))
    seed = int(os.environ.get("MUMUR_FUZZ_SEED", "1"))
    made = _mutations(tmp_path, seeds, count=count, seed=seed)
    outcomes = _run([tmp_path / name for name, _ in made])
    counts = {k: sum(o["outcome"] == k for o in outcomes.values())
              for k in ("decoded", "error", "exception", "crash", "hang")}
    print(f"fuzzed {count} files (seed {seed}): {json.dumps(counts)}")
    bad = _bad(outcomes)
    assert not bad, {name: (what, bad[name]) for name, what in made if name in bad}


def test_h264_frames_larger_than_the_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    # A real H.264 stream whose declared frame size exceeds the decompression-bomb limit: refused
    # from the stream header, with no frame decoded (the MJPEG case above claims its size).
    from mumur.errors import MediaDecodeError
    from mumur.media import video as video_module
    from mumur.media.decode import read_frames

    path = tmp_path / "wide.mp4"
    write_index_video(path, 2, size=(1920, 1088))
    decoded = []
    original = video_module._video_stream

    def watched(*args, **kwargs):
        stream = original(*args, **kwargs)
        decoded.append(stream)
        return stream

    monkeypatch.setattr(video_module, "_video_stream", watched)
    with pytest.raises(MediaDecodeError, match=r"too large \(1920x1088"):
        read_frames(path, 2, max_pixels=1920 * 1088 - 1)
    assert decoded == []  # refused inside the stream check, before any packet was read
    assert len(read_frames(path, 2, max_pixels=1920 * 1088).frames) == 2  # at the limit: read
