"""Peak memory and time of evaluating a `mumur-dcm` head on a large random gallery (CPU).

The paper-size head (512-d frames, captions and joint space) with no encoders scores random
feature inputs: a gallery of `--items` items x `--frames` frames of 512-d frame features and
`--captions` random L2-normalised caption embeddings (what the head's text projection outputs),
`--captions / --items` captions per item. Evaluation is `mumur.eval.runner.evaluate_embeddings`:
t2v and v2t (caption protocol) from (caption block x item block) score blocks, each computed once.
Peak memory is the process's resident-set high-water mark (`resource.getrusage`), so it includes
the interpreter, torch, the features and the contextualised gallery.

    python benchmarks/eval_memory.py [--items 10000] [--frames 12] [--captions 20000]
        [--caption-block 256] [--item-block 256] [--threads 2]

Prints the figures readably and, as the last line, one JSON object with the same figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np
import torch
import torch.nn.functional as F

from mumur import create_model
from mumur.eval.metrics import DEFAULT_CHUNK, DEFAULT_ITEM_BLOCK
from mumur.eval.runner import evaluate_embeddings, media_states

TARGET_MIB = 2048


def peak_rss_mib() -> float:
    """Resident-set high-water mark of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(items: int, frames: int, captions: int, dim: int, caption_block: int,
            item_block: int, seed: int) -> dict:
    """Build the gallery, evaluate it once, and return the figures."""
    torch.manual_seed(seed)
    model = create_model("mumur-dcm", embed_dim=dim, frame_dim=dim, text_dim_en=dim,
                         text_dim_ml=dim, num_frames=frames).eval()
    start = time.perf_counter()
    features = torch.randn(items, frames, dim)  # (B, T, Dv) raw frame features
    mask = torch.ones(items, frames, dtype=torch.bool)  # (B, T)
    states = media_states(model, features, mask)  # (B, T, d) contextualised frames
    del features
    text_emb = F.normalize(torch.randn(captions, dim), dim=-1)  # (N, d)
    caption_item = np.random.default_rng(seed).permutation(np.arange(captions) % items)
    setup_seconds = time.perf_counter() - start
    setup_peak = peak_rss_mib()
    start = time.perf_counter()
    result = evaluate_embeddings(model, text_emb, caption_item, states, "en",
                                 caption_block=caption_block, item_block=item_block)
    seconds = time.perf_counter() - start
    peak = peak_rss_mib()
    return {"items": items, "frames": frames, "captions": captions, "dim": dim,
            "caption_block": caption_block, "item_block": item_block,
            "threads": torch.get_num_threads(), "setup_seconds": round(setup_seconds, 2),
            "eval_seconds": round(seconds, 2), "setup_peak_rss_mib": round(setup_peak, 1),
            "peak_rss_mib": round(peak, 1), "target_mib": TARGET_MIB,
            "meets_target": peak < TARGET_MIB,
            "pairs_per_s": round(captions * items / seconds),
            "t2v_R1": result["t2v"]["R1"], "v2t_R1": result["v2t"]["R1"],
            "torch": torch.__version__, "machine": platform.machine()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--captions", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--caption-block", type=int, default=DEFAULT_CHUNK)
    parser.add_argument("--item-block", type=int, default=DEFAULT_ITEM_BLOCK)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    figures = measure(args.items, args.frames, args.captions, args.dim, args.caption_block,
                      args.item_block, args.seed)
    print(f"mumur-dcm eval: {figures['items']} items x {figures['frames']} frames, "
          f"{figures['captions']} captions, d={figures['dim']}, blocks "
          f"{figures['caption_block']} x {figures['item_block']}, {figures['threads']} threads")
    print(f"  setup {figures['setup_seconds']:.1f} s, eval {figures['eval_seconds']:.1f} s "
          f"({figures['pairs_per_s']:,} pairs/s)")
    print(f"  peak RSS {figures['peak_rss_mib']:.0f} MiB (after setup "
          f"{figures['setup_peak_rss_mib']:.0f} MiB); target < {TARGET_MIB} MiB: "
          f"{'met' if figures['meets_target'] else 'NOT met'}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
