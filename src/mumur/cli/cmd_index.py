"""`mumur index PATH... --index DIR [--model NAME_OR_PATH]`: incremental, resumable indexing."""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["register"]


def index_command(
    paths: list[Path] = typer.Argument(..., help="Media files and/or folders (recursive)."),
    index: Path = typer.Option(..., "--index", help="Index folder (created when missing)."),
    model: str | None = typer.Option(
        None, "--model", help="Trained mumur model folder, or a CLIP checkpoint (hub id, local "
        "transformers/open_clip folder). Default: the model the index was built with."),
    text_model: str | None = typer.Option(
        None, "--text-model", help="Paired multilingual text encoder for a CLIP checkpoint "
        "(e.g. an M-CLIP folder)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Files per batch/commit."),
    workers: int = typer.Option(2, "--workers", min=0, help="Decode worker processes."),
    fp16: bool = typer.Option(False, "--fp16", help="Store arrays as float16 (new index only)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    wait: bool = typer.Option(False, "--wait", help="If another index run is writing this "
                              "index, wait for it to finish instead of refusing."),
    engine: str = typer.Option("local", "--engine", help="local, or ray (Ray Data decode tasks "
                               "and an encoder actor pool; docs/scale-out.md)."),
    actors: int = typer.Option(1, "--actors", min=1, help="Ray: encoder actors (one per GPU)."),
    gpus_per_actor: float = typer.Option(0.0, "--gpus-per-actor", min=0.0,
                                         help="Ray: GPUs per encoder actor (0: CPU actors)."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Ray: cluster address "
                                           "(default: RAY_ADDRESS, else a local cluster)."),
    ann: str | None = typer.Option(
        None, "--ann", help="FAISS index-factory string for an approximate first stage, "
        "recorded in the index (e.g. 'HNSW32,Flat', 'IVF4096,PQ64x4fs,RFlat'); 'exact' clears it."),
    ann_params: str = typer.Option(
        "", "--ann-params", help="FAISS search parameters for --ann (e.g. 'efSearch=128', "
        "'nprobe=32,k_factor_rf=8')."),
    backend: str = typer.Option(
        "auto", "--backend", help="Vision tower inference on CPU: fp32, bf16, int8, onnx, or auto "
        "(the fastest whose embeddings keep cosine >= 0.99 with fp32 on a probe batch)."),
    audio: Path | None = typer.Option(
        None, "--audio", help="CLIP4VLA audio tower folder (`mumur audio train`): store each "
        "video's sound so search scores it (new index, or the one it was built with)."),
) -> None:
    """Index images and videos (new files embedded, modified re-embedded, deleted removed)."""
    from ..index import build_index
    from ..index.ann import AnnSpec

    spec = AnnSpec(ann, ann_params) if ann else None
    report = build_index(paths, index, model, text_model=text_model, batch_size=batch_size,
                         num_workers=workers, fp16=fp16, progress=not quiet,
                         wait=wait, engine=engine,
                         ray_options={"actors": actors, "gpus_per_actor": gpus_per_actor,
                                      "address": ray_address}, ann=spec, backend=backend,
                         audio=audio)
    typer.echo(json.dumps(report.to_dict(), ensure_ascii=False) if json_out else report.summary())


def register(app: typer.Typer) -> None:
    app.command("index")(index_command)
