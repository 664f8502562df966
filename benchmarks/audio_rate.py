"""Audio decode rate and indexing rate with and without CLIP4VLA audio, on one CPU thread.

A synthetic world (`mumur synth`: H.264 + AAC videos of 3 s, 16 kHz mono) is generated into the
work folder on first use. Figures:

* ``decode``: `mumur.data.audio_features.audio_outcome` per file (PyAV decode + resample to 16 kHz
  + log-mel): files per second and seconds of sound per second;
* ``index_visual`` / ``index_audio``: `mumur index` of the same videos with the world-CLIP
  checkpoint (clip-meanpool), without and with an audio tower (`--audio`), into fresh index
  folders: videos per second, decode workers 0 (everything in this process). The tower is a
  CLIP4VLA tower initialised from world-CLIP's vision tower (untrained: the rate does not depend
  on its weights).

Usage: python benchmarks/audio_rate.py [--videos 60] [--work out/bench-audio] [--threads 1]

Prints readable figures and, as the last line, one JSON object with the same figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch


def _world(work: Path, videos: int) -> list[Path]:
    from mumur.data.synthetic.generate import SynthConfig, generate

    folder = work / f"world-{videos}"
    if not (folder / "manifest.json").exists():
        generate(folder, SynthConfig(videos=videos, images=0, seed=4242), workers=1)
    return sorted(folder.rglob("*.mp4"))


def _tower(work: Path) -> Path:
    import mumur
    from mumur.encoders.clip4vla import Clip4VLAAudioEncoder
    from mumur.model.audio import AudioTower

    folder = work / "tower"
    if not (folder / "audio_tower.json").exists():
        vision = mumur.load_encoder("world-clip", modality="vision")
        tower = AudioTower(Clip4VLAAudioEncoder.from_vision(vision, max_chunks=5), vision.dim)
        rng = np.random.default_rng(0)
        tower.set_bank(rng.normal(size=(8, vision.dim)), rng.normal(size=(8, vision.dim)))
        tower.save(folder)
    return folder


def measure(videos: int, work: Path) -> dict:
    from mumur.data.audio_features import audio_outcome
    from mumur.index import build_index

    files = _world(work, videos)
    start = time.perf_counter()
    frames = 0
    outcomes: dict[str, int] = {}
    for path in files:
        logmel, outcome, _ = audio_outcome(path, {"max_chunks": 5})
        frames += logmel.shape[1]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    decode = time.perf_counter() - start
    out = {"videos": len(files), "decode": {
        "files_per_s": round(len(files) / decode, 2),
        "audio_seconds_per_s": round(frames * 0.01 / decode, 1), "outcomes": outcomes}}
    tower = _tower(work)
    for name, audio in (("index_visual", None), ("index_audio", tower)):
        index = work / f"index-{name}"
        shutil.rmtree(index, ignore_errors=True)
        start = time.perf_counter()
        report = build_index(files, index, "world-clip", num_workers=0, progress=False,
                             audio=audio)
        seconds = time.perf_counter() - start
        out[name] = {"videos_per_s": round(len(report.indexed) / seconds, 2),
                     "seconds": round(seconds, 2)}
    out["audio_overhead"] = round(out["index_visual"]["videos_per_s"]
                                  / out["index_audio"]["videos_per_s"], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=60)
    parser.add_argument("--work", type=Path, default=Path("out/bench-audio"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = {"threads": args.threads, **measure(args.videos, args.work)}
    d = figures["decode"]
    print(f"audio decode: {d['files_per_s']} files/s, {d['audio_seconds_per_s']} s of sound/s "
          f"({d['outcomes']})")
    print(f"index without audio: {figures['index_visual']['videos_per_s']} videos/s; with "
          f"audio: {figures['index_audio']['videos_per_s']} videos/s "
          f"(x{figures['audio_overhead']} the time)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
