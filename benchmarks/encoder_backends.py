"""Fast CPU inference of the towers: fp32, bf16, int8 dynamic quantisation, ONNX Runtime, each
checked against fp32 (worst probe-row cosine >= 0.99), and the one `accelerate("auto")` picks.

Towers: the shipped world-clip (vision and text) and world-m-clip (text), offline; with
`--b32 DIR`, also a ViT-B/32-sized CLIP of the real transformers layout (random weights, built by
benchmarks/cold_search.py's `build_checkpoint` into DIR when missing). Timings are the median of
`--repeats` runs of one probe batch (vision: `--batch` images; text: 8 sentences) on the threads
torch has (run it under `taskset -c 1` with OMP_NUM_THREADS=1 for one core). On a shared machine
these are one-run figures: compare the ratios within a run, not across runs.

Usage: python benchmarks/encoder_backends.py [--b32 /tmp/b32] [--batch 16] [--repeats 5]
Prints a table, then one JSON line (last line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from mumur.encoders import load_encoder
from mumur.encoders.fast import BACKENDS, bf16_supported, choose_backend, probe_inputs


def towers(b32: str | None) -> list[tuple[str, str, str]]:
    out = [("world-clip", "vision", "world-clip"), ("world-clip", "text", "world-clip"),
           ("world-m-clip", "text", "world-m-clip")]
    if b32:
        folder = Path(b32)
        if not (folder / "config.json").exists():
            sys.path.insert(0, str(Path(__file__).parent))
            from cold_search import build_checkpoint

            build_checkpoint(folder, "b32")
        out += [("clip-b32-random", "vision", str(folder)), ("clip-b32-random", "text",
                                                              str(folder))]
    return out


def run(b32: str | None, batch: int, repeats: int) -> dict:
    figures = {"threads": torch.get_num_threads(), "bf16_supported": bf16_supported(),
               "towers": {}}
    for label, modality, source in towers(b32):
        encoder = load_encoder(source, modality).eval()
        example = probe_inputs(encoder, batch=batch) if modality == "vision" else None
        choice, _ = choose_backend(encoder, BACKENDS, repeats=repeats, example=example)
        base = choice.report["fp32"]["seconds"]
        for name, row in choice.report.items():
            if "seconds" in row:
                row["speedup_vs_fp32"] = round(base / row["seconds"], 2)
        figures["towers"][f"{label}/{modality}"] = choice.to_dict()
        cells = "  ".join(
            f"{n} {r['seconds'] * 1e3:7.1f} ms cos {r['cosine']:.4f}{'' if r['passed'] else ' X'}"
            if "seconds" in r else f"{n} failed" for n, r in choice.report.items())
        print(f"{label + '/' + modality:24s} {cells}  -> {choice.backend}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--b32", default=None, help="folder of a ViT-B/32-sized random CLIP")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(run(args.b32, args.batch, args.repeats)))


if __name__ == "__main__":
    main()
