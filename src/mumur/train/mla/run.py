"""`train_mla` (`mumur mla train`): the multilingual tokenizer and embedding, stage 1 (native
language transfer) and stage 2 (language exposure) with the `Trainer`; `add_language`
(`mumur mla add-language`): one more language on a trained encoder, only its acquirers trained."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import numpy as np

from ...data.synthetic.parallel import caption_bitext, parallel_pairs
from ...errors import ConfigError
from ...fsutil import atomic_path, atomic_write_text
from ..distill.data import text_features, world_manifest
from ..distill.recipe import StudentSpec
from ..distill.students import run_tokenizer
from ..trainer import Trainer
from .data import ExposureBatches, NltBatches, exposure_pairs
from .model import MlaStageModule, init_multilingual_embedding
from .recipe import MlaRecipe

__all__ = ["add_language", "exposure_media", "mla_parameter_counts", "train_mla",
           "validate_mla"]


def _count(params) -> int:
    return int(sum(p.numel() for p in params))


def mla_parameter_counts(encoder) -> dict:
    """Trainable parameters of MLA against full fine-tuning of the text tower."""
    per_language = {lang: _count(a.parameters()) for lang, a in encoder.acquirers.items()}
    trainable = _count(encoder.embedding.parameters()) + sum(per_language.values())
    tower = _count(encoder.clip.parameters())
    return {"trainable": trainable, "embedding": _count(encoder.embedding.parameters()),
            "acquirers_per_language": per_language,
            "one_language": next(iter(per_language.values())),
            "frozen_text_tower": tower,
            # full fine-tuning trains the whole tower plus the new multilingual embedding table
            "full_finetune": tower + _count(encoder.embedding.parameters()),
            "trainable_fraction": round(trainable / (tower + _count(
                encoder.embedding.parameters())), 4)}


def exposure_media(recipe: MlaRecipe, languages, cache_dir: Path, progress: bool
                   ) -> tuple[dict, np.ndarray]:
    """The exposure world (rendered once under `cache_dir`) and its items' frozen Phi(V):
    L2-normalised frame embeddings averaged over `recipe.frames` frames (cached as .npy)."""
    from ...encoders import load_encoder
    from ...eval.bitext import media_embeddings

    manifest, folder = world_manifest(recipe.exposure_world, languages, cache_dir, media=True,
                                      progress=progress)
    vision = load_encoder(recipe.clip, modality="vision")
    tag = f"{vision.identity}|{recipe.exposure_world}|{recipe.frames}"
    stable = cache_dir / "exposure_media" / f"{hashlib.sha1(tag.encode()).hexdigest()[:16]}.npy"
    if stable.exists():
        return manifest, np.load(stable)
    media = media_embeddings(vision, [str(folder / it["path"]) for it in manifest["items"]],
                             recipe.frames, progress=progress)
    stable.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(stable) as tmp, open(tmp, "wb") as fh:
        np.save(fh, media)
    return manifest, media


def validate_mla(encoder, recipe: MlaRecipe, languages) -> dict:
    """Held-out check on the validation world's captions (planned, no media): eq. (6) per
    language, English -> l bitext R@1 with the encoder's own routing (language identification,
    no code given) and the share of captions routed to their own language's path."""
    from ...eval.bitext import bitext_retrieval, teacher_mse

    manifest, _ = world_manifest(recipe.validation_world, ["en", *languages])
    _, groups = caption_bitext(manifest, recipe.validation_world.split, ["en", *languages])
    bitext = bitext_retrieval(encoder, groups, languages)
    mse = teacher_mse(encoder, encoder.clip, groups, languages)
    routing = {}
    for lang in languages:
        texts = [g.captions[lang] for g in groups if lang in g.captions]
        routes = encoder.route(texts)
        routing[lang] = float(np.mean([r == lang for r in routes])) if texts else None
    return {lang: {"bitext_R1": bitext.get(lang, {}).get("R1"),
                   "mse": mse.get(lang, {}).get("mse"), "routed_correctly": routing[lang]}
            for lang in languages}


def _stage(encoder, stage: str, data, config, folder: Path, temperature: float) -> dict:
    config = dataclasses.replace(config, validate=False, cache_dir=None)
    result = Trainer(MlaStageModule(encoder, stage, temperature), data, config, folder).fit()
    return {"steps": result.steps, "seconds": round(result.seconds, 2)}


def _stage_steps(config) -> int:
    return int(config.max_steps or config.epochs * 100)


def _nlt_data(recipe: MlaRecipe, teacher, languages, cache_dir: Path, progress: bool):
    manifest, _ = world_manifest(recipe.world, ["en", *languages])
    pairs = [p for p in parallel_pairs(manifest, ["en", *languages]) if p.language != "en"]
    table = text_features(teacher, [p.source for p in pairs], cache_dir, progress)
    return pairs, table


def train_mla(recipe: MlaRecipe, out_dir: str | Path, cache_dir: str | Path | None = None,
              progress: bool = True) -> dict:
    """Train an MLA encoder: tokenizer, embedding init, stage 1 (eq. 6), stage 2 (eq. 7-8).

    Args:
        recipe: the recipe (its `nlt.seed` seeds everything).
        out_dir: run folder: `tokenizer/`, `nlt/` and `le/` (trainer folders), `model/` (the
            encoder, `load_encoder(out_dir / "model", modality="text")`), `results.json`.
        cache_dir: teacher text features, the rendered exposure world and its media embeddings
            (default `out_dir/cache`; share it between runs).
        progress: progress bars.

    Returns:
        The results (`results.json`): parameters, stage seconds, validation per language.
    """
    from ...encoders import load_encoder
    from ...encoders.text.mla import MlaTextEncoder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir or out_dir / "cache")
    atomic_write_text(out_dir / "recipe.json", json.dumps(recipe.to_dict(), indent=2))
    languages = list(recipe.target_languages)
    started = time.perf_counter()
    clip = load_encoder(recipe.clip, modality="text")
    pairs, table = _nlt_data(recipe, clip, languages, cache_dir, progress)
    spec = StudentSpec(kind="scratch-transformer", vocab_size=recipe.vocab_size,
                       max_length=recipe.max_length)
    tokenizer = run_tokenizer(out_dir / "tokenizer", list(dict.fromkeys(p.target for p in pairs)),
                              spec)
    encoder = MlaTextEncoder(clip, tokenizer, languages, recipe.bottleneck, recipe.fallback,
                             source=recipe.name)
    copied = init_multilingual_embedding(encoder, recipe.nlt.seed)
    manifest, media = exposure_media(recipe, ["en", *languages], cache_dir, progress)
    setup = time.perf_counter() - started
    nlt = _stage(encoder, "nlt", NltBatches(pairs, table, recipe.nlt.batch_size,
                                            _stage_steps(recipe.nlt), recipe.nlt.seed),
                 recipe.nlt, out_dir / "nlt", recipe.temperature)
    le = _stage(encoder, "le", ExposureBatches(exposure_pairs(manifest, languages), media,
                                               recipe.le.batch_size, _stage_steps(recipe.le),
                                               recipe.le.seed),
                recipe.le, out_dir / "le", recipe.temperature)
    encoder.eval()
    folder = encoder.save(out_dir / "model")
    results = {"name": recipe.name, "clip": recipe.clip, "languages": languages,
               "excluded": list(recipe.exclude_languages), "model": str(folder),
               "parameters": mla_parameter_counts(encoder),
               "embedding_rows_from_clip": copied, "vocab": len(tokenizer),
               "pairs": len(pairs), "exposure_items": len(media),
               "setup_seconds": round(setup, 2), "nlt": nlt, "le": le,
               "train_seconds": round(nlt["seconds"] + le["seconds"], 2),
               "validation": validate_mla(encoder, recipe, languages)}
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2))
    return results


def add_language(model_folder: str | Path, language: str, recipe: MlaRecipe,
                 out_dir: str | Path, cache_dir: str | Path | None = None,
                 progress: bool = True) -> dict:
    """Add `language` to a trained MLA encoder: a fresh acquirer group trained through both
    stages on that language alone (everything else frozen, the shared embedding included), with
    the per-language share of the recipe's steps (`max_steps / number of its languages`).

    Returns:
        `{"language", "parameters_added", "train_seconds", "before", "after", "model"}`:
        `before`/`after` are `validate_mla` rows of the language (before: through the fallback or closest language).
    """
    from ...encoders import load_encoder

    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir or out_dir / "cache")
    encoder = load_encoder(str(model_folder), modality="text")
    if language == "en" or language in encoder.acquirers:
        raise ConfigError(f"add-language: {language!r} already has a path in {model_folder}")
    before = validate_mla(encoder, recipe, [language])[language]
    for p in encoder.parameters():
        p.requires_grad_(False)
    added = encoder.add_language(language)
    share = max(1, len(encoder.acquirers) - 1)
    pairs, table = _nlt_data(recipe, encoder.clip, [language], cache_dir, progress)
    manifest, media = exposure_media(recipe, ["en", language], cache_dir, progress)
    nlt_cfg = dataclasses.replace(recipe.nlt, max_steps=max(1, _stage_steps(recipe.nlt) // share))
    le_cfg = dataclasses.replace(recipe.le, max_steps=max(1, _stage_steps(recipe.le) // share))
    nlt = _stage(encoder, "nlt", NltBatches(pairs, table, nlt_cfg.batch_size, nlt_cfg.max_steps,
                                            nlt_cfg.seed), nlt_cfg, out_dir / "nlt",
                 recipe.temperature)
    le = _stage(encoder, "le", ExposureBatches(exposure_pairs(manifest, [language]), media,
                                               le_cfg.batch_size, le_cfg.max_steps, le_cfg.seed),
                le_cfg, out_dir / "le", recipe.temperature)
    encoder.eval()
    folder = encoder.save(out_dir / "model")
    results = {"language": language, "from": str(model_folder), "model": str(folder),
               "parameters_added": _count(added.parameters()),
               "trainable_parameters": _count(p for p in encoder.parameters() if p.requires_grad),
               "steps": {"nlt": nlt["steps"], "le": le["steps"]},
               "train_seconds": round(nlt["seconds"] + le["seconds"], 2),
               "before": before, "after": validate_mla(encoder, recipe, [language])[language]}
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2))
    return results
