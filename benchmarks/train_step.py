"""Training throughput of the `mumur-dcm` head on cached features (CPU by default).

The paper-size head (MuMUR §4.3: 512-d frames / captions / joint space, dropout 0.4) trained on
cached frozen-backbone features: one step = `RetrievalModel.compute_loss` (contextualise, text
projections, DCM attention pooling for every text-video pair of the batch, L = L_E + L_M, eq. 6-10)
+ backward + AdamW. Frame and caption features are random (throughput does not depend on values).

    python benchmarks/train_step.py [--frames 12 16] [--batch-size 32] [--steps 20] [--threads 2]

Prints one line per setting and, as the last line, one JSON object with the same figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from mumur import create_model


def measure(frames: int, batch_size: int, steps: int, warmup: int, temporal: str,
            device: str) -> dict:
    """Time `steps` optimiser steps after `warmup` untimed ones.

    Returns:
        figures of the setting (samples/s, ms/step, parameters, final loss).
    """
    torch.manual_seed(0)
    model = create_model("mumur-dcm", embed_dim=512, frame_dim=512, text_dim_en=512,
                         text_dim_ml=512, num_frames=frames, temporal=temporal).to(device)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = {
        "frame_features": torch.randn(batch_size, frames, 512, device=device),  # (B, T, Dv)
        "mask": torch.ones(batch_size, frames, dtype=torch.bool, device=device),  # (B, T)
        "text_en_features": torch.randn(batch_size, 512, device=device),  # (B, Dt)
        "text_ml_features": torch.randn(batch_size, 512, device=device),  # (B, Dt)
    }

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        out = model.compute_loss(batch)
        out.loss.backward()
        opt.step()
        return float(out.loss.detach())

    for _ in range(warmup):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"frames": frames, "batch_size": batch_size, "temporal": temporal,
            "steps": steps, "ms_per_step": 1000 * seconds / steps,
            "samples_per_s": batch_size * steps / seconds,
            "head_parameters": sum(p.numel() for p in model.parameters()),
            "final_loss": loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[12, 16])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--temporal", nargs="+", default=["none"],
                        help="head temporal options to measure (none, pos, transformer)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    results = []
    for temporal in args.temporal:
        for frames in args.frames:
            r = measure(frames, args.batch_size, args.steps, args.warmup, temporal, args.device)
            results.append(r)
            print(f"mumur-dcm 512-d, temporal={temporal:11s} T={frames:2d} B={r['batch_size']}: "
                  f"{r['samples_per_s']:8.1f} samples/s  {r['ms_per_step']:7.1f} ms/step  "
                  f"({r['head_parameters'] / 1e6:.2f} M head parameters)")
    summary = {"benchmark": "train_step", "device": args.device, "threads": args.threads,
               "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
               "results": results}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
