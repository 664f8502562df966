"""`mumur serve --index DIR [--index DIR2 ...] [--host 127.0.0.1] [--port 8000] [--api-key KEY]
[--rerank MODEL]`."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["register"]


def serve_command(
    index: list[Path] = typer.Option(..., "--index", help="Index folder; repeat it to serve "
                                     "the shards of one index as one."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port."),
    api_key: str | None = typer.Option(None, "--api-key", envvar="MUMUR_API_KEY",
                                          help="Require this X-API-Key on /api routes."),
    rerank: Path | None = typer.Option(None, "--rerank", help="MLMM cross-encoder folder: "
                                       "/api/search?rerank_k=K reorders the two-stream top K."),
) -> None:
    """Serve the search API and the web UI (http://HOST:PORT/)."""
    from ..serve import serve

    if rerank is not None and len(index) > 1:
        raise typer.BadParameter("--rerank works on one index (give one --index)")
    shown = ", ".join(map(str, index))
    typer.echo(f"serving {shown} on http://{host}:{port}/ (API docs: /docs)")
    serve(index if len(index) > 1 else index[0], host=host, port=port, api_key=api_key,
          rerank=rerank)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
