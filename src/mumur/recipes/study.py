"""`mumur demo` / `mumur ablation` engine: heads trained on cached world-CLIP frame features,
several seeds, several independent test worlds, figures with intervals.

A study (`mumur/configs/studies/<name>.json`) names:

* ``recipe``: the packaged training recipe every variant patches (`configs/recipes/`);
* ``train_world``: the synthetic world the heads train on (its train split) and select on (its
  val split): ``seed``, ``videos``, ``images``, ``multi_shot`` (split fractions from the recipe's
  ``corpus``);
* ``test_worlds``: independent worlds used only for the figures: ``seeds`` (one world each, every
  item in its test split), ``videos``, ``images``, ``multi_shot``. The test galleries are the
  train world's own test split (never trained on or selected on) and each test world; each is
  its own gallery (its captions identify their item within it, see
  `mumur.data.synthetic.generate`), and figures pool the queries of all galleries;
* ``seeds``: training seeds; ``variants``: name -> ``{"patch": JSON Merge Patch of the recipe}``,
  or ``{"zero_shot": true}`` for the recipe's encoders used as they are (CLIP4Clip meanP over
  world-CLIP frames, no training: one run whatever the seeds). The text ``{seed}`` inside a
  patch becomes the run's training seed (e.g. a per-seed text encoder folder trained before the
  study, `mumur routes`).

Frame features of the frozen vision tower are computed once per corpus into the shared feature
store (`out/cache/frame_features`), as `mumur features` / `mumur train` do, and every variant and
seed reads them. Each (variant, seed) writes ``outcomes.npz`` beside its run folder: per test
caption its rank, top-1 item and the own item's peak frame, so an interrupted study resumes where
it stopped and the figures are recomputed from stored outcomes (`summarize_study`).

Figures (`eval/stats.py`): mean +- sample std over training seeds and a 95% paired bootstrap
interval over test captions. Per-attribute top-1 agreement and the in-shot timestamp share come
from `eval/attributes.py` on the test worlds' scene metadata.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from ..config import config_from_dict, config_to_dict, load_packaged_config
from ..errors import ConfigError
from ..fsutil import atomic_path, atomic_write_json
from .offline import OfflineRecipe, load_recipe, train_offline, with_run_settings

__all__ = ["StudyConfig", "load_study", "run_folder", "run_study", "seeded_patch",
           "study_variant_outcomes", "study_variant_runs", "study_worlds"]


@dataclass(frozen=True)
class StudyConfig:
    """A study (module docstring); `load_study` reads one from `configs/studies/`."""

    recipe: str
    train_world: dict
    test_worlds: dict
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: dict[str, dict] = field(default_factory=dict)
    default: str | None = None
    name: str = "study"

    def __post_init__(self):
        if not self.seeds:
            raise ConfigError("study: seeds must name at least one training seed")
        if not self.variants:
            raise ConfigError("study: no variants")
        for name, spec in self.variants.items():
            if not isinstance(spec, dict) or not ({"patch", "zero_shot"} & set(spec)):
                raise ConfigError(f"study variant {name!r}: expected {{'patch': {{...}}}} or "
                                  "{'zero_shot': true}")
        if not self.test_worlds.get("seeds"):
            raise ConfigError("study: test_worlds.seeds must list at least one world seed")
        clash = set(self.test_worlds["seeds"]) & {self.train_world.get("seed")}
        if clash:
            raise ConfigError(f"study: world seed {sorted(clash)} is both a train and a test world")
        if self.default is not None and self.default not in self.variants:
            raise ConfigError(f"study: default variant {self.default!r} is not a variant")

    def select(self, variants: list[str] | None = None,
               seeds: list[int] | None = None) -> StudyConfig:
        """A copy restricted to `variants` (known names) and/or run with `seeds`."""
        chosen = self.variants
        if variants:
            unknown = [v for v in variants if v not in self.variants]
            if unknown:
                raise ConfigError(f"unknown variants {unknown}; known: {list(self.variants)}")
            chosen = {v: self.variants[v] for v in variants}
        default = self.default if self.default in chosen else None
        return StudyConfig(self.recipe, self.train_world, self.test_worlds,
                           tuple(seeds) if seeds else self.seeds, chosen, default, self.name)


def load_study(name: str | Path) -> StudyConfig:
    """The study `mumur/configs/studies/<name>.json`, or a study JSON file (a path ending in
    .json).

    Raises:
        ConfigError: unknown name or unreadable file, or a malformed study.
    """
    if str(name).endswith(".json"):
        path = Path(name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"study file {path}: {exc}") from None
        name = path.stem
    else:
        data = load_packaged_config("studies", str(name))
    return config_from_dict(StudyConfig, {**data, "name": str(name)}, context=f"study {name}")


# ----------------------------------------------------------------------------------- worlds

def _synth_config(recipe: OfflineRecipe, spec: dict, test: bool):
    from ..data.synthetic.generate import SynthConfig

    corpus = dict(recipe.corpus)
    if test:
        corpus.update(val_fraction=0.0, test_fraction=1.0)
    return SynthConfig(videos=int(spec["videos"]), images=int(spec["images"]),
                       seed=int(spec["seed"]), multi_shot=float(spec.get("multi_shot", 0.0)),
                       **corpus)


def _world(recipe: OfflineRecipe, folder: Path, spec: dict, *, test: bool, workers: int,
           console: Console) -> Path:
    """Generate a world into `folder` unless its manifest is already there (deterministic)."""
    from ..data.synthetic.generate import generate

    if (folder / "manifest.json").exists():
        return folder
    cfg = _synth_config(recipe, spec, test)
    console.print(f"world {folder.name}: {cfg.videos} videos, {cfg.images} images "
                  f"(seed {cfg.seed}, multi-shot {cfg.multi_shot})")
    generate(folder, cfg, workers=workers)
    return folder


def study_worlds(study: StudyConfig, recipe: OfflineRecipe, out: Path, workers: int,
                 console: Console) -> tuple[Path, list[Path]]:
    """(train world folder, test galleries): the train world's own test split (when the recipe
    gives it one) and then each independent test world, all generated on first use.

    Raises:
        ConfigError: a world whose val/test captions cannot be made unique (split too large),
            found by planning every world before any media is rendered.
    """
    from ..data.synthetic.generate import plan_corpus

    spec = {k: v for k, v in study.test_worlds.items() if k != "seeds"}
    for world, test in [(study.train_world, False)] + [
            ({**spec, "seed": seed}, True) for seed in study.test_worlds["seeds"]]:
        try:
            plan_corpus(_synth_config(recipe, world, test))
        except ConfigError as exc:
            raise ConfigError(f"study {study.name}: world seed {world['seed']}: {exc}") from None
    train = _world(recipe, out / "corpus", study.train_world, test=False, workers=workers,
                   console=console)
    tests = [_world(recipe, out / "worlds" / f"test-{seed}", {**spec, "seed": seed}, test=True,
                    workers=workers, console=console)
             for seed in study.test_worlds["seeds"]]
    own = [train] if float(recipe.corpus.get("test_fraction", 0.0)) > 0 else []
    return train, own + tests


# --------------------------------------------------------------------------------- outcomes

def _zero_shot_model(recipe: OfflineRecipe):
    from ..index.loading import clip_retrieval_model

    encoders = recipe.model["encoders"]
    return clip_retrieval_model(encoders["vision"], encoders.get("text_ml"),
                                num_frames=int(recipe.model["overrides"]["num_frames"]))


def study_variant_outcomes(model, test_worlds: list[Path], cache_dir: Path, workers: int,
                           media_type: str = "video") -> dict[str, np.ndarray]:
    """Per-caption outcomes of `model` on every test world's `media_type` gallery, as flat
    arrays keyed ``<lang>/<field>`` (queries of all worlds concatenated in world order):
    ``rank``, ``top1_hit/<attribute>`` (attribute agreement of the top-1 item), ``in_shot``
    (the own item's peak-frame time inside the described shot; -1 for single-shot items or
    images) and ``n_items`` per world."""
    from ..data import load_benchmark
    from ..data.features import cached_frame_rows
    from ..describe import description_inputs
    from ..eval.attributes import ATTRIBUTES, attribute_hits, caption_scenes, item_scenes
    from ..eval.outcomes import frame_times_of, query_outcomes
    from ..eval.runner import media_states

    parts: dict[str, list[np.ndarray]] = {}
    sizes = []
    for world in test_worlds:
        ds = load_benchmark("synthetic", world, split="test", media_types=[media_type])
        paths = [str(ds.media_path(i)) for i in range(len(ds))]
        rows = cached_frame_rows(paths, model.encode_frames, model.vision.identity,
                                 cache_dir / "frame_features", model.config.num_frames,
                                 model.image_size, num_workers=workers, progress=False)
        extra = description_inputs(model, paths, cache_dir)
        states = media_states(model, rows["features"], rows["mask"], extra=extra)
        scenes = [item_scenes(e) for e in ds.extra]
        sizes.append(len(ds))
        for lang in ds.languages:
            out = query_outcomes(model, ds, states, lang)
            described = caption_scenes(ds, lang)
            parts.setdefault(f"{lang}/rank", []).append(out.ranks)
            parts.setdefault(f"{lang}/v2t_rank", []).append(out.v2t_ranks)
            for attribute in ATTRIBUTES:
                hits = attribute_hits(out.top1, [d for d, _ in described], scenes, attribute)
                parts.setdefault(f"{lang}/top1_hit/{attribute}", []).append(hits)
            times = frame_times_of(rows["timestamps"], out.caption_item, out.peak_frame)
            in_shot = [-1 if shot is None or t is None else int(shot["start"] <= t <= shot["end"])
                       for t, (_, shot) in zip(times, described)]
            parts.setdefault(f"{lang}/in_shot", []).append(np.array(in_shot))
    arrays = {k: np.concatenate(v).astype(np.int64) for k, v in parts.items()}
    arrays["n_items"] = np.asarray(sizes, dtype=np.int64)
    return arrays


def seeded_patch(patch: dict, seed: int) -> dict:
    """`patch` with every ``{seed}`` inside its strings replaced by `seed`."""
    return json.loads(json.dumps(patch).replace("{seed}", str(int(seed))))


def run_folder(out: Path, variant: str, seed: int) -> Path:
    """The folder of one (variant, seed) run of a study in `out` (its ``outcomes.npz``)."""
    return Path(out) / "runs" / variant.replace(" ", "_").replace("/", "-") / f"seed-{seed}"


def _run_variant(name: str, spec: dict, seed: int, base_name: str, base: OfflineRecipe,
                 train_world: Path,
                 test_worlds: list[Path], out: Path, workers: int, console: Console) -> Path:
    """Train (unless zero-shot) and score one (variant, seed); returns its outcomes file."""
    from ..model import load_model

    run = run_folder(out, name, seed)
    done = run / "outcomes.npz"
    if done.exists() and (run / "run.json").exists():
        stored = json.loads((run / "run.json").read_text())
        if stored.get("spec") == spec and stored.get("recipe_name") == base_name:
            return done  # finished earlier with the same variant: reuse (resume)
    run.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    recipe = base
    if spec.get("zero_shot"):
        model, info = _zero_shot_model(base), {"train_seconds": 0.0, "best_step": None}
    else:
        recipe = with_run_settings(base.patch(seeded_patch(spec.get("patch") or {}, seed)),
                                   seed=seed, workers=workers)
        result = train_offline(recipe, train_world, run / "train", out / "cache")
        chosen = result.best_model or result.final_model
        model = load_model(chosen)
        info = {"train_seconds": time.perf_counter() - start, "best_step": result.best_step,
                "val_" + str(recipe.train.get("selection_metric", "t2v_R1")): result.best_value,
                "steps": result.steps, "model": str(chosen)}
    arrays = {f"video/{k}": v for k, v in study_variant_outcomes(
        model, test_worlds, out / "cache", workers, "video").items()}
    arrays.update({f"image/{k}": v for k, v in study_variant_outcomes(
        model, test_worlds, out / "cache", workers, "image").items()})
    info["eval_seconds"] = time.perf_counter() - start - info["train_seconds"]
    atomic_write_json(run / "run.json", {"variant": name, "seed": seed, "spec": spec,
                                         "recipe_name": base_name, **info,
                                         "recipe": config_to_dict(recipe)}, indent=2)
    with atomic_path(done) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    console.print(f"{name} seed {seed}: en t2v R@1 "
                  f"{100 * np.mean(arrays['video/en/rank'] == 1):.1f} "
                  f"({info['train_seconds']:.0f} s train, {info['eval_seconds']:.0f} s eval)")
    return done


def study_variant_runs(study: StudyConfig, out: Path, workers: int,
                       console: Console) -> dict[str, dict[int, Path]]:
    """Every (variant, seed)'s outcomes file, training and scoring only the runs not finished
    (the worlds are generated on first use). Returns variant -> seed -> ``outcomes.npz``; the
    run's ``run.json`` (with its ``model`` folder) lies beside it."""
    base = load_recipe(study.recipe)
    train_world, test_worlds = study_worlds(study, base, out, workers, console)
    files: dict[str, dict[int, Path]] = {}
    for name, spec in study.variants.items():
        seeds = study.seeds[:1] if spec.get("zero_shot") else study.seeds
        for seed in seeds:
            console.rule(f"[bold]{name}, seed {seed}")
            files.setdefault(name, {})[seed] = _run_variant(
                name, spec, seed, study.recipe, base, train_world, test_worlds, out, workers,
                console)
    return files


def run_study(study: StudyConfig, out: str | Path, *, workers: int = 2,
              console: Console | None = None) -> dict:
    """Generate the worlds, train and score every (variant, seed), and summarise.

    Returns:
        The study summary (`summarize_study`), also written to ``out/results.json``.
    """
    from .study_report import summarize_study

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = study_variant_runs(study, out, workers, console)
    summary = summarize_study(study, files, out)
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
