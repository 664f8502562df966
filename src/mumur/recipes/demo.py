"""`mumur demo`: the offline end-to-end job.

1. generate a synthetic multilingual corpus (real .mp4 + .jpg files, `manifest.json`);
2. train the offline default model (translate-train) and the English-only variant;
3. evaluate both on the test split, per language, videos and images separately;
4. write `results.json` (DESIGN.md contract) and the model in `model/`;
5. index the test split (never seen in training) into `index/` and run example searches in
   several languages.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from ..config import config_to_dict
from .offline import (
    OfflineRecipe,
    evaluate_offline,
    generate_corpus,
    load_recipe,
    summarize,
    train_offline,
    with_run_settings,
)

__all__ = ["EXAMPLE_QUERIES", "DemoConfig", "run_demo"]

# Example searches: (language, query). The test split is indexed, so these describe scenes that
# may or may not be there; the printout shows the best matches and their calibrated relevance.
EXAMPLE_QUERIES = [
    ("en", "a large red circle moves left on the beach"),
    ("de", "Ein blauer Stern dreht sich im Schnee."),
    ("fr", "Un petit carré jaune se déplace vers le haut dans l'herbe."),
    ("es", "Un corazón verde se hace más grande de noche."),
    ("ja", "白い三角形が夜に右に動いています。"),
    ("zh", "一个紫色的圆形在海滩上向下移动。"),
    ("ru", "Оранжевый квадрат движется влево на снегу."),
]


@dataclass(frozen=True)
class DemoConfig:
    """Size of the demo run. The defaults fit a 2-core CPU in about 25 minutes.

    Args:
        videos, images: corpus size (all splits; split fractions come from the recipe).
        seed: corpus and training seed.
        workers: processes for media generation and decoding.
        english_only: also train the English-only model (zero-shot cross-lingual transfer).
        epochs: training epochs (None: the recipe's).
        recipe: the model and schedule (`OfflineRecipe`, default `configs/recipes/offline.json`).
    """

    videos: int = 2320
    images: int = 580
    seed: int = 0
    workers: int = 2
    english_only: bool = True
    epochs: int | None = None
    recipe: OfflineRecipe = field(default_factory=load_recipe)


def _lang_table(console: Console, title: str, result: dict, baseline: dict | None = None):
    from rich.table import Table

    table = Table(title=title)
    for col in ("lang", "t2v R@1", "t2v R@5", "t2v R@10", "t2v MdR", "v2t R@1", "v2t R@5",
                "v2t R@10"):
        table.add_column(col, justify="right")
    if baseline is not None:
        table.add_column("en-only t2v R@1", justify="right")
    for lang, m in result["languages"].items():
        row = [lang] + [f"{m['t2v'][k]:.1f}" for k in ("R1", "R5", "R10", "MdR")]
        row += [f"{m['v2t'][k]:.1f}" for k in ("R1", "R5", "R10")]
        if baseline is not None:
            row.append(f"{baseline['languages'][lang]['t2v']['R1']:.1f}")
        table.add_row(*row)
    console.print(table)


def _contract_languages(result: dict) -> dict:
    """`{lang: {"t2v", "v2t"}}`, the results.json contract's per-language shape."""
    return {lang: {"t2v": m["t2v"], "v2t": m["v2t"]} for lang, m in result["languages"].items()}


def run_demo(out: str | Path, config: DemoConfig | None = None,
             console: Console | None = None) -> dict:
    """Run the whole offline job into `out` (see the module docstring). Returns results.json."""
    from ..model import load_model

    config = config or DemoConfig()
    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus, runs, cache = out / "corpus", out / "runs", out / "cache"
    start = time.perf_counter()
    timings: dict[str, float] = {}

    console.rule("[bold]1/5 synthetic corpus")
    t = time.perf_counter()
    report = generate_corpus(config.recipe, corpus, videos=config.videos, images=config.images,
                             seed=config.seed, workers=config.workers)
    timings["synth"] = time.perf_counter() - t
    console.print(f"{report.items} items ({report.videos} videos, {report.images} images) in "
                  f"{report.seconds:.0f}s -> {report.manifest}")

    console.rule("[bold]2/5 training the offline default model (translate-train)")
    recipe = with_run_settings(config.recipe, seed=config.seed, workers=config.workers,
                               epochs=config.epochs)
    t = time.perf_counter()
    result = train_offline(recipe, corpus, runs / "translate-train", cache)
    timings["train"] = time.perf_counter() - t
    chosen = result.best_model or result.final_model
    model_dir = out / "model"
    if model_dir.exists():
        shutil.rmtree(model_dir)
    shutil.copytree(chosen, model_dir)
    console.print(f"trained {result.steps} steps in {result.seconds:.0f}s; model selected on "
                  f"the validation split (step {result.best_step}) -> {model_dir}")

    en_only_eval = None
    if config.english_only:
        console.rule("[bold]3/5 training the English-only model (zero-shot transfer)")
        t = time.perf_counter()
        en_result = train_offline(recipe.patch({"train": {"en_only": True}}), corpus,
                                  runs / "english-only", cache)
        timings["train_english_only"] = time.perf_counter() - t
        en_model = load_model(en_result.best_model or en_result.final_model)
        en_only_eval = evaluate_offline(en_model, corpus, num_workers=config.workers)

    console.rule("[bold]4/5 evaluation on the test split (never used for training or selection)")
    t = time.perf_counter()
    model = load_model(model_dir)
    evaluation = evaluate_offline(model, corpus, num_workers=config.workers)
    timings["eval"] = time.perf_counter() - t
    video = evaluation["video"]
    _lang_table(console, "test videos: translate-train model", video,
                en_only_eval["video"] if en_only_eval else None)
    if "image" in evaluation:
        _lang_table(console, "test images: translate-train model", evaluation["image"],
                    en_only_eval["image"] if en_only_eval else None)

    results = {
        "languages": _contract_languages(video),
        "model": str(model_dir),
        "train_seconds": result.seconds,
        "media_type": "video",
        "summary": summarize(video),
        "images": ({"languages": _contract_languages(evaluation["image"]),
                    "summary": summarize(evaluation["image"])}
                   if "image" in evaluation else None),
        "english_only": ({"languages": _contract_languages(en_only_eval["video"]),
                          "summary": summarize(en_only_eval["video"]),
                          "images": ({"languages": _contract_languages(en_only_eval["image"])}
                                     if "image" in en_only_eval else None)}
                         if en_only_eval else None),
        "corpus": {"path": str(corpus), "videos": report.videos, "images": report.images,
                   "test_videos": video["dataset"]["items"],
                   "test_images": evaluation.get("image", {}).get("dataset", {}).get("items", 0)},
        "recipe": config_to_dict(recipe),
        "timings_seconds": timings,
    }

    console.rule("[bold]5/5 index of the test split + example searches")
    t = time.perf_counter()
    index_dir = out / "index"
    _build_index(model_dir, corpus, index_dir, console, config.workers)
    timings["index"] = time.perf_counter() - t
    results["index"] = str(index_dir)
    results["examples"] = _example_searches(index_dir, console)

    timings["total"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    s = results["summary"]
    console.print(f"[bold]test videos, English t2v R@1 {s['en_t2v_R1']:.1f}; mean over "
                  f"{len(results['languages']) - 1} other languages {s['non_en_mean_t2v_R1']:.1f} "
                  f"({s['non_en_over_en']:.2f} x English)")
    console.print(f"wrote {out / 'results.json'} in {timings['total'] / 60:.1f} min")
    return results


def _test_media_paths(corpus: Path) -> list[Path]:
    from ..data import load_benchmark

    test = load_benchmark("synthetic", corpus, split="test")
    return [test.media_path(i) for i in range(len(test))]


def _build_index(model_dir: Path, corpus: Path, index_dir: Path, console: Console,
                 workers: int) -> None:
    """Index only the test split's files (a folder of links, so nothing seen in training is
    searchable)."""
    from ..index.builder import build_index

    staging = index_dir.parent / "test-media"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for path in _test_media_paths(corpus):
        target = staging / path.name
        try:
            target.symlink_to(path.resolve())
        except OSError:
            shutil.copy2(path, target)
    report = build_index([staging], index_dir, model=str(model_dir), num_workers=workers)
    console.print(report.summary())


def _example_searches(index_dir: Path, console: Console) -> list[dict]:
    from ..index import Index

    index = Index.open(index_dir)
    examples = []
    for lang, query in EXAMPLE_QUERIES:
        response = index.search(query, k=3)
        console.print(f"[bold]\\[{lang}][/bold] {query}  ({response.took_ms:.0f} ms)")
        if not response.relevant:
            console.print("    (no result passes the relevance threshold; best matches:)")
        for hit in response.results:
            ts = f" @ {hit.timestamp:.1f}s" if hit.timestamp is not None else ""
            caption = _caption_of(index_dir, hit.path)
            console.print(f"    {hit.score:.3f} (z={hit.calibrated:.1f})  "
                          f"{Path(hit.path).name}{ts}  [dim]{caption}[/dim]")
        examples.append({"language": lang, "query": query,
                         "results": response.cli_records()})
    return examples


def _caption_of(index_dir: Path, path: str) -> str:
    """The English caption of an indexed demo file (for the printout only)."""
    global _CAPTIONS
    if _CAPTIONS is None:
        manifest = json.loads((index_dir.parent / "corpus" / "manifest.json").read_text())
        _CAPTIONS = {Path(it["path"]).name: it["captions"]["en"][0] for it in manifest["items"]}
    return _CAPTIONS.get(Path(path).name, "")


_CAPTIONS: dict | None = None
