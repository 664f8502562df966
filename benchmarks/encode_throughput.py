"""Frame-encoding throughput: raw ViT-B/32 encoder vs end to end from .mp4 files to features.

The raw rate is the visual encoder alone on ready pixel tensors (eval, no_grad, float32). The
end-to-end rate runs `mumur.data.features.extract_frame_features` on generated H.264 .mp4 files:
seek-based decoding and CLIP preprocessing in DataLoader worker processes, overlapped with the
same encoder in the main process. The encoder is `CLIPVisionModelWithProjection(CLIPVisionConfig())`
(the default config is ViT-B/32: 12 layers, width 768, patch 32, 224 px; random weights, so the
FLOPs equal CLIP ViT-B/32's). Raw rates are measured before and after the end-to-end runs and
averaged, since the machine may be shared.

Usage: python benchmarks/encode_throughput.py [--videos 48] [--frames 12] [--workers 1]

Prints readable figures and, as the last line, one JSON object with the same figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch


def make_videos(folder: Path, n: int, seconds: float, fps: int, size: tuple[int, int]) -> list:
    """Write `n` H.264 .mp4 files with moving gradient content (not trivially compressible)."""
    import av

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    paths = []
    rng = np.random.default_rng(0)
    for v in range(n):
        path = folder / f"video_{v:03d}.mp4"
        base = rng.integers(0, 255, 3)
        with av.open(str(path), mode="w") as out:
            stream = out.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.gop_size = fps  # one keyframe per second, as typical web video
            for i in range(int(seconds * fps)):
                img = np.stack([(xx * 2 + i * 4 + base[0]) % 256, (yy * 3 + i * 2 + base[1]) % 256,
                                ((xx + yy) + i * 6 + base[2]) % 256], axis=-1).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
        paths.append(str(path))
    return paths


def build_encoder():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig()).eval()

    def encode_frames(pixels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(pixel_values=pixels).image_embeds  # (n, 512)

    return model, encode_frames


def raw_rate(encode_frames, frames_per_call: int, calls: int, image_size: int = 224) -> float:
    """Frames/s of the encoder alone on random pixel tensors (after one warm-up call)."""
    pixels = torch.randn(frames_per_call, 3, image_size, image_size)  # (n, 3, S, S)
    encode_frames(pixels)
    start = time.perf_counter()
    for _ in range(calls):
        encode_frames(pixels)
    return frames_per_call * calls / (time.perf_counter() - start)


def end_to_end_rate(paths, encode_frames, num_frames: int, batch_size: int, workers: int,
                    decode_options: dict) -> tuple[float, int]:
    """Frames/s from files to features through `extract_frame_features`."""
    from mumur.data.features import extract_frame_features

    n_frames = 0
    start = time.perf_counter()
    for batch in extract_frame_features(paths, encode_frames, num_frames, batch_size=batch_size,
                                        num_workers=workers, decode_options=decode_options):
        if batch.errors:
            raise RuntimeError(f"decode errors: {batch.errors}")
        n_frames += int(batch.mask.sum())
    return n_frames / (time.perf_counter() - start), n_frames


def decode_only_rate(paths, num_frames: int, decode_options: dict) -> float:
    """Frames/s of decoding + preprocessing alone, in this process (the reader's cost)."""
    from mumur.media.decode import read_frames
    from mumur.media.transforms import ClipPreprocess

    pre = ClipPreprocess(224)
    start = time.perf_counter()
    n = 0
    for p in paths:
        n += pre(read_frames(p, num_frames, **decode_options).frames).shape[0]
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=48)
    ap.add_argument("--frames", type=int, default=12, help="frames sampled per video")
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each generated video")
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--height", type=int, default=240)
    ap.add_argument("--batch-size", type=int, default=4, help="videos per encoder call")
    ap.add_argument("--workers", type=int, default=1, help="decode worker processes")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads for the encoder (0: all cores)")
    ap.add_argument("--resize-in-decoder", action="store_true",
                    help="downscale frames in swscale to 224 px shorter side before PIL")
    args = ap.parse_args()

    cores = os.cpu_count() or 1
    threads = args.threads or cores
    torch.set_num_threads(threads)
    decode_options = {"resize_shorter": 224} if args.resize_in_decoder else {}
    frames_per_call = args.batch_size * args.frames
    calls = max(1, args.videos // args.batch_size)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        paths = make_videos(Path(tmp), args.videos, args.seconds, 24, (args.width, args.height))
        gen_s = time.perf_counter() - t0
        _, encode_frames = build_encoder()

        decode_fps = decode_only_rate(paths[:8], args.frames, decode_options)
        raw_before = raw_rate(encode_frames, frames_per_call, calls)
        e2e_fps, n_frames = end_to_end_rate(paths, encode_frames, args.frames, args.batch_size,
                                            args.workers, decode_options)
        raw_after = raw_rate(encode_frames, frames_per_call, calls)
    raw_fps = (raw_before + raw_after) / 2
    ratio = e2e_fps / raw_fps

    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores, "
          f"torch {torch.__version__}, torch threads {threads}")
    print(f"encoder: ViT-B/32 (CLIPVisionModelWithProjection, default config), float32, "
          f"{frames_per_call} frames per call")
    print(f"data: {args.videos} H.264 mp4 {args.width}x{args.height}, {args.seconds:g} s @ 24 fps "
          f"(generated in {gen_s:.1f} s), {args.frames} frames each -> {n_frames} frames")
    print(f"decode+preprocess alone (1 process):  {decode_fps:8.1f} frames/s")
    print(f"raw encoder:                          {raw_fps:8.1f} frames/s "
          f"(before {raw_before:.1f}, after {raw_after:.1f})")
    print(f"end to end, {args.workers} decode worker(s):     {e2e_fps:8.1f} frames/s")
    print(f"end-to-end / raw:                     {ratio:8.3f} (target >= 0.9)")
    print(json.dumps({
        "benchmark": "encode_throughput", "encoder": "vit-b/32", "cores": cores,
        "torch_threads": threads, "workers": args.workers, "videos": args.videos,
        "frames_per_video": args.frames, "video_size": [args.width, args.height],
        "frames_per_call": frames_per_call, "resize_in_decoder": args.resize_in_decoder,
        "decode_fps": round(decode_fps, 2), "raw_fps": round(raw_fps, 2),
        "raw_fps_before": round(raw_before, 2), "raw_fps_after": round(raw_after, 2),
        "end_to_end_fps": round(e2e_fps, 2), "ratio": round(ratio, 4),
    }))


if __name__ == "__main__":
    main()
