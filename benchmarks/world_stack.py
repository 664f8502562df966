"""Speed of the offline world stack in one run: world generation, frame-feature extraction with the
packaged world-CLIP vision tower, and head training on cached features (CPU by default).

Measured in one process, one after the other, so the figures can be read as ratios:

1. generation: a small synthetic world (`mumur.data.synthetic.generate`: 30 % multi-shot
   videos, 10 % val, 20 % test, one render process), items/s;
2. extraction: every video of the world through `mumur.data.features.extract_frame_features`
   (12 uniform frames, the tower's image size, mean and std, decoding in DataLoader workers) with
   `world-clip`'s `encode`, videos/s and frames/s end to end; the raw rate is `encode` alone on
   ready pixel tensors of the same batch size (before and after the end-to-end run, averaged);
3. head training: the model of the packaged `world` recipe built as `mumur train` builds it
   (`experiment_config` -> `parse_experiment_config` -> `build_model`, encoders frozen as the
   recipe says), then `Trainer.train_step` (`compute_loss` + backward + gradient clipping + AdamW
   + schedule) on batches shaped like `TrainBatches`' own: `frame_features (B, T, Dv)`, `mask
   (B, T)` and per branch `text_<b>_features (B, Dt)` when the text towers are frozen (their
   cached outputs), or the caption strings `text_<b>` when they train (the towers run, and
   backpropagate, every step). The head settings are variants of the ablation study
   (`configs/studies/ablation.json`): meanP, mumur-dcm, mumur-dcm with a 1-layer temporal
   transformer, and mumur-dcm with trainable text towers. Feature values are random (the cost
   does not depend on them); captions are real, drawn from the world's train split as
   `CaptionSampler` draws them (their lengths set the text towers' cost). Each setting times
   up to `--steps` steps, or fewer once `--seconds` have passed, so a slow setting (trainable
   text towers) does not set the length of the run.

    python benchmarks/world_stack.py [--videos 48] [--images 8] [--workers 1] [--batch-size 64]
        [--steps 20] [--seconds 3] [--threads 0]
        [--variants meanP dcm dcm+temporal "dcm fine-tuned text"]

Prints readable lines and, as the last line, one JSON object with the same figures. On a shared
machine every figure is the share of the cores the run got; the ratios within one run are the
figures to compare.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

RECIPE = "world"
STUDY = "ablation"
VARIANTS = ["meanP", "dcm", "dcm+temporal", "dcm fine-tuned text"]
# Settings timed here beside the ablation study's variants: fine-tuning both text towers (left
# out of the study: on this CPU a step costs many times the frozen one).
EXTRA = {"dcm fine-tuned text": {"train": {"freeze_text": False, "backbone_lr": 1e-4}}}


def generate_world(out: Path, videos: int, images: int, seed: int) -> dict:
    """Generate the world with the benchmark's split settings; returns its rate."""
    from mumur.data.synthetic.generate import SynthConfig, generate

    cfg = SynthConfig(videos=videos, images=images, seed=seed, multi_shot=0.3,
                      val_fraction=0.1, test_fraction=0.2)
    report = generate(out, cfg, workers=1, progress=False)
    return {"items": report.items, "videos": report.videos, "images": report.images,
            "seconds": report.seconds, "items_per_s": report.items_per_second}


def world_videos(corpus: Path) -> list[str]:
    """Every video file of the world (all splits)."""
    from mumur.data import load_benchmark

    paths = []
    for split in ("train", "val", "test"):
        ds = load_benchmark("synthetic", corpus, split=split, media_types=["video"])
        paths += [str(ds.media_path(i)) for i in range(len(ds))]
    return paths


def raw_encoder_rate(encoder, frames_per_call: int, calls: int) -> float:
    """Frames/s of `encoder.encode` on ready pixel tensors (after a small warm-up call)."""
    size = encoder.image_size
    pixels = torch.randn(frames_per_call, 3, size, size)  # (n, 3, S, S)
    encoder.encode(pixels[:8])
    start = time.perf_counter()
    for _ in range(calls):
        encoder.encode(pixels)
    return frames_per_call * calls / (time.perf_counter() - start)


def extraction_rate(paths: list[str], encoder, num_frames: int, batch_size: int,
                    workers: int) -> dict:
    """Videos/s and frames/s from files to features through `extract_frame_features`."""
    from mumur.data.features import extract_frame_features

    frames = 0
    start = time.perf_counter()
    for batch in extract_frame_features(paths, encoder.encode, num_frames,
                                        image_size=encoder.image_size, batch_size=batch_size,
                                        num_workers=workers, mean=encoder.image_mean,
                                        std=encoder.image_std, on_error="raise"):
        frames += int(batch.mask.sum())
    seconds = time.perf_counter() - start
    return {"videos": len(paths), "frames": frames, "seconds": seconds,
            "videos_per_s": len(paths) / seconds, "frames_per_s": frames / seconds}


def train_captions(corpus: Path, n: int, seed: int, epoch_unit: str) -> list:
    """`n` training examples (English + other-language caption) of the world's train split, in
    the sampler's epoch order (epochs repeat when the split has fewer than `n` examples)."""
    from mumur.data import load_benchmark
    from mumur.train.data import CaptionSampler

    sampler = CaptionSampler(load_benchmark("synthetic", corpus, split="train"), seed=seed,
                             epoch_unit=epoch_unit)
    examples, epoch = [], 0
    while len(examples) < n:
        examples += sampler.epoch_examples(epoch)
        epoch += 1
    return examples[:n]


class _OneBatch:
    """A `BatchSource` that gives the same batch every step (the trainer's only input here)."""

    def __init__(self, batch: dict):
        self._batch = batch

    def num_batches(self) -> int:
        return 1

    def batch(self, epoch: int, index: int) -> dict:
        return self._batch


def head_batch(model, examples: list, frozen: dict[str, bool]) -> dict:
    """A `TrainBatches`-shaped batch: random cached frame features, and per branch the frozen
    tower's cached outputs (random) or the caption strings (trainable tower)."""
    b, t = len(examples), model.config.num_frames
    batch = {"frame_features": torch.randn(b, t, model.vision.dim),  # (B, T, Dv)
             "mask": torch.ones(b, t, dtype=torch.bool)}  # (B, T)
    for branch in ("en", "ml"):
        slot = f"text_{branch}"
        if frozen[slot]:
            batch[f"{slot}_features"] = torch.randn(b, getattr(model, slot).dim)  # (B, Dt)
        else:
            batch[slot] = [getattr(ex, slot) for ex in examples]
    return batch


def head_step_rate(recipe, corpus: Path, run_dir: Path, batch_size: int, steps: int,
                   warmup: int, seconds: float) -> dict:
    """Time up to `steps` training steps of the recipe's model after `warmup` untimed ones,
    stopping early once `seconds` have passed (after at least 3 timed steps)."""
    from mumur.recipes.offline import experiment_config
    from mumur.train.config import parse_experiment_config
    from mumur.train.experiment import build_model, freeze_encoders
    from mumur.train.runtime import seed_everything
    from mumur.train.trainer import Trainer

    exp = parse_experiment_config(experiment_config(recipe, corpus), source="world_stack")
    cfg = dataclasses.replace(exp.train, batch_size=batch_size, validate=False, progress=False,
                              warmup_steps=0, max_steps=warmup + steps)
    seed_everything(cfg.seed)
    model = build_model(exp.model, cfg)
    frozen = freeze_encoders(model, cfg)
    examples = train_captions(corpus, batch_size, cfg.seed, cfg.epoch_unit)
    batch = head_batch(model, examples, frozen)
    trainer = Trainer(model, _OneBatch(batch), cfg, run_dir)
    for _ in range(warmup):
        trainer.train_step(batch)
    done, start = 0, time.perf_counter()
    while done < steps and (done < 3 or time.perf_counter() - start < seconds):
        record = trainer.train_step(batch)
        done += 1
    elapsed = time.perf_counter() - start
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"head": model.config.head, "temporal": model.config.head_config.temporal,
            "text": "cached" if frozen["text_en"] and frozen["text_ml"] else "trained",
            "batch_size": batch_size, "steps": done, "ms_per_step": 1000 * elapsed / done,
            "pairs_per_s": batch_size * done / elapsed, "trainable_parameters": trainable,
            "final_loss": record["loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="world seed")
    parser.add_argument("--frames", type=int, default=12, help="frames sampled per video")
    parser.add_argument("--extract-batch", type=int, default=16, help="videos per encoder call")
    parser.add_argument("--workers", type=int, default=1, help="decode worker processes")
    parser.add_argument("--variants", nargs="+", default=VARIANTS,
                        help=f"head settings: variants of the {STUDY!r} study")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per head setting")
    parser.add_argument("--seconds", type=float, default=3.0,
                        help="stop a head setting's timing after this long (>= 3 steps)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default, e.g. from OMP_NUM_THREADS)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()

    import mumur
    from mumur.recipes.offline import load_recipe
    from mumur.recipes.study import load_study

    study = load_study(STUDY)
    unknown = sorted(set(args.variants) - set(study.variants) - set(EXTRA))
    if unknown:
        parser.error(f"unknown variants {unknown}; the {STUDY} study has "
                     f"{', '.join(study.variants)}")
    recipe = load_recipe(RECIPE)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "world"
        world = generate_world(corpus, args.videos, args.images, args.seed)
        paths = world_videos(corpus)

        encoder = mumur.load_encoder("world-clip", modality="vision").eval()
        frames_per_call = args.extract_batch * args.frames
        calls = max(1, len(paths) // args.extract_batch)
        raw_before = raw_encoder_rate(encoder, frames_per_call, calls)
        extraction = extraction_rate(paths, encoder, args.frames, args.extract_batch,
                                     args.workers)
        raw_after = raw_encoder_rate(encoder, frames_per_call, calls)
        raw_fps = (raw_before + raw_after) / 2

        heads = {}
        for name in args.variants:
            patch = EXTRA[name] if name in EXTRA else study.variants[name]["patch"]
            variant = recipe.patch(patch)
            heads[name] = head_step_rate(variant, corpus, Path(tmp) / "run", args.batch_size,
                                         args.steps, args.warmup, args.seconds)
    ratio = extraction["frames_per_s"] / raw_fps
    wall = time.perf_counter() - start

    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"torch threads {threads}")
    print(f"world: {world['videos']} videos + {world['images']} images in "
          f"{world['seconds']:.1f} s: {world['items_per_s']:.2f} items/s (1 render process)")
    print(f"extraction: world-clip vision {encoder.image_size} px, {encoder.dim}-d, "
          f"{args.frames} frames/video, {args.extract_batch} videos/call, "
          f"{args.workers} decode worker(s)")
    print(f"  end to end:  {extraction['videos_per_s']:8.2f} videos/s "
          f"{extraction['frames_per_s']:8.1f} frames/s ({extraction['frames']} frames in "
          f"{extraction['seconds']:.1f} s)")
    print(f"  raw encoder:                  {raw_fps:8.1f} frames/s "
          f"(before {raw_before:.1f}, after {raw_after:.1f})")
    print(f"  end to end / raw:             {ratio:8.3f}")
    print(f"head training: recipe {RECIPE!r}, batch {args.batch_size}, Trainer.train_step, "
          f"up to {args.steps} steps or {args.seconds:g} s after {args.warmup} warm-up steps")
    for name, r in heads.items():
        print(f"  {name:20s} {r['head']:9s} temporal={r['temporal']:11s} text {r['text']:6s}: "
              f"{r['ms_per_step']:7.1f} ms/step {r['pairs_per_s']:8.1f} pairs/s "
              f"({r['steps']} steps, {r['trainable_parameters'] / 1e6:.2f} M trainable)")
    print(f"wall time {wall:.0f} s")
    print(json.dumps({
        "benchmark": "world_stack", "recipe": RECIPE, "study": STUDY,
        "cpu": machine, "cores": os.cpu_count(), "torch": torch.__version__,
        "torch_threads": threads, "world": world,
        "extraction": {**extraction, "encoder": "world-clip", "image_size": encoder.image_size,
                       "frames_per_video": args.frames, "videos_per_call": args.extract_batch,
                       "workers": args.workers, "raw_fps": raw_fps, "raw_fps_before": raw_before,
                       "raw_fps_after": raw_after, "end_to_end_over_raw": ratio},
        "heads": heads, "wall_seconds": wall,
    }))


if __name__ == "__main__":
    main()
