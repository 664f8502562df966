"""FastAPI app factory and `serve()` (uvicorn). Routes live in `routes`, bodies in `schemas`,
loading in `resources`."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import MumurError, QueryError
from .resources import Resources, load_resources
from .routes import router

__all__ = ["STATIC_DIR", "create_app", "serve"]

STATIC_DIR = Path(__file__).with_name("static")


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(resources: Resources | str | os.PathLike, api_key: str | None = None) -> FastAPI:
    """Build the app.

    Args:
        resources: loaded `Resources`, or an index folder to load.
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
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(QueryError)
    async def _query(request: Request, exc: QueryError) -> JSONResponse:
        return JSONResponse({"error": exc.reason}, status_code=400)

    @app.exception_handler(MumurError)
    async def _mumur(request: Request, exc: MumurError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=500)

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app


def serve(index_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 8000,
          api_key: str | None = None) -> None:
    """Load the index and run the API + web UI with uvicorn (blocks).

    Args:
        index_dir: index folder.
        host, port: where to listen.
        api_key: require this X-API-Key on /api routes (health excepted).
    """
    import uvicorn

    uvicorn.run(create_app(index_dir, api_key=api_key), host=host, port=port, log_level="info")
