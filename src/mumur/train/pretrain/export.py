"""CLIP folders out of a pretraining run: `save_clip_folder` (what `best/` and `model/` hold),
`export_clip_folder` (the shipped fp16 copy) and `run_summary` (how the run went, for the model
card)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ...fsutil import atomic_write_text

__all__ = ["TRAINING_SUMMARY", "export_clip_folder", "run_summary", "save_clip_folder"]

#: Written beside exported weights: how the run went (for the model card).
TRAINING_SUMMARY = "training_summary.json"


def save_clip_folder(clip: nn.Module, tokenizer, path, dtype: torch.dtype | None = None) -> Path:
    """Write an ordinary CLIP folder: config.json, model.safetensors, tokenizer files and
    preprocessor_config.json (resize shorter side + centre crop to the model's input size).

    Args:
        clip: a `transformers.CLIPModel`.
        tokenizer: its tokenizer.
        path: target folder.
        dtype: storage dtype (e.g. `torch.float16`); the model itself is not changed.
    """
    import copy

    from transformers import CLIPImageProcessor

    from ...media.transforms import CLIP_MEAN, CLIP_STD

    folder = Path(path)
    model = copy.deepcopy(clip).to(dtype) if dtype is not None else clip
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    size = clip.config.vision_config.image_size
    CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                       image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD)).save_pretrained(folder)
    return folder


def export_clip_folder(run_folder, dest, dtype: torch.dtype = torch.float16) -> Path:
    """Copy a run's CLIP folder (`best/` or `model/`) to `dest` with fp16 weights.

    Args:
        run_folder: a CLIP folder written by the pretrainer.
        dest: target folder (its old model files are replaced; other files such as the model
            card are kept).
        dtype: storage dtype.
    """
    from transformers import CLIPModel

    from ...encoders.text import load_tokenizer

    clip = CLIPModel.from_pretrained(run_folder).float()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    save_clip_folder(clip, load_tokenizer(str(run_folder)), dest, dtype=dtype)
    summary = run_summary(Path(run_folder).parent)
    summary["exported_from"] = Path(run_folder).name
    atomic_write_text(dest / TRAINING_SUMMARY, json.dumps(summary, indent=2) + "\n")
    return dest



def run_summary(run) -> dict:
    """Steps, wall time and validation history of a pretraining run folder.

    Returns:
        `{"recipe", "steps", "train_seconds", "validations": [...], "best_step", ...}`.
    """
    run = Path(run)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
    vals = [json.loads(x) for x in (run / "val.jsonl").read_text().splitlines() if x.strip()] \
        if (run / "val.jsonl").is_file() else []
    best = [v for v in vals if v.get("best")]
    recipe = json.loads((run / "recipe.json").read_text()) if (run / "recipe.json").is_file() \
        else None
    return {"recipe": recipe, "steps": log[-1]["step"] if log else 0,
            "train_seconds": log[-1]["seconds"] if log else 0.0,
            "final_loss": log[-1]["loss"] if log else None,
            "best_step": best[-1]["step"] if best else None,
            "validations": [{"step": v["step"], **v["metrics"]} for v in vals]}

