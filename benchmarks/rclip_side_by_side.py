"""Side by side with rclip: indexing the same JPEGs and one cold text search, wall time and peak RSS.

rclip (pip package `rclip`, 3.x) runs ONNX towers through ONNX Runtime; it looks for
`$RCLIP_DATADIR/ViT-B-32-256-datacomp_s34b_b86k/{visual,textual}.onnx` and
`$RCLIP_DATADIR/tokenizer/bpe_simple_vocab_16e6.txt.gz` and downloads them from the Hugging Face
Hub only when they are missing (`rclip/model_download.py`). No weights can be downloaded here, so
this script builds one random-weight `transformers.CLIPModel` of ViT-B/32 shape at 256 px (rclip's
preprocessing hard-codes 256x256; the checkpoint is `benchmarks/cold_search.py`'s builder, size
`b32_256`), saves it as a folder for `mumur index --model`, and exports its two towers to ONNX in
rclip's input/output layout (`input` -> `output`, projected embeddings) into rclip's data folder.
The BPE vocabulary is the one open_clip ships (same file rclip downloads). Both tools therefore run
the same weights on the same number of patches per image; scores are meaningless, costs are not.

rclip is installed with pip into its own virtual environment (`--rclip-venv`, created when missing;
rclip pins its own dependencies and needs no torch), never into mumur's.

Measured, each in a fresh process under a wrapper (`cold_search._WRAPPER`: wall seconds, CPU
seconds, peak RSS of the largest process in the tree, `ru_maxrss` of the children):
  1. indexing N generated JPEGs: `rclip QUERY` in the image folder with an empty data folder (it
     indexes, then answers one query) vs `mumur index IMAGES --index DIR --model CKPT`;
  2. a cold text search on that index: `rclip -n QUERY` vs `mumur search QUERY --index DIR`.
If rclip cannot be made to run, one line says why and mumur's side is still timed.

Usage: taskset -c 1 python benchmarks/rclip_side_by_side.py [--work DIR] [--images 300]
    [--rclip-venv /tmp/rclip-venv] [--query "a red circle"]
Prints each figure and the mumur/rclip ratios, then one JSON object (last line).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold_search import _WRAPPER, _env, build_checkpoint, make_images

RCLIP_MODEL_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"  # rclip.model_download.MODEL_SUBDIR
RCLIP_VOCAB = "tokenizer/bpe_simple_vocab_16e6.txt.gz"  # rclip.model_download.TOKENIZER_VOCAB


def measure(command: list[str], env: dict, cwd: Path | None = None) -> dict:
    """Runs `command` in a fresh process under the rusage wrapper; its figures as a dict."""
    done = subprocess.run([sys.executable, "-c", _WRAPPER, *command], env=env, cwd=cwd,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ensure_rclip(venv: Path) -> Path:
    """The `rclip` executable of `venv`, pip-installing rclip there first if it is missing.

    Raises:
        RuntimeError: the venv could not be created or rclip not installed (pip's last words).
    """
    exe = venv / "bin" / "rclip"
    if exe.is_file():
        return exe
    python = shutil.which("python3") or sys.executable
    for step in ([python, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "pip"), "install", "-q", "rclip"]):
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"`{' '.join(step)}` failed: {tail[0]}")
    return exe


def export_rclip_model(checkpoint: Path, datadir: Path) -> None:
    """rclip's model files from `checkpoint`: ONNX towers (`input` -> `output`) and the BPE vocab.

    Raises:
        RuntimeError: open_clip's BPE vocabulary file is not installed.
    """
    target = datadir / RCLIP_MODEL_SUBDIR
    vocab = datadir / RCLIP_VOCAB
    if (target / "visual.onnx").is_file() and (target / "textual.onnx").is_file() \
            and vocab.is_file():
        return
    import importlib.util
    import warnings

    import torch
    from transformers import CLIPModel

    spec = importlib.util.find_spec("open_clip")
    source = Path(spec.origin).parent / "bpe_simple_vocab_16e6.txt.gz" if spec else None
    if source is None or not source.is_file():
        raise RuntimeError("no BPE vocabulary: open_clip (which ships "
                           "bpe_simple_vocab_16e6.txt.gz) is not installed")
    vocab.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, vocab)

    model = CLIPModel.from_pretrained(checkpoint).eval().requires_grad_(False)

    class Visual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.clip = model  # a submodule, so its weights export as initialisers

        def forward(self, pixels):
            return self.clip.get_image_features(pixel_values=pixels).pooler_output

    class Textual(Visual):
        # rclip feeds 77 ids padded with 0 after the end token; CLIP's causal mask keeps the
        # padding out of the pooled end-token state, so no attention mask is needed.
        def forward(self, ids):
            return self.clip.get_text_features(input_ids=ids).pooler_output

    side = model.config.vision_config.image_size
    target.mkdir(parents=True, exist_ok=True)
    for name, core, example in (("visual.onnx", Visual(), torch.zeros(1, 3, side, side)),
                                ("textual.onnx", Textual(),
                                 torch.zeros(1, 77, dtype=torch.long))):
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(core, (example,), target / name, dynamo=False,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "n"}, "output": {0: "n"}},
                              opset_version=17)


def run_rclip(exe: Path, datadir: Path, images: Path, query: str) -> dict:
    """Indexing (`rclip QUERY` on an empty database) and a cold `rclip -n QUERY`."""
    (datadir / "db.sqlite3").unlink(missing_ok=True)
    env = dict(os.environ, RCLIP_DATADIR=str(datadir), HF_HUB_OFFLINE="1")
    out = {"index": measure([str(exe), "-t", "5", query], env, cwd=images),
           "search": measure([str(exe), "-n", "-t", "5", query], env, cwd=images)}
    for step, r in out.items():
        if r["rc"] or "score\tfilepath" not in r["stdout"]:
            raise RuntimeError(f"rclip {step} failed (rc {r['rc']}): "
                               + (r["stderr"].strip().splitlines() or ["no stderr"])[-1])
    with sqlite3.connect(datadir / "db.sqlite3") as con:
        out["index"]["items"] = con.execute(
            "SELECT count(*) FROM images WHERE deleted IS NULL").fetchone()[0]
    out["index"]["backend"] = "onnxruntime"
    return out


def run_mumur(checkpoint: Path, images: Path, index: Path, query: str, backend: str) -> dict:
    """`mumur index` of `images` into a fresh `index`, then a cold `mumur search`."""
    shutil.rmtree(index, ignore_errors=True)
    mumur = [sys.executable, "-m", "mumur"]
    out = {"index": measure([*mumur, "index", str(images), "--index", str(index),
                             "--model", str(checkpoint), "--backend", backend, "--json"],
                            _env()),
           "search": measure([*mumur, "search", query, "--index", str(index), "--top-k", "5"],
                             _env())}
    for step, r in out.items():
        if r["rc"]:
            raise RuntimeError(f"mumur {step} failed (rc {r['rc']}): {r['stderr'][-300:]}")
    report = json.loads(out["index"]["stdout"].strip().splitlines()[-1])
    out["index"].update(items=report["total"], backend=report["backend"])
    return out


def _line(tool: str, step: str, r: dict) -> str:
    extra = f", {r['items']} items, backend {r['backend']}" if "items" in r else ""
    return (f"{tool:5s} {step:6s}: wall {r['wall_s']:7.2f} s, cpu {r['cpu_s']:7.2f} s, "
            f"peak {r['peak_mb']:6.0f} MB, stderr {r['stderr_bytes']} bytes{extra}")


def _round(value):
    return round(value, 3) if isinstance(value, float) else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="cache folder (default: temp)")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rclip-venv", type=Path, default=Path("/tmp/rclip-venv"))
    parser.add_argument("--query", default="a red circle on the beach")
    parser.add_argument("--mumur-backend", default="auto", help="mumur index --backend")
    args = parser.parse_args()
    cpus_at_start = sorted(os.sched_getaffinity(0))  # `taskset -c 1` has been seen not to hold
    work = args.work or Path(tempfile.mkdtemp(prefix="mumur-rclip-"))
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = build_checkpoint(work / "clip-b32_256", "b32_256")
    images = work / f"images-{args.images}"
    if not images.is_dir():
        make_images(images, args.images, size=(640, 480))

    results: dict[str, dict] = {}
    rclip_error = None
    try:
        exe = ensure_rclip(args.rclip_venv)
        export_rclip_model(checkpoint, work / "rclip-data")
        results["rclip"] = run_rclip(exe, work / "rclip-data", images, args.query)
    except (RuntimeError, OSError) as error:
        rclip_error = "rclip could not run offline: " + " ".join(str(error).split())[:300]
        print(rclip_error)
    results["mumur"] = run_mumur(checkpoint, images, work / "mumur-index", args.query,
                                 args.mumur_backend)

    for tool, steps in results.items():
        for step, r in steps.items():
            print(_line(tool, step, r))
    ratios = {}
    if "rclip" in results:
        for step in ("index", "search"):
            m, r = results["mumur"][step], results["rclip"][step]
            ratios[step] = {"wall": round(m["wall_s"] / r["wall_s"], 3),
                            "cpu": round(m["cpu_s"] / r["cpu_s"], 3),
                            "peak_mb": round(m["peak_mb"] / r["peak_mb"], 3)}
            print(f"mumur/rclip {step:6s}: wall x{ratios[step]['wall']:.2f}, "
                  f"cpu x{ratios[step]['cpu']:.2f}, peak RSS x{ratios[step]['peak_mb']:.2f}")
    keep = ("wall_s", "cpu_s", "peak_mb", "stderr_bytes", "items", "backend")
    print(json.dumps({
        "images": args.images, "image_size": [640, 480], "model": "random ViT-B/32 @256",
        "cpus_at_start": cpus_at_start, "cpus_at_end": sorted(os.sched_getaffinity(0)),
        "query": args.query,
        **{tool: {step: {k: _round(r[k]) for k in keep if k in r} for step, r in steps.items()}
           for tool, steps in results.items()},
        "ratio_mumur_over_rclip": ratios, "rclip_error": rclip_error,
    }))


if __name__ == "__main__":
    main()
