"""`mumur features`: frozen-backbone frame features of a benchmark split into a feature cache,
sharded across processes / machines, with merge and verify steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def _options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise typer.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--option")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def features_command(
    model: Annotated[str, typer.Option(
        "--model", help="Vision encoder name / folder / hub id, or a trained mumur model folder."
    )],
    out: Annotated[Path, typer.Option("--out", help="Feature cache root (train.cache_dir).")],
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Benchmark name, e.g. msrvtt-9k.")] = None,
    root: Annotated[Path | None, typer.Option(
        "--root", help="Benchmark folder (annotation files); made absolute, as the cache keys "
        "are media paths.")] = None,
    tars: Annotated[list[Path], typer.Option(
        "--tars", help="WebDataset tar shard (img2dataset / video2dataset output) to encode "
        "instead of a benchmark; repeatable. Keys: '<tar>#<member>'.")] = [],  # noqa: B006
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    shard: Annotated[str, typer.Option(
        "--shard", help="K/N: this process takes items with index % N == K.")] = "0/1",
    num_frames: Annotated[int, typer.Option(
        "--num-frames", min=1, help="Frames per video (MuMUR §4.3: 16, or 42 for DiDeMo and "
        "Charades).")] = 16,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=0, help="Decode worker processes (default: min(4, cores - 1)).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1,
                                            help="Files per encoder batch.")] = 16,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1...")] = "auto",
    engine: Annotated[str, typer.Option(
        "--engine", help="local (DataLoader workers + this process) or ray (Ray Data: decode "
        "tasks, encoder actor pool; docs/scale-out.md).")] = "local",
    actors: Annotated[int, typer.Option("--actors", min=1, help="Ray: encoder actors (one per "
                                        "GPU).")] = 1,
    gpus_per_actor: Annotated[float, typer.Option(
        "--gpus-per-actor", min=0.0, help="Ray: GPUs per encoder actor (0: CPU actors).")] = 0.0,
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="Ray: cluster address (default: RAY_ADDRESS, else a local "
        "cluster).")] = None,
    option: Annotated[list[str], typer.Option(
        "--option", help="Benchmark adapter option KEY=VALUE (repeatable), e.g. "
        "languages='[\"en\"]'.")] = [],  # noqa: B006 (typer reads the default)
    merge: Annotated[list[Path], typer.Option(
        "--merge", help="Copy the shards of these cache roots into --out first (repeatable).")
    ] = [],  # noqa: B006
    verify: Annotated[bool, typer.Option(
        "--verify", help="Only report completeness (exit 1 when items are missing).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Encode a benchmark split's media (or WebDataset tar shards) with a frozen visual backbone
    into a feature cache."""
    from ..data import load_benchmark
    from ..data.feature_job import (
        merge_feature_caches,
        parse_shard,
        resolve_frame_encoder,
        run_feature_job,
        tar_media_items,
        verify_feature_cache,
    )

    if (dataset is None) == (not tars) or (dataset is not None and root is None):
        raise typer.BadParameter("give --dataset with --root, or --tars", param_hint="--dataset")
    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"{engine!r}: local or ray", param_hint="--engine")
    data = (load_benchmark(dataset, root.resolve(), split=split, **_options(option))
            if dataset else tar_media_items(tars))
    encoder = resolve_frame_encoder(model, device=device)
    report: dict = {"dataset": dataset or "tars", "split": split, "identity": encoder.identity,
                    "num_frames": num_frames, "engine": engine}
    if merge:
        report["merged_shards"] = merge_feature_caches(merge, out, encoder.identity, num_frames)
    if not verify:
        extract = None
        if engine == "ray":
            import functools

            from ..data.feature_job import frame_encode_fn
            from ..data.ray_engine import RayFrameExtractor

            extract = RayFrameExtractor(functools.partial(frame_encode_fn, model),
                                        actors=actors, gpus_per_actor=gpus_per_actor,
                                        address=ray_address)
        job = run_feature_job(data, encoder, out, num_frames, shard=parse_shard(shard),
                              batch_size=batch_size, num_workers=workers, progress=not quiet,
                              extract=extract)
        report["job"] = job.to_dict()
    check = verify_feature_cache(data, encoder.identity, out, num_frames)
    report["verify"] = {**check.to_dict(), "missing": check.missing[:20],
                        "missing_count": len(check.missing)}
    if json_out:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        if "merged_shards" in report:
            typer.echo(f"merged {report['merged_shards']} shard files into {check.folder}")
        if "job" in report:
            j = report["job"]
            typer.echo(f"shard {j['shard'][0]}/{j['shard'][1]}: {j['shard_items']} items, "
                       f"{j['computed']} computed, {j['skipped']} already cached, "
                       f"{len(j['errors'])} failed")
            for media_id, path, reason in j["errors"][:5]:
                typer.echo(f"  failed: {path}: {reason}")
        state = "complete" if check.complete else f"{len(check.missing)} missing"
        typer.echo(f"{dataset or 'tars'}/{split}: {check.cached}/{check.total} items cached ({state}) in "
                   f"{check.folder}")
    if verify and not check.complete:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.command("features")(features_command)
