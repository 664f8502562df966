"""Cold CLI search: wall time, peak memory and stderr noise of one `mumur search` process.

Builds (once, under --work) a random-weight CLIP checkpoint of the real layout (transformers
`CLIPModel` saved with `save_pretrained`; `--size b32` is ViT-B/32's shapes, `tiny` the test
fixture's), ~30 generated images (coloured shapes on plain backgrounds), and an index of them
with that checkpoint as `--model`. Then runs `python -m mumur search QUERY --index DIR` in a fresh
process `--runs` times, each under its own wrapper process so that
`resource.getrusage(RUSAGE_CHILDREN)` is that search's alone (peak RSS, CPU seconds). CPU time is
reported next to wall time because wall time is meaningless on a loaded machine.
`--src` runs the search with another mumur source tree (e.g. `git archive main src | tar -x -C
/tmp/before` for a before/after comparison on the same index).

With `--importtime`, one more search runs under `python -X importtime` and the import time is
summed per top-level package (self time of every module, so nothing counts twice): where a cold
search's start-up goes.

Usage: python benchmarks/cold_search.py [--work DIR] [--size b32|tiny] [--images 30] [--runs 3]
    [--src DIR] [--importtime]
Prints one line per run, then one JSON object (last line): median wall and CPU seconds, peak RSS
MB, bytes written to stderr (and `import_s` per package with `--importtime`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = {
    "b32": {"text": {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
                     "num_attention_heads": 8},
            "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                       "num_attention_heads": 12, "image_size": 224, "patch_size": 32},
            "projection_dim": 512},
    "tiny": {"text": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                      "num_attention_heads": 4},
             "vision": {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "image_size": 30, "patch_size": 2},
             "projection_dim": 16},
}
# ViT-B/32 at 256 px, the shape of rclip 3.x's model (ViT-B-32-256): rclip_side_by_side.py.
SIZES["b32_256"] = {**SIZES["b32"], "vision": {**SIZES["b32"]["vision"], "image_size": 256}}

# Runs one command and reports its wall time and the peak RSS of it alone (this wrapper's only
# child), so each measurement is of a cold process.
_WRAPPER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], capture_output=True)
wall = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": done.returncode, "wall_s": wall, "peak_mb": usage.ru_maxrss / 1024,
                  "cpu_s": usage.ru_utime + usage.ru_stime,
                  "stderr_bytes": len(done.stderr), "stderr": done.stderr.decode()[-400:],
                  "stdout": done.stdout.decode()[-400:]}))
"""


def build_checkpoint(folder: Path, size: str) -> Path:
    """A random CLIPModel of `size`'s shapes with the OpenAI tokenizer and CLIP preprocessing."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from mumur.encoders import build_clip_tokenizer

    shapes = SIZES[size]
    side = shapes["vision"]["image_size"]
    config = CLIPConfig(
        text_config={**shapes["text"], "vocab_size": 49408, "max_position_embeddings": 77,
                     "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407},
        vision_config=shapes["vision"], projection_dim=shapes["projection_dim"])
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    build_clip_tokenizer(folder)
    CLIPImageProcessor(size={"shortest_edge": side},
                       crop_size={"height": side, "width": side}).save_pretrained(folder)
    return folder


def make_images(folder: Path, n: int, size: tuple[int, int] = (320, 240)) -> Path:
    """`n` JPEGs (`size`, default 320x240) of a coloured shape on a plain background."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]
    for i in range(n):
        image = Image.new("RGB", size, ["skyblue", "forestgreen", "snow", "navy"][i % 4])
        draw = ImageDraw.Draw(image)
        box = (40 + 7 * i % 120, 30 + 5 * i % 80, 160 + 7 * i % 120, 150 + 5 * i % 80)
        (draw.ellipse if i % 2 else draw.rectangle)(box, fill=colours[i % len(colours)])
        draw.text((4, 4), f"{i}", fill="grey")  # every file distinct (no hash de-duplication)
        image.save(folder / f"img_{i:03d}.jpg", quality=90)
    return folder


def _env(src: Path | None = None) -> dict:
    src = str(src or Path(__file__).resolve().parent.parent / "src")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS",
                                                                             "1"))
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def build_index(work: Path, size: str, n_images: int) -> Path:
    checkpoint = build_checkpoint(work / f"clip-{size}", size)
    images = make_images(work / "images", n_images)
    index = work / f"index-{size}"
    subprocess.run([sys.executable, "-m", "mumur", "index", str(images), "--index", str(index),
                    "--model", str(checkpoint)], check=True, env=_env(), capture_output=True)
    return index


def time_search(index: Path, query: str, runs: int, src: Path | None = None) -> list[dict]:
    command = [sys.executable, "-m", "mumur", "search", query, "--index", str(index),
               "--top-k", "5"]
    out = []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", _WRAPPER, *command], env=_env(src),
                              capture_output=True, text=True, check=True)
        out.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return out


def import_profile(index: Path, query: str, src: Path | None = None) -> dict[str, float]:
    """Seconds of import self-time per top-level package of one cold `mumur search`."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "mumur", "search", query,
                           "--index", str(index), "--top-k", "5"], env=_env(src),
                          capture_output=True, text=True, check=True)
    totals: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, _, name = line[len("import time:"):].split("|")
        package = name.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(own) / 1e6
    top = sorted(totals.items(), key=lambda kv: -kv[1])
    return {"total": round(sum(totals.values()), 3),
            **{name: round(sec, 3) for name, sec in top[:12]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="cache folder (default: temp)")
    parser.add_argument("--size", choices=sorted(SIZES), default="b32")
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--query", default="a red circle on the beach")
    parser.add_argument("--src", type=Path, default=None, help="mumur source tree to search with")
    parser.add_argument("--importtime", action="store_true",
                        help="also profile the imports of one cold search")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mumur-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    index = build_index(work, args.size, args.images)
    runs = time_search(index, args.query, args.runs, args.src)
    for r in runs:
        print(f"rc={r['rc']} wall {r['wall_s']:.2f} s, cpu {r['cpu_s']:.2f} s, "
              f"peak {r['peak_mb']:.0f} MB, "
              f"stderr {r['stderr_bytes']} bytes")
    if any(r["rc"] for r in runs):
        print(runs[-1]["stderr"], file=sys.stderr)
    imports = import_profile(index, args.query, args.src) if args.importtime else None
    if imports:
        print("import self-time per package (s): " + ", ".join(
            f"{name} {sec:.2f}" for name, sec in imports.items()))
    print(json.dumps({
        "size": args.size, "images": args.images, "runs": args.runs,
        "src": str(args.src or "this checkout"),
        "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 3),
        "cpu_s_median": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "peak_mb_max": round(max(r["peak_mb"] for r in runs), 1),
        "stderr_bytes_max": max(r["stderr_bytes"] for r in runs),
        "ok": not any(r["rc"] for r in runs),
        **({"import_s": imports} if imports else {}),
    }))


if __name__ == "__main__":
    main()
