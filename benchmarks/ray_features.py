"""Feature-job throughput: the local engine against the Ray engine with 1 and 2 encoder actors.

Runs `mumur.data.feature_job.run_feature_job` on generated H.264 .mp4 files (the same generator
as encode_throughput.py) with the shipped `world-clip` vision tower (or --model), three ways,
each into a fresh feature store:

- local: DataLoader decode workers (--workers) overlapped with the encoder in this process;
- ray-1 / ray-2: a local Ray cluster (`ray.init(num_cpus=--cpus)`), decode in Ray Data tasks,
  an actor pool of 1 or 2 CPU encoder actors.

Two rates per engine: `files_per_s` over the whole job, including starting decode workers and
actors (a real job pays that once; on a small corpus it dominates) but not `ray.init`, and
`steady_files_per_s` from the first batch delivered to the last (the rate a long job tends to;
on a corpus this small Ray's decode tasks have already decoded much of it while the actors were
starting, so the Ray steady rate is then mostly encoding and overstates a long job's rate).
`scaling` is steady rate(ray-2) / (2 x steady rate(ray-1)): 1.0 is linear. The figures depend on how many cores the process may use: under
`taskset -c 1` (one core) two actors share it and cannot scale, which is what this box allows.

Usage: cd benchmarks && python ray_features.py [--videos 24] [--frames 8] [--cpus 2] [--workers 1]

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


class Timed:
    """Wraps an engine (`extract_frame_features` or a `RayFrameExtractor`) and records when each
    batch reaches the writer."""

    def __init__(self, extract):
        self.extract, self.arrivals = extract, []

    def __call__(self, *args, **kwargs):
        for batch in self.extract(*args, **kwargs):
            self.arrivals.append((time.perf_counter(), len(batch.paths)))
            yield batch


def run(items, encoder, root: Path, frames: int, batch_size: int, extract,
        **options) -> dict:
    from mumur.data.feature_job import run_feature_job

    timed = Timed(extract)
    start = time.perf_counter()
    report = run_feature_job(items, encoder, root, frames, batch_size=batch_size,
                             progress=False, extract=timed, **options)
    seconds = time.perf_counter() - start
    if report.computed != len(items):
        raise RuntimeError(f"{report.computed} of {len(items)} files encoded: {report.errors}")
    (first, _), (last, _) = timed.arrivals[0], timed.arrivals[-1]
    after_first = sum(n for _, n in timed.arrivals[1:])
    return {"seconds": round(seconds, 2), "files_per_s": round(len(items) / seconds, 3),
            "first_batch_s": round(first - start, 2),
            "steady_files_per_s": round(after_first / max(last - first, 1e-9), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--frames", type=int, default=8, help="frames sampled per video")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each generated video")
    ap.add_argument("--model", default="world-clip", help="vision encoder (name, folder, hub id)")
    ap.add_argument("--batch-size", type=int, default=2, help="videos per encoder call")
    ap.add_argument("--workers", type=int, default=1, help="local engine: decode processes")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = ap.parse_args()

    import ray
    import torch

    from mumur.data.feature_job import frame_encode_fn, resolve_frame_encoder
    from mumur.data.features import extract_frame_features
    from mumur.data.ray_engine import RayFrameExtractor

    torch.set_num_threads(1)
    encoder = resolve_frame_encoder(args.model, "cpu")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_videos(folder, args.videos, args.seconds, 10, (160, 120))
        items = [(p, p) for p in paths]
        rates["local"] = run(items, encoder, folder / "local", args.frames, args.batch_size,
                             extract_frame_features, num_workers=args.workers)
        print(f"local engine ({args.workers} decode worker): {rates['local']}")
        os.environ.setdefault("RAY_worker_niceness", "0")  # an increment (Ray: 15)
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - start
        for actors in (1, 2):
            extract = RayFrameExtractor(functools.partial(frame_encode_fn, args.model),
                                        actors=actors)
            rates[f"ray-{actors}"] = run(items, encoder, folder / f"ray{actors}", args.frames,
                                         args.batch_size, extract)
            print(f"ray engine, {actors} actor(s): {rates[f'ray-{actors}']}")
        ray.shutdown()
    steady = {k: v["steady_files_per_s"] for k, v in rates.items()}
    scaling = steady["ray-2"] / (2 * steady["ray-1"])
    print(f"scaling 1 -> 2 actors: {scaling:.2f} of linear; ray.init took {init_s:.1f} s")
    print(json.dumps({
        "benchmark": "ray_features", "model": args.model, "videos": args.videos,
        "frames": args.frames, "batch_size": args.batch_size, "ray_cpus": args.cpus,
        "usable_cores": len(os.sched_getaffinity(0)), "cpu": platform.processor() or
        platform.machine(), "ray_init_s": round(init_s, 2), **rates,
        "scaling_1_to_2_actors": round(scaling, 3),
        "steady_ray_2_over_local": round(steady["ray-2"] / steady["local"], 3),
    }))


if __name__ == "__main__":
    main()
