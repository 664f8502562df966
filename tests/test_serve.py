"""HTTP API: search contract, validation errors, media with Range, thumbnails, API key."""

from __future__ import annotations

import io
import os

import pytest
from conftest import PaletteEmbedder
from fastapi.testclient import TestClient
from PIL import Image

from mumur.serve import create_app, load_resources


def test_search_contract(served):
    client, _ = served
    reply = client.get("/api/search", params={"q": "red", "k": 3})
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) >= {"results", "query", "took_ms"} and body["query"] == "red"
    assert body["took_ms"] >= 0 and body["relevant"] is True
    hits = body["results"]
    assert len(hits) == 3
    for hit in hits:
        assert set(hit) >= {"id", "path", "score", "media_type", "timestamp"}
        assert isinstance(hit["id"], int)
    video = next(h for h in hits if h["media_type"] == "video")
    assert video["timestamp"] == pytest.approx(2.5)
    only = client.get("/api/search", params={"q": "green", "type": "video"}).json()["results"]
    assert {h["media_type"] for h in only} == {"video"}
    # Which branch/language served the query (the palette index has one branch, "ml").
    assert (body["branch"], body["language"], body["language_detected"]) == ("ml", None, False)
    given = client.get("/api/search", params={"q": "rot", "lang": "de"}).json()
    assert (given["branch"], given["language"]) == ("ml", "de")


@pytest.mark.parametrize("params,status", [
    ({"q": ""}, 422), ({"q": "x" * 501}, 422), ({}, 422), ({"q": "red", "k": 0}, 422),
    ({"q": "red", "k": 101}, 422), ({"q": "red", "k": "ten"}, 422),
    ({"q": "red", "type": "audio"}, 422), ({"q": "   "}, 422), ({"q": "a\x01b"}, 422),
    ({"q": "red", "lang": "e"}, 422), ({"q": "red", "lang": "not a code"}, 422),
])
def test_bad_parameters_get_json_errors(served, params, status):
    client, _ = served
    reply = client.get("/api/search", params=params)
    assert reply.status_code == status
    assert isinstance(reply.json()["error"], str) and reply.json()["error"]


def test_media_serves_only_indexed_files_with_ranges(served, palette_corpus):
    client, resources = served
    record = next(r for r in resources.index.store.records().values()
                  if r.path.endswith("blue_red.mp4"))
    data = (palette_corpus / "blue_red.mp4").read_bytes()
    full = client.get(f"/api/media/{record.id}")
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    part = client.get(f"/api/media/{record.id}", headers={"Range": "bytes=10-29"})
    assert part.status_code == 206 and part.content == data[10:30]
    assert part.headers["content-range"] == f"bytes 10-29/{len(data)}"

    for url in ["/api/media/99999", "/api/media/-1", "/api/media/../../etc/passwd",
                "/api/media/..%2F..%2Fetc%2Fpasswd", "/api/media/%2e%2e", "/api/media/1.5",
                "/api/thumb/99999"]:
        reply = client.get(url)
        assert reply.status_code in (404, 422), url
        assert "root:" not in reply.text
    # A file removed after indexing is not served either.
    os.unlink(palette_corpus / "blue_red.mp4")
    assert client.get(f"/api/media/{record.id}").status_code == 404


def test_thumbnails_are_jpeg_and_cached(served):
    client, resources = served
    ids = [r.id for r in resources.index.store.records().values()]
    for item_id in ids:
        reply = client.get(f"/api/thumb/{item_id}")
        assert reply.status_code == 200 and reply.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(reply.content))
        assert image.format == "JPEG" and max(image.size) <= 256
    cached = sorted(resources.thumb_dir.glob("*.jpg"))
    assert len(cached) == len(ids)
    before = [p.stat().st_mtime_ns for p in cached]
    client.get(f"/api/thumb/{ids[0]}")
    assert [p.stat().st_mtime_ns for p in cached] == before


def test_health_and_openapi(served):
    client, _ = served
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["items"] == 10 and health["videos"] == 2
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/media/{item_id}", "/api/thumb/{item_id}", "/api/health"} <= set(
        spec["paths"])
    params = {p["name"]: p for p in spec["paths"]["/api/search"]["get"]["parameters"]}
    assert "English branch" in params["lang"]["description"] and not params["lang"]["required"]
    reply = spec["components"]["schemas"]["SearchReply"]["properties"]
    assert {"branch", "language", "language_detected"} <= set(reply)
    page = client.get("/")
    assert page.status_code == 200 and 'id="query"' in page.text
    assert client.get("/static/app.js").status_code == 200


def test_api_key(palette_index_dir):
    resources = load_resources(palette_index_dir, embedder=PaletteEmbedder(), api_key="s3cret")
    with TestClient(create_app(resources)) as client:
        assert client.get("/api/search", params={"q": "red"}).status_code == 401
        assert "API key" in client.get("/api/search", params={"q": "red"}).json()["error"]
        wrong = client.get("/api/search", params={"q": "red"}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        ok = client.get("/api/search", params={"q": "red"}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        item = ok.json()["results"][0]["id"]
        assert client.get(f"/api/media/{item}").status_code == 401
        assert client.get(f"/api/media/{item}", params={"key": "s3cret"}).status_code == 200
        assert client.get("/api/health").status_code == 200
    resources.index.close()


def test_media_deleted_or_replaced_after_the_check_is_served_whole(served, palette_corpus,
                                                                  monkeypatch):
    # The race a 500 came from: the file checked, then deleted (or replaced) before it is sent.
    client, resources = served
    record = next(r for r in resources.index.store.records().values()
                  if r.path.endswith("blue_red.mp4"))
    path = palette_corpus / "blue_red.mp4"
    data = path.read_bytes()
    original = type(resources).open_item
    for change in ("delete", "replace"):
        def racing(self, item_id, change=change):
            opened = original(self, item_id)
            os.unlink(path)
            if change == "replace":
                path.write_bytes(b"not the indexed file")
            return opened

        monkeypatch.setattr(type(resources), "open_item", racing)
        reply = client.get(f"/api/media/{record.id}")
        assert reply.status_code == 200 and reply.content == data
        monkeypatch.setattr(type(resources), "open_item", original)
        # Checked after the change: the replaced file is not the indexed one.
        assert client.get(f"/api/media/{record.id}").status_code == 404
        path.write_bytes(data)
        os.utime(path, ns=(record.mtime_ns, record.mtime_ns))
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        assert client.get(f"/api/media/{record.id}").status_code == 200
    assert len(os.listdir("/proc/self/fd")) <= fds + 2  # descriptors are closed after sending
