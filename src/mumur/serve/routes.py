"""HTTP routes: search, media (with Range), thumbnails, health. Thin: each calls the index."""

from __future__ import annotations

import mimetypes
import os
from typing import Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, Response

from ..errors import MediaDecodeError
from ..index.language import LANGUAGE_PATTERN
from ..index.search import MAX_QUERY_CHARS, QUERY_PATTERN
from ..index.store import MAX_ITEM_ID
from .resources import Resources
from .schemas import ErrorReply, HealthReply, SearchReply

__all__ = ["MAX_K", "PATTERN_HINTS", "router"]

MAX_K = 100
#: What a parameter refused by its `pattern` must look like, in words (for the 422 body).
PATTERN_HINTS = {
    "q": "the query needs a visible character and no control characters (tab and line breaks "
         "excepted)",
    "lang": "lang must be a language code such as 'en', 'de' or 'zh-Hant'",
}


def _errors(*codes: int) -> dict:
    return {code: {"model": ErrorReply} for code in codes}


# Every status an /api route can answer is declared (clients and schema fuzzers rely on it):
# 413/414 come from the size limits in `app`, 422 from validation, 500 from a broken index.
router = APIRouter(prefix="/api", responses=_errors(413, 414, 422, 500))
_FILE_TYPES = {t: {} for t in ("image/*", "video/*", "application/octet-stream")}
_MEDIA_RESPONSES = {
    200: {"description": "The indexed file.", "content": _FILE_TYPES},
    206: {"description": "The requested byte range (HTTP Range).", "content": _FILE_TYPES},
    416: {"description": "Range not satisfiable."},
    **_errors(401, 404),
}
_THUMB_RESPONSES = {200: {"description": "JPEG thumbnail.", "content": {"image/jpeg": {}}},
                    **_errors(401, 404)}
_ITEM_ID = Path(ge=0, le=MAX_ITEM_ID, description="Item id from a search result.")


def resources(request: Request) -> Resources:
    """The app's `Resources` (set by `create_app`)."""
    return request.app.state.resources


def require_key(request: Request, x_api_key: str | None = Header(None),
                key: str | None = Query(None, description="API key for <img>/<video> URLs "
                                           "(browsers cannot set headers there).")) -> None:
    """401 unless the X-API-Key header (or `key` query parameter) matches the server's key."""
    if not resources(request).check_key(x_api_key if x_api_key is not None else key):
        raise HTTPException(status_code=401, detail="missing or wrong API key (X-API-Key)")


def media_type_of(record) -> str:
    """Content type of an indexed file: its guessed type when that agrees with the indexed kind
    (image/video), else application/octet-stream (never text/plain, Starlette's fallback)."""
    guessed = mimetypes.guess_type(record.path)[0]
    if guessed and guessed.startswith(record.media_type + "/"):
        return guessed
    return "application/octet-stream"


@router.get("/health", response_model=HealthReply)
def health(res: Resources = Depends(resources)) -> dict:
    """Liveness plus what is indexed."""
    info = res.index.info()
    return {"status": "ok", **{k: info[k] for k in ("items", "images", "videos", "model",
                                                      "schema_version")}}


@router.get("/search", response_model=SearchReply, dependencies=[Depends(require_key)],
            responses=_errors(400, 401, 409))
def search(
    q: str = Query(..., min_length=1, max_length=MAX_QUERY_CHARS, pattern=QUERY_PATTERN,
                   description="Query, any language: at least one visible character, no "
                   "control characters but tab and line breaks."),
    k: int = Query(10, ge=1, le=MAX_K, description="Number of results."),
    type: Literal["image", "video"] | None = Query(None, description="Media type filter."),
    exact: bool = Query(False, description="Exact scoring of every item (slower)."),
    lang: str | None = Query(None, min_length=2, max_length=35, pattern=LANGUAGE_PATTERN,
                             description="Query language "
                             "code (en, de, zh-Hant, ...): English goes through the English "
                             "branch, others through the multilingual one. Default: detected; "
                             "only a confident English detection counts as English."),
    rerank_k: int = Query(0, ge=0, le=MAX_K, description="Reorder the two-stream top "
                          "`rerank_k` with the server's cross-encoder (`mumur serve --rerank`); "
                          "0: no re-ranking. The re-ranker never changes which items those are."),
    res: Resources = Depends(resources),
) -> dict:
    """Rank indexed media for a text query (QueryError -> 400)."""
    if rerank_k and res.reranker is None:  # a valid request this server cannot serve: 409
        raise HTTPException(status_code=409, detail="rerank_k needs a server started with "
                            "--rerank MODEL")
    shortlist = {"rerank": res.reranker, "rerank_k": rerank_k} if rerank_k else {}
    response = res.index.search(q, k=k, media_type=type, exact=exact, language=lang,
                                **shortlist)
    body = response.to_dict()
    body.pop("candidates", None)
    return body


def _record_or_404(res: Resources, item_id: int):
    record = res.item(item_id)
    if record is None:
        raise HTTPException(status_code=404, detail=f"no indexed media with id {item_id}")
    return record


@router.get("/media/{item_id}", dependencies=[Depends(require_key)],
            response_class=FileResponse, responses=_MEDIA_RESPONSES)
def media(item_id: int = _ITEM_ID, res: Resources = Depends(resources)) -> FileResponse:
    """Stream an indexed file (only ids from the index; HTTP Range supported)."""
    opened = res.open_item(item_id)
    if opened is None:
        raise HTTPException(status_code=404, detail=f"no indexed media with id {item_id}")
    record, fd = opened
    return _OpenFileResponse(fd, record.path, media_type=media_type_of(record))


class _OpenFileResponse(FileResponse):
    """A `FileResponse` of an already open, already checked descriptor (closed when sent).

    Starlette reopens by path; on Linux `/proc/self/fd/N` reopens the descriptor's own file, so
    a file deleted or replaced after the check is still served whole. Elsewhere the path is
    reopened (the check-to-send window remains there).
    """

    def __init__(self, fd: int, path: str, **kwargs):
        proc = f"/proc/self/fd/{fd}"
        self._fd = fd
        super().__init__(proc if os.path.exists(proc) else path, stat_result=os.fstat(fd),
                         **kwargs)

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self._fd)


@router.get("/thumb/{item_id}", dependencies=[Depends(require_key)],
            response_class=FileResponse, responses=_THUMB_RESPONSES)
def thumb(item_id: int = _ITEM_ID, res: Resources = Depends(resources)) -> Response:
    """JPEG thumbnail of an indexed item (cached)."""
    record = _record_or_404(res, item_id)
    try:
        path = res.thumbnail(record)
    except MediaDecodeError as exc:
        raise HTTPException(status_code=404, detail=f"no thumbnail: {exc.reason}") from None
    headers = {"cache-control": "public, max-age=86400"}
    if isinstance(path, bytes):  # the cache could not be written: the JPEG itself, uncached
        return Response(path, media_type="image/jpeg", headers=headers)
    return FileResponse(path, media_type="image/jpeg", headers=headers)
