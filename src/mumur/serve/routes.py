"""HTTP routes: search, media (with Range), thumbnails, health. Thin: each calls the index."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import FileResponse

from ..errors import MediaDecodeError
from ..index.search import MAX_QUERY_CHARS
from .resources import Resources
from .schemas import ErrorReply, HealthReply, SearchReply

__all__ = ["MAX_K", "router"]

MAX_K = 100
_ERRORS = {400: {"model": ErrorReply}, 401: {"model": ErrorReply}, 404: {"model": ErrorReply},
           422: {"model": ErrorReply}}

router = APIRouter(prefix="/api", responses=_ERRORS)


def resources(request: Request) -> Resources:
    """The app's `Resources` (set by `create_app`)."""
    return request.app.state.resources


def require_key(request: Request, x_api_key: str | None = Header(None),
                key: str | None = Query(None, description="API key for <img>/<video> URLs "
                                           "(browsers cannot set headers there).")) -> None:
    """401 unless the X-API-Key header (or `key` query parameter) matches the server's key."""
    if not resources(request).check_key(x_api_key if x_api_key is not None else key):
        raise HTTPException(status_code=401, detail="missing or wrong API key (X-API-Key)")


@router.get("/health", response_model=HealthReply)
def health(res: Resources = Depends(resources)) -> dict:
    """Liveness plus what is indexed."""
    info = res.index.info()
    return {"status": "ok", **{k: info[k] for k in ("items", "images", "videos", "model",
                                                      "schema_version")}}


@router.get("/search", response_model=SearchReply, dependencies=[Depends(require_key)])
def search(
    q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, description="Query, any "
                   "language."),
    k: int = Query(10, ge=1, le=MAX_K, description="Number of results."),
    type: Literal["image", "video"] | None = Query(None, description="Media type filter."),
    exact: bool = Query(False, description="Exact scoring of every item (slower)."),
    lang: str | None = Query(None, min_length=2, max_length=35, description="Query language "
                             "code (en, de, zh-Hant, ...): English goes through the English "
                             "branch, others through the multilingual one. Default: detected; "
                             "only a confident English detection counts as English."),
    res: Resources = Depends(resources),
) -> dict:
    """Rank indexed media for a text query (QueryError -> 400)."""
    response = res.index.search(q, k=k, media_type=type, exact=exact, language=lang)
    body = response.to_dict()
    body.pop("candidates", None)
    return body


def _record_or_404(res: Resources, item_id: int):
    record = res.item(item_id)
    if record is None:
        raise HTTPException(status_code=404, detail=f"no indexed media with id {item_id}")
    return record


@router.get("/media/{item_id}", dependencies=[Depends(require_key)],
            response_class=FileResponse)
def media(item_id: int, res: Resources = Depends(resources)) -> FileResponse:
    """Stream an indexed file (only ids from the index; HTTP Range supported)."""
    record = _record_or_404(res, item_id)
    return FileResponse(record.path)


@router.get("/thumb/{item_id}", dependencies=[Depends(require_key)],
            response_class=FileResponse)
def thumb(item_id: int, res: Resources = Depends(resources)) -> FileResponse:
    """JPEG thumbnail of an indexed item (cached)."""
    record = _record_or_404(res, item_id)
    try:
        path = res.thumbnail(record)
    except MediaDecodeError as exc:
        raise HTTPException(status_code=404, detail=f"no thumbnail: {exc.reason}") from None
    return FileResponse(path, media_type="image/jpeg",
                        headers={"cache-control": "public, max-age=86400"})
