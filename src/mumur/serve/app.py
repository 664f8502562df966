"""FastAPI app factory and `serve()` (uvicorn). Routes live in `routes`, bodies in `schemas`,
loading in `resources`."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import MumurError, QueryError
from .resources import Resources, load_resources
from .routes import PATTERN_HINTS, router

__all__ = ["MAX_BODY_BYTES", "MAX_URL_BYTES", "STATIC_DIR", "RequestLimits", "create_app",
           "serve"]

STATIC_DIR = Path(__file__).with_name("static")
#: Every route is a GET and no body is ever read; a larger declared body is refused (413).
MAX_BODY_BYTES = 64 * 1024
#: Path + query string; the longest valid search URL (500 characters of 4-byte UTF-8, %-encoded)
#: is about 6 KiB. Longer: 414. (uvicorn bounds the header block itself.)
MAX_URL_BYTES = 8 * 1024
_log = logging.getLogger("mumur.serve")


class RequestLimits:
    """ASGI middleware: bound the request size before any route runs (413 / 414, JSON body), and
    send `X-Content-Type-Options: nosniff` so browsers never guess a type for served files."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = _refusal(scope)
        if refusal is not None:
            await JSONResponse({"error": refusal[1]}, status_code=refusal[0])(scope, receive, send)
            return

        async def send_nosniff(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"x-content-type-options", b"nosniff")]
            await send(message)

        await self.app(scope, receive, send_nosniff)


def _refusal(scope) -> tuple[int, str] | None:
    url_bytes = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    if url_bytes > MAX_URL_BYTES:
        return 414, f"the URL is longer than {MAX_URL_BYTES} bytes"
    for name, value in scope["headers"]:
        if name == b"content-length":
            if not value.isdigit():
                return 400, "invalid Content-Length"
            if int(value) > MAX_BODY_BYTES:
                return 413, f"the request body is larger than {MAX_BODY_BYTES} bytes"
    return None


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path"))
        if err.get("type") == "string_pattern_mismatch" and where in PATTERN_HINTS:
            parts.append(f"{where}: {PATTERN_HINTS[where]}")  # not the regular expression
        else:
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(resources: Resources | str | os.PathLike | list, api_key: str | None = None) -> FastAPI:
    """Build the app.

    Args:
        resources: loaded `Resources`, or an index folder (or a list of shard folders) to load.
        api_key: API key (only when `resources` is a folder).

    Returns:
        The FastAPI app: `/api/*`, `/openapi.json`, the web page at `/` and `/static/*`.
    """
    if not isinstance(resources, Resources):
        resources = load_resources(resources, api_key=api_key)
    app = FastAPI(title="mumur", summary="Search images and videos with text in any language.",
                  version="1")
    app.state.resources = resources

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Keep the exception's headers: `Allow` on 405 (RFC 9110), `WWW-Authenticate`, ...
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=exc.headers)

    @app.exception_handler(QueryError)
    async def _query(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"error": exc.reason}, status_code=400)

    @app.exception_handler(MumurError)
    async def _mumur(request: Request, exc: MumurError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=500)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not a bad request: logged with its traceback, answered with the declared body.
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)

    app.add_middleware(RequestLimits)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app


def serve(index_dir: str | os.PathLike | list, host: str = "127.0.0.1", port: int = 8000,
          api_key: str | None = None, rerank: str | os.PathLike | None = None) -> None:
    """Load the index and run the API + web UI with uvicorn (blocks).

    Args:
        index_dir: index folder, or the shard folders of one index.
        host, port: where to listen.
        api_key: require this X-API-Key on /api routes (health excepted).
        rerank: an MLMM folder; `/api/search?rerank_k=K` then reorders the top K with it.
    """
    import uvicorn

    resources = load_resources(index_dir, api_key=api_key, rerank=rerank)
    uvicorn.run(create_app(resources), host=host, port=port, log_level="info")
