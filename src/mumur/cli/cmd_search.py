"""`mumur search QUERY --index DIR [--index DIR2 ...] [--top-k K] [--type image|video] [--exact]
[--json] [--image PATH] [--lang CODE] [--rerank MODEL --rerank-k K
[--rerank-score fused|itm]]`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["format_results", "register"]


def format_results(response) -> str:
    """Human-readable result table (or the "no relevant results" line)."""
    lines = []
    if not response.results:
        lines.append("no results")
    elif response.threshold is None:
        lines.append("relevance unknown: this model's calibration found no score that marks "
                     "relevant results reliably (nothing is flagged); closest matches:")
    elif not response.relevant:
        statistic = "calibrated score" if response.flag_statistic == "z" else "score"
        lines.append(f"no relevant results (best {statistic} below {response.threshold:.2f});"
                     " closest matches:")
    for rank, r in enumerate(response.results, 1):
        when = f" @ {r.timestamp:.1f}s" if r.timestamp is not None else ""
        mark = "" if r.relevant or response.threshold is None else "  (not relevant)"
        p = f"  p={r.probability:.3f}" if r.probability is not None else ""
        rerank = "" if r.rerank_score is None else f"  rerank={r.rerank_score:7.3f}"
        sound = "" if r.audio_score is None else (
            f"  audio={r.audio_score:+.3f}" + (" (matched on sound)" if r.sound_match else ""))
        lines.append(f"{rank:3d}. {r.score:.4f}  z={r.calibrated:6.2f}{p}{rerank}{sound}  "
                     f"{r.media_type:5s} {r.path}{when}{mark}")
    language = response.language or "unknown"
    if response.language_detected:
        language += ", detected"
    lines.append(f"[{response.mode}, {response.branch} branch (language {language}), "
                 f"{response.took_ms:.1f} ms, {response.candidates} candidates"
                 + (f"; top {response.rerank_k} re-ranked in {response.rerank_ms:.1f} ms"
                    if response.rerank_k else "") + "]")
    return "\n".join(lines)


def search_command(
    query: str | None = typer.Argument(None, help="Query text, in any language."),
    index: list[Path] = typer.Option(..., "--index", help="Index folder; repeat it to search "
                                     "the shards of one index as one."),
    top_k: int = typer.Option(10, "--top-k", "-k", min=1, max=1000, help="Results to show."),
    media_type: str | None = typer.Option(None, "--type", help="image or video."),
    exact: bool = typer.Option(False, "--exact", help="Score every item exactly (no shortlist)."),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list best first."),
    image: Path | None = typer.Option(None, "--image", help="Use this image as the query."),
    model: str | None = typer.Option(None, "--model", help="Query model (must match the "
                                        "index's model; default: the recorded one)."),
    lang: str | None = typer.Option(None, "--lang", help="Query language code (en, de, ...): "
                                    "English uses the English branch, others the multilingual "
                                    "one. Default: detected."),
    rerank: Path | None = typer.Option(None, "--rerank", help="MLMM cross-encoder folder "
                                       "(`mumur mlmm finetune`): reorders the two-stream top "
                                       "--rerank-k; frame features are kept in "
                                       "INDEX/rerank-features."),
    rerank_k: int = typer.Option(50, "--rerank-k", min=1, max=1000,
                                 help="Shortlist the re-ranker reorders."),
    rerank_score: str = typer.Option("fused", "--rerank-score", help="fused: the ITM score "
                                     "fused with the two-stream score (weight chosen on "
                                     "validation at fine-tuning, fusion.json); itm: the ITM "
                                     "score alone."),
    backend: str = typer.Option("fp32", "--backend", help="Text tower inference on CPU: fp32, "
                                "bf16, int8, onnx or auto (measured, so only worth it for many "
                                "queries)."),
    audio: Path | None = typer.Option(None, "--audio", help="Audio tower folder: must be the "
                                      "one the index was built with (an index built without "
                                      "audio is refused); default: the recorded one."),
) -> None:
    """Search an index by text (any language) or by an example image."""
    from ..errors import QueryError
    from ..index.sharded import open_index

    if (query is None) == (image is None):
        raise QueryError(query, "give either QUERY text or --image PATH")
    if rerank is not None and image is not None:
        raise QueryError(None, "--rerank scores text queries only")
    if rerank is not None and len(index) > 1:
        raise QueryError(None, "--rerank works on one index (give one --index)")
    reranker = None
    if rerank is not None:
        from ..rerank import load_reranker

        reranker = load_reranker(rerank, index[0] / "rerank-features", score=rerank_score)
    idx = open_index(index, model=model, text_backend=backend, audio=audio)
    try:
        if image is not None:
            response = idx.search_image(image, k=top_k, media_type=media_type)
        else:
            shortlist = {} if reranker is None else {"rerank": reranker, "rerank_k": rerank_k}
            response = idx.search(query, k=top_k, media_type=media_type, exact=exact,
                                  language=lang, **shortlist)
    finally:
        idx.close()
    if json_out:
        typer.echo(json.dumps(response.cli_records(), ensure_ascii=False))
    else:
        typer.echo(format_results(response))


def register(app: typer.Typer) -> None:
    app.command("search")(search_command)
