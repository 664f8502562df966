"""`mumur audio study`: CLIP4VLA audio towers trained on a synthetic world with several seeds,
scored on independent test worlds with and without the audio term (seed paper, section 3.3).

A study (`mumur/configs/clip4vla/<name>.json`) names the frozen towers (``vision``: a CLIP
checkpoint, world-CLIP offline; ``text_ml``: its multilingual student), the audio spectrogram
settings (``audio``: `AUDIO_DEFAULTS` overrides), ``train_world`` and ``test_worlds`` (as
`mumur.recipes.study`: generated on first use, a world per seed, the train world's own test split
joins the galleries), training ``seeds``, the ``train`` settings (`AudioTrainConfig`) and
``variants``: name -> ``AudioTrainConfig`` overrides. Every (variant, seed) writes its tower and
``outcomes.npz`` under ``out/runs/``; a rerun reuses finished runs with the same settings, and the
figures are recomputed from the stored outcomes (`clip4vla_report.summarize_audio_study`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from rich.console import Console

from ..config import config_from_dict, load_packaged_config
from ..errors import ConfigError
from ..fsutil import atomic_path, atomic_write_json
from .offline import load_recipe
from .study import StudyConfig, run_folder, study_worlds

__all__ = ["AudioStudy", "audio_study_runs", "load_audio_study", "run_audio_study",
           "train_one_tower"]


@dataclass(frozen=True)
class AudioStudy:
    """An audio study (module docstring)."""

    train_world: dict
    test_worlds: dict
    vision: str = "world-clip"
    text_ml: str | None = "world-m-clip"
    num_frames: int = 12
    audio: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    train: dict = field(default_factory=dict)
    variants: dict[str, dict] = field(default_factory=lambda: {"clip4vla": {}})
    default: str | None = None
    name: str = "audio"

    def __post_init__(self):
        if not self.seeds or not self.variants:
            raise ConfigError(f"audio study {self.name}: needs seeds and variants")
        for variant, patch in self.variants.items():
            self.train_config(variant)  # unknown keys fail here, before any work
            if not isinstance(patch, dict):
                raise ConfigError(f"audio study variant {variant!r}: expected an object")
        if self.default is not None and self.default not in self.variants:
            raise ConfigError(f"audio study: default {self.default!r} is not a variant")

    def train_config(self, variant: str):
        """The `AudioTrainConfig` of `variant` (study ``train`` + the variant's overrides)."""
        from ..train.clip4vla.run import AudioTrainConfig

        return config_from_dict(AudioTrainConfig, {**self.train, **self.variants[variant]},
                                context=f"audio study {self.name} variant {variant}")

    def quick(self) -> AudioStudy:
        """A small copy for smoke runs: few videos, one test world, one seed, 20 steps."""
        return replace(self, train_world={**self.train_world, "videos": 120},
                       test_worlds={**self.test_worlds, "videos": 40,
                                    "seeds": self.test_worlds["seeds"][:1]},
                       seeds=self.seeds[:1], train={**self.train, "steps": 20,
                                                    "batch_size": 16, "log_every": 10})


def load_audio_study(name: str | Path) -> AudioStudy:
    """The study `mumur/configs/clip4vla/<name>.json`, or a JSON file path."""
    if str(name).endswith(".json"):
        try:
            data = json.loads(Path(name).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"audio study file {name}: {exc}") from None
        name = Path(name).stem
    else:
        data = load_packaged_config("clip4vla", str(name))
    return config_from_dict(AudioStudy, {**data, "name": str(name)}, context=f"audio study {name}")


def _worlds(study: AudioStudy, out: Path, workers: int, console: Console):
    proxy = StudyConfig("world", study.train_world, study.test_worlds, tuple(study.seeds),
                        {"clip4vla": {"zero_shot": True}}, None, study.name)
    return study_worlds(proxy, load_recipe("world"), out, workers, console)


def _trained(train, val, towers, study: AudioStudy, cfg, seed: int, cache: Path,
             console: Console):
    """Train a tower; with ``weight_grid``, set its audio weight on the val split."""
    from ..train.clip4vla.evaluate import select_audio_weight
    from ..train.clip4vla.run import train_audio_tower

    tower, summary = train_audio_tower(train, towers, study.audio, cfg, seed, cache,
                                       log=console.print)
    if cfg.weight_grid:
        tower.weight, summary["val_en_R1_by_weight"] = select_audio_weight(
            tower, towers, val, cache, list(cfg.weight_grid))
        console.print(f"  audio weight {tower.weight:g} (val en R@1 by weight: "
                      f"{summary['val_en_R1_by_weight']})")
    summary["audio_weight"] = tower.weight
    return tower, summary


def audio_study_runs(study: AudioStudy, out: Path, workers: int = 1,
                     console: Console | None = None) -> dict[str, dict[int, Path]]:
    """Train and score every (variant, seed) not finished yet; variant -> seed -> outcomes."""
    from ..train.clip4vla.data import load_towers, world_audio
    from ..train.clip4vla.evaluate import audio_outcomes

    console = console or Console()
    out = Path(out)
    train_folder, galleries = _worlds(study, out, workers, console)
    cache = out / "cache"
    towers = load_towers(study.vision, study.text_ml, study.num_frames)
    train = val = tests = None
    files: dict[str, dict[int, Path]] = {}
    for variant in study.variants:
        cfg = study.train_config(variant)
        spec = {"train": cfg.__dict__, "audio": study.audio, "vision": study.vision,
                "text_ml": study.text_ml, "train_world": study.train_world,
                "test_worlds": study.test_worlds}
        for seed in study.seeds:
            run = run_folder(out, variant, seed)
            done = run / "outcomes.npz"
            if done.exists() and (run / "run.json").exists() and json.loads(
                    (run / "run.json").read_text()).get("spec") == spec:
                files.setdefault(variant, {})[seed] = done
                continue
            if train is None:
                console.print("decoding the worlds' frames and sound (cached) ...")
                train = world_audio(train_folder, "train", towers, cache, study.audio)
                val = world_audio(train_folder, "val", towers, cache, study.audio)
                tests = [world_audio(g, "test", towers, cache, study.audio) for g in galleries]
            console.rule(f"[bold]{variant}, seed {seed}")
            tower, summary = _trained(train, val, towers, study, cfg, seed, cache, console)
            tower.save(run / "tower")
            arrays = audio_outcomes(tower, towers, tests, cache)
            atomic_write_json(run / "run.json", {"variant": variant, "seed": seed, "spec": spec,
                                                 **summary}, indent=2)
            with atomic_path(done) as tmp, open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
            files.setdefault(variant, {})[seed] = done
    return files


def train_one_tower(study: AudioStudy, seed: int, work: str | Path, out: str | Path,
                    variant: str | None = None, console: Console | None = None) -> Path:
    """Train one audio tower (the study's default variant unless named) on its train world and
    save it to `out` (an `AudioTower` folder that `mumur index --audio` reads)."""
    from ..train.clip4vla.data import load_towers, world_audio

    console = console or Console()
    work = Path(work)
    variant = variant or study.default or next(iter(study.variants))
    train_folder, _ = _worlds(study, work, 1, console)
    towers = load_towers(study.vision, study.text_ml, study.num_frames)
    train = world_audio(train_folder, "train", towers, work / "cache", study.audio)
    val = world_audio(train_folder, "val", towers, work / "cache", study.audio)
    tower, summary = _trained(train, val, towers, study, study.train_config(variant), seed,
                              work / "cache", console)
    folder = tower.save(out)
    atomic_write_json(Path(folder) / "training_summary.json",
                      {"study": study.name, "variant": variant, "vision": study.vision,
                       "text_ml": study.text_ml, **summary}, indent=2)
    return Path(folder)


def run_audio_study(study: AudioStudy, out: str | Path, *, workers: int = 1,
                    console: Console | None = None) -> dict:
    """Run the study and summarise it (also written to ``out/results.json``)."""
    from .clip4vla_report import summarize_audio_study

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = audio_study_runs(study, out, workers, console)
    summary = summarize_audio_study(study, files)
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
