"""Soak run on loopback: concurrent searches against `mumur serve` while an index run adds and
removes files.

The script writes a small synthetic corpus (solid-colour images with noise), indexes it with the
shipped world stack (`world-clip` + `world-m-clip`, offline), starts `mumur serve` on a free
loopback port in a subprocess, then for `--seconds` (or until `--max-requests`) runs `--clients`
threads each sending `GET /api/search` with a random query while the main thread, in rounds,
adds `--churn` new images, deletes as many old ones and reruns `build_index` on the folder. The
server picks each round's commits up by itself (generation counter).

Measured: requests, errors (any non-200 answer or a failed connection), latency p50/p95/max,
the server's resident memory and open file descriptors at the start and the end (from /proc),
index rounds, items at the end and the integrity check. The run is bounded in time and count.

Usage: python benchmarks/soak.py [--seconds 60] [--clients 4] [--max-requests 20000]
Prints a summary, then one JSON line with the figures (last line). Exit status 1 when any request
failed or the index is not intact.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

QUERIES = ["a red circle", "ein blauer Kreis", "un carré vert", "yellow triangle moving left",
           "un cerchio viola", "oranje vierkant", "a small shape", "赤い丸"]
COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 40), (150, 40, 160),
           (240, 140, 20)]


def write_image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    base = np.array(COLOURS[seed % len(COLOURS)], np.float32)
    pixels = np.clip(base + rng.normal(0, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def server_stats(pid: int) -> dict:
    """Resident memory (MiB) and open file descriptors of a process (Linux /proc)."""
    rss_kib = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
                   .splitlines() if line.startswith("VmRSS:"))
    return {"rss_mib": round(rss_kib / 1024, 1), "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(index: Path, port: int, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "mumur", "serve", "--index", str(index),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mumur serve exited: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5):
                return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("mumur serve did not start within 600 s")


class Clients:
    """`n` threads sending searches until `stop` is set or `max_requests` were sent."""

    def __init__(self, port: int, n: int, max_requests: int, seed: int = 0):
        self.port, self.max_requests = port, max_requests
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(seed + i,), daemon=True)
                         for i in range(n)]

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stop.is_set():
            with self._lock:
                if len(self.latencies_ms) + len(self.errors) >= self.max_requests:
                    return
            q = urllib.parse.urlencode({"q": rng.choice(QUERIES), "k": rng.choice([1, 5, 10])})
            start = time.perf_counter()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/search?{q}",
                                            timeout=60) as reply:
                    json.loads(reply.read())
                    ok = reply.status == 200
                    failure = f"status {reply.status}"
            except (OSError, ValueError) as exc:
                ok, failure = False, f"{type(exc).__name__}: {exc}"
            took = (time.perf_counter() - start) * 1000
            with self._lock:
                (self.latencies_ms.append(took) if ok else self.errors.append(failure))

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def join(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=120)


def soak(seconds: float, clients: int, max_requests: int, n_files: int, churn: int) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from mumur.index import IndexStore, build_index
    from mumur.index.catalogue import default_index_model
    from mumur.index.loading import load_embedder

    with tempfile.TemporaryDirectory(prefix="mumur-soak-") as tmp:
        corpus, index = Path(tmp) / "corpus", Path(tmp) / "index"
        corpus.mkdir()
        for i in range(n_files):
            write_image(corpus / f"img_{i:05d}.png", i)
        chosen, _ = default_index_model()  # offline: the shipped world stack
        embedder = load_embedder(chosen.model, text_model=chosen.text_model)  # loaded once
        build_index([corpus], index, embedder=embedder, num_workers=0, progress=False)

        port = _free_port()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        server = _start_server(index, port, env)
        try:
            # One search first: the engine's matrices are loaded lazily.
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/search?q=red", timeout=120)
            before = server_stats(server.pid)
            load = Clients(port, clients, max_requests)
            start = time.perf_counter()
            load.start()
            rounds, added, removed, next_id = 0, 0, 0, n_files
            while time.perf_counter() - start < seconds and any(t.is_alive()
                                                                for t in load._threads):
                for _ in range(churn):
                    write_image(corpus / f"img_{next_id:05d}.png", next_id)
                    next_id += 1
                old = sorted(corpus.iterdir())[:churn]
                for path in old:
                    path.unlink()
                build_index([corpus], index, embedder=embedder, num_workers=0, progress=False)
                rounds, added, removed = rounds + 1, added + churn, removed + len(old)
                time.sleep(0.5)
            load.join()
            elapsed = time.perf_counter() - start
            after = server_stats(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        store = IndexStore(index)
        items, intact = store.counts()["items"], store.integrity_check() == "ok"
        store.close()
    lat = load.latencies_ms
    return {
        "seconds": round(elapsed, 1), "clients": clients,
        "requests": len(lat) + len(load.errors), "errors": len(load.errors),
        "error_examples": sorted(set(load.errors))[:3],
        "requests_per_s": round((len(lat) + len(load.errors)) / elapsed, 1),
        "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95),
        "max_ms": round(max(lat), 1) if lat else None,
        "rss_mib_start": before["rss_mib"], "rss_mib_end": after["rss_mib"],
        "fds_start": before["fds"], "fds_end": after["fds"],
        "index_rounds": rounds, "files_added": added, "files_removed": removed,
        "items_end": items, "items_expected": n_files + added - removed, "integrity_ok": intact,
        "model": chosen.model,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--files", type=int, default=40, help="corpus size at the start")
    parser.add_argument("--churn", type=int, default=3, help="files added and removed per round")
    args = parser.parse_args()
    r = soak(args.seconds, args.clients, args.max_requests, args.files, args.churn)
    print(f"{r['requests']} requests in {r['seconds']} s from {r['clients']} clients, "
          f"{r['errors']} errors; latency p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms")
    print(f"server RSS {r['rss_mib_start']} -> {r['rss_mib_end']} MiB, open files "
          f"{r['fds_start']} -> {r['fds_end']}; {r['index_rounds']} index rounds "
          f"(+{r['files_added']} / -{r['files_removed']} files), {r['items_end']} items "
          f"(expected {r['items_expected']}), integrity {'ok' if r['integrity_ok'] else 'FAILED'}")
    print(json.dumps(r))
    ok = r["errors"] == 0 and r["integrity_ok"] and r["items_end"] == r["items_expected"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
