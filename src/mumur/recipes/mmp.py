"""MMP, multilingual multimodal pre-training (Huang et al. 2021, "Multilingual Multimodal
Pre-training for Zero-Shot Cross-Lingual Transfer of Vision-Language Models"; seed
`mmp-multi-howto100m-summary.txt`): `mumur mmp pretrain RECIPE --out DIR`.

The model: a multilingual contextual text transformer (a BERT with its own unigram tokenizer,
M-CLIP's layout `MClipTextEncoder`: transformer -> mean pooling -> linear) and a video
transformer over frozen world-CLIP frame features (the `mumur-dcm` head with its temporal
transformer, CLIP4Clip's seqTransf, over the frames), pre-trained contrastively on the
pretraining world's video-text pairs in every language (the stand-in for Multi-HowTo100M's
subtitles in 9 languages). One text transformer serves every language: the English and the
multilingual branch name the same encoder folder (`create_model` then loads it once) and
`share_branches` ties the head's two branches, so every language meets the same video side.

Fine-tuning follows the paper's zero-shot protocol: the pre-trained model (`init_from`) trained
further on English captions only of the study's train world (`train.en_only`), then queried in
every language. That step is a study variant (`configs/studies/routes.json`, `mumur routes`).

A recipe (`configs/mmp/<name>.json`) names ``world`` (the pretraining corpus: ``seed``,
``videos``, ``images``, ``multi_shot``), ``text`` (`StudentSpec` fields of the BERT),
``recipe`` (the offline recipe patched for pre-training) and ``pretrain`` (a JSON Merge Patch of
that recipe: head overrides, epochs, learning rates), ``exclude_languages`` (left out of the
tokenizer and of every training caption: the held-out-language experiment).

Deviations (docs/deviations.md): the text transformer starts from scratch (MMP starts from
mBERT / XLM-R); frame features come from the frozen world-CLIP vision tower (MMP uses frozen
S3D features); the pretraining corpus is a rendered synthetic world with template captions,
not HowTo100M's ASR subtitles; fine-tuning keeps the text transformer frozen (its caption
features are cached; MMP fine-tunes all weights).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import config_from_dict, config_to_dict, load_packaged_config, read_json
from ..data.synthetic.languages import LANGUAGES
from ..errors import ConfigError
from ..fsutil import atomic_write_text
from .offline import generate_corpus, load_recipe, train_offline, with_run_settings

__all__ = ["MmpRecipe", "load_mmp_recipe", "pretrain_mmp"]


@dataclass(frozen=True)
class MmpRecipe:
    """An MMP pre-training run (module docstring)."""

    name: str
    world: dict
    text: dict = field(default_factory=dict)
    recipe: str = "world"
    pretrain: dict = field(default_factory=dict)
    exclude_languages: tuple[str, ...] = ()

    def __post_init__(self):
        unknown = [lang for lang in self.exclude_languages if lang not in LANGUAGES]
        if unknown or "en" in self.exclude_languages:
            raise ConfigError(f"mmp recipe: cannot exclude {unknown or ['en']}")
        missing = [k for k in ("seed", "videos") if k not in self.world]
        if missing:
            raise ConfigError(f"mmp recipe: world lacks {missing}")

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in LANGUAGES if lang not in self.exclude_languages)


def load_mmp_recipe(path_or_name: str | Path, **overrides) -> MmpRecipe:
    """A recipe file or packaged name (`world-mmp`); `overrides` replace top-level fields.

    Raises:
        ConfigError: missing file, bad JSON, unknown or invalid fields.
    """
    path = Path(path_or_name)
    data = read_json(path) if path.is_file() else load_packaged_config("mmp", str(path_or_name))
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return config_from_dict(MmpRecipe, data, context=f"mmp recipe {path_or_name}")


def _text_tower(recipe: MmpRecipe, manifest: dict, folder: Path, dim: int, seed: int) -> Path:
    """The untrained text transformer (tokenizer trained on the corpus' captions in the
    recipe's languages), saved as an encoder folder."""
    from ..train.distill import StudentSpec, build_student
    from ..train.distill.students import run_tokenizer

    if (folder / "mumur_encoder.json").exists():
        return folder
    spec = config_from_dict(StudentSpec, {"kind": "scratch-transformer", **recipe.text},
                            context="mmp recipe text")
    sentences = sorted({text for item in manifest["items"] for lang in recipe.languages
                        for text in item["captions"].get(lang, [])})
    tokenizer = run_tokenizer(folder.parent / "tokenizer", sentences, spec)
    student = build_student(spec, dim, source=recipe.name, seed=seed, tokenizer=tokenizer)
    student.save(folder)
    return folder


def pretrain_mmp(recipe: MmpRecipe, out_dir: str | Path, *, seed: int = 0, workers: int = 1,
                 corpus_dir: str | Path | None = None, cache_dir: str | Path | None = None
                 ) -> dict:
    """Pre-train MMP: the corpus (rendered once), the text transformer, then the `Trainer` on
    every language's captions (`train.ml_languages` without the excluded ones).

    Args:
        recipe: the recipe.
        out_dir: run folder (`text-init/`, `pretrain/` with the trainer's `best/` and `model/`,
            `results.json`).
        seed: training seed (text-transformer initialisation, data order).
        workers: decode workers.
        corpus_dir: where the pretraining corpus is rendered (default `out_dir/corpus`; share it
            between seeds).
        cache_dir: frame-feature cache (default `out_dir/cache`).

    Returns:
        `{"model", "train_seconds", "steps", "best_step", "text_parameters",
        "head_parameters", "languages"}` (also `results.json`).
    """
    from ..data.synthetic.generate import MANIFEST_NAME
    from ..model import load_model

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = Path(corpus_dir or out_dir / "corpus")
    cache = Path(cache_dir or out_dir / "cache")
    base = load_recipe(recipe.recipe)
    if not (corpus / MANIFEST_NAME).exists():
        generate_corpus(base, corpus, videos=int(recipe.world["videos"]),
                        images=int(recipe.world.get("images", 0)), seed=int(recipe.world["seed"]),
                        workers=workers)
    manifest = json.loads((corpus / MANIFEST_NAME).read_text(encoding="utf-8"))
    dim = int(base.model["overrides"].get("embed_dim", 192))
    text = str(_text_tower(recipe, manifest, out_dir / "text-init", dim, seed).resolve())
    patch = {"model": {"encoders": {"text_en": text, "text_ml": text}},
             "train": {"freeze_text": False,
                       "ml_languages": [lang for lang in recipe.languages if lang != "en"]},
             "data": {"val_languages": [lang for lang in base.data.get("val_languages", ["en"])
                                        if lang in recipe.languages]}}
    run_recipe = with_run_settings(base.patch(recipe.pretrain).patch(patch), seed=seed,
                                   workers=workers)
    started = time.perf_counter()
    result = train_offline(run_recipe, corpus, out_dir / "pretrain", cache)
    chosen = result.best_model or result.final_model
    model = load_model(chosen)
    results = {"name": recipe.name, "seed": seed, "model": str(chosen),
               "train_seconds": round(time.perf_counter() - started, 2), "steps": result.steps,
               "best_step": result.best_step, "best_value": result.best_value,
               "text_parameters": sum(p.numel() for p in model.text_ml.parameters()),
               "head_parameters": sum(p.numel() for p in model.head.parameters()),
               "languages": list(recipe.languages),
               "recipe": config_to_dict(recipe)}
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2))
    return results
