"""Feature-job throughput: the local engine against the Ray engine with 1 and 2 encoder actors.

Runs `mumur.data.feature_job.run_feature_job` on generated H.264 .mp4 files (the same generator
as encode_throughput.py) with the shipped `world-clip` vision tower (or --model), three ways,
each into a fresh feature store:

- local: DataLoader decode workers (--workers) overlapped with the encoder in this process;
- ray-1 / ray-2: a local Ray cluster (`ray.init(num_cpus=--cpus)`), decode in Ray Data tasks,
  an actor pool of 1 or 2 CPU encoder actors.

A rate is files per second over the whole job, including starting the actors (a real job pays it
once; on a tiny corpus it dominates) but not `ray.init`. `scaling` is rate(ray-2) / (2 x
rate(ray-1)): 1.0 is linear. The figures depend on how many cores the process may use: under
`taskset -c 1` (one core) two actors share it and cannot scale, which is what this box allows.

Usage: python benchmarks/ray_features.py [--videos 32] [--frames 8] [--cpus 2] [--workers 1]

Prints readable figures and, as the last line, one JSON object with the same figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from encode_throughput import make_videos


def run(items, encoder, root: Path, frames: int, batch_size: int, **options) -> tuple[float, int]:
    from mumur.data.feature_job import run_feature_job

    start = time.perf_counter()
    report = run_feature_job(items, encoder, root, frames, batch_size=batch_size,
                             progress=False, **options)
    seconds = time.perf_counter() - start
    if report.computed != len(items):
        raise RuntimeError(f"{report.computed} of {len(items)} files encoded: {report.errors}")
    return seconds, report.computed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=32)
    ap.add_argument("--frames", type=int, default=8, help="frames sampled per video")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each generated video")
    ap.add_argument("--model", default="world-clip", help="vision encoder (name, folder, hub id)")
    ap.add_argument("--batch-size", type=int, default=4, help="videos per encoder call")
    ap.add_argument("--workers", type=int, default=1, help="local engine: decode processes")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = ap.parse_args()

    import ray
    import torch

    from mumur.data.feature_job import frame_encode_fn, resolve_frame_encoder
    from mumur.data.ray_engine import RayFrameExtractor

    torch.set_num_threads(1)
    encoder = resolve_frame_encoder(args.model, "cpu")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_videos(folder, args.videos, args.seconds, 10, (160, 120))
        items = [(p, p) for p in paths]
        seconds, n = run(items, encoder, folder / "local", args.frames, args.batch_size,
                         num_workers=args.workers)
        rates["local"] = {"seconds": round(seconds, 2), "files_per_s": round(n / seconds, 3)}
        print(f"local engine ({args.workers} decode worker): {n / seconds:.2f} files/s")
        os.environ.setdefault("RAY_worker_niceness", str(os.nice(0)))
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - start
        for actors in (1, 2):
            extract = RayFrameExtractor(functools.partial(frame_encode_fn, args.model),
                                        actors=actors)
            seconds, n = run(items, encoder, folder / f"ray{actors}", args.frames,
                             args.batch_size, extract=extract)
            rates[f"ray-{actors}"] = {"seconds": round(seconds, 2),
                                      "files_per_s": round(n / seconds, 3)}
            print(f"ray engine, {actors} actor(s): {n / seconds:.2f} files/s")
        ray.shutdown()
    scaling = rates["ray-2"]["files_per_s"] / (2 * rates["ray-1"]["files_per_s"])
    print(f"scaling 1 -> 2 actors: {scaling:.2f} of linear; ray.init took {init_s:.1f} s")
    print(json.dumps({
        "benchmark": "ray_features", "model": args.model, "videos": args.videos,
        "frames": args.frames, "batch_size": args.batch_size, "ray_cpus": args.cpus,
        "usable_cores": len(os.sched_getaffinity(0)), "cpu": platform.processor() or
        platform.machine(), "ray_init_s": round(init_s, 2), **rates,
        "scaling_1_to_2_actors": round(scaling, 3),
        "ray_2_over_local": round(rates["ray-2"]["files_per_s"] / rates["local"]["files_per_s"],
                                  3),
    }))


if __name__ == "__main__":
    main()
